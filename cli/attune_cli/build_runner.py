"""The local stack's CodeBuild: runs a buildspec's phases for real, on this machine.

moto records builds but never runs them. This runner takes the same start_build request
(buildspec override, environment variable overrides, timeout), executes the buildspec's
install, pre_build, build and post_build commands in one bash shell (commands share the shell,
as on CodeBuild), and records the outcome on moto's build record so ``batch_get_builds`` reports
it. Builds that end badly are announced as CodeBuild's "Build State Change" event.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

PHASES = ("install", "pre_build", "build", "post_build")
_MARK = "##ATTUNE-PHASE"


@dataclass
class BuildRecord:
    metadata: dict[str, Any]  # moto's build dict, updated in place
    environment: dict[str, str]
    buildspec: str
    timeout_minutes: int
    log_path: Path
    done: threading.Event = field(default_factory=threading.Event)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def render_script(buildspec: dict[str, Any], command_dir: Path) -> str:
    """A bash script that runs the phases with CodeBuild's semantics: a failing install or
    pre_build command ends the build; a failing build command still runs post_build with
    CODEBUILD_BUILD_SUCCEEDING=0."""
    lines = ["__ok=1", "export CODEBUILD_BUILD_SUCCEEDING=1"]
    phases = buildspec.get("phases") or {}
    for phase in PHASES:
        commands = (phases.get(phase) or {}).get("commands") or []
        guard = "$__ok = 1" if phase != "post_build" else "$__stop = 0"
        lines.append(f'__stop=${{__stop:-0}}; if [ {guard} ]; then echo "{_MARK} {phase} START"; __phase_ok=1')
        for number, command in enumerate(commands):
            path = command_dir / f"{phase}_{number}.sh"
            path.write_text(str(command) + "\n")
            lines.append(f"  if [ $__phase_ok = 1 ]; then . {shlex.quote(str(path))} || __phase_ok=0; fi")
        lines.append(
            '  if [ $__phase_ok = 1 ]; then echo "' + _MARK + f' {phase} SUCCEEDED"; else echo "{_MARK} '
            f'{phase} FAILED"; __ok=0; export CODEBUILD_BUILD_SUCCEEDING=0; fi'
        )
        if phase in ("install", "pre_build"):
            lines.append("  if [ $__ok = 0 ]; then __stop=1; fi")
        lines.append("fi")
    lines.append("[ $__ok = 1 ]")
    return "\n".join(lines) + "\n"


class LocalBuildRunner:
    def __init__(
        self,
        base_environment: dict[str, str],
        log_dir: Path,
        on_finished: Callable[[BuildRecord], None],
        max_parallel: int = 2,
    ) -> None:
        self._base = base_environment
        self._log_dir = log_dir
        self._on_finished = on_finished
        self._slots = threading.Semaphore(max_parallel)
        self.records: dict[str, BuildRecord] = {}
        self.started = 0

    def submit(
        self, metadata: dict[str, Any], overrides: list[dict[str, str]], buildspec: str, timeout_minutes: int
    ) -> None:
        environment = {v["name"]: v.get("value", "") for v in overrides}
        metadata["environment"] = {"environmentVariables": [dict(v) for v in overrides]}
        self._log_dir.mkdir(parents=True, exist_ok=True)
        safe_id = metadata["id"].replace(":", "_").replace("/", "_")
        record = BuildRecord(metadata, environment, buildspec, timeout_minutes, self._log_dir / f"{safe_id}.log")
        self.records[metadata["id"]] = record
        self.started += 1
        threading.Thread(target=self._run, args=(record,), name=f"build-{safe_id}", daemon=True).start()

    def wait_all(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for record in list(self.records.values()):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not record.done.wait(remaining):
                return False
        return True

    def _run(self, record: BuildRecord) -> None:
        with self._slots:
            try:
                self._execute(record)
            except Exception as exc:  # noqa: BLE001 - a runner fault must still end the build
                record.metadata.update(buildStatus="FAULT", currentPhase="COMPLETED", endTime=_now())
                with record.log_path.open("a") as log:
                    log.write(f"local build runner fault: {exc!r}\n")
            finally:
                record.done.set()
        self._on_finished(record)

    def _execute(self, record: BuildRecord) -> None:
        spec = yaml.safe_load(record.buildspec) or {}
        spec_env = {k: str(v) for k, v in ((spec.get("env") or {}).get("variables") or {}).items()}
        with tempfile.TemporaryDirectory(prefix="attune-build-") as workdir:
            work = Path(workdir)
            (work / "commands").mkdir()
            (work / "src").mkdir()
            script = work / "build.sh"
            script.write_text(render_script(spec, work / "commands"))
            environment = {
                **self._base,
                **spec_env,
                **record.environment,
                "CODEBUILD_BUILD_ID": record.metadata["id"],
                "CODEBUILD_BUILD_ARN": record.metadata.get("arn", ""),
                "CODEBUILD_SRC_DIR": str(work / "src"),
                "CODEBUILD_INITIATOR": "attune-local",
                "TMPDIR": str(work),
            }
            record.metadata.update(currentPhase="INSTALL")
            phases: list[dict[str, Any]] = []
            with record.log_path.open("w") as log:
                process = subprocess.Popen(
                    ["bash", str(script)],
                    cwd=work / "src",
                    env=environment,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
                killed = threading.Event()
                timer = threading.Timer(record.timeout_minutes * 60, _kill_group, args=(process, killed))
                timer.start()
                try:
                    assert process.stdout is not None
                    for line in process.stdout:
                        log.write(line)
                        log.flush()
                        if line.startswith(_MARK):
                            _, phase, status = line.split()
                            if status == "START":
                                record.metadata["currentPhase"] = phase.upper()
                                phases.append({"phaseType": phase.upper(), "startTime": _now()})
                            else:
                                phases[-1].update(phaseStatus=status, endTime=_now())
                    process.wait()
                finally:
                    timer.cancel()
                timed_out = killed.is_set()
            failed = [p for p in phases if p.get("phaseStatus") == "FAILED"]
            for phase in failed:
                phase["contexts"] = [
                    {
                        "statusCode": "COMMAND_EXECUTION_ERROR",
                        "message": f"a command of {phase['phaseType']} failed; see {record.log_path}",
                    }
                ]
            status = "TIMED_OUT" if timed_out else ("SUCCEEDED" if process.returncode == 0 else "FAILED")
            record.metadata.update(
                buildStatus=status,
                currentPhase="COMPLETED",
                phases=phases,
                endTime=_now(),
                logs={"deepLink": str(record.log_path)},
            )


def _kill_group(process: subprocess.Popen[str], killed: threading.Event) -> None:
    killed.set()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def state_change_event(record: BuildRecord) -> dict[str, Any]:
    """CodeBuild's EventBridge event for a finished build, as AWS shapes it."""
    metadata = record.metadata
    return {
        "version": "0",
        "id": metadata["id"],
        "detail-type": "CodeBuild Build State Change",
        "source": "aws.codebuild",
        "account": "123456789012",
        "time": _now(),
        "region": "us-east-1",
        "resources": [metadata.get("arn", "")],
        "detail": {
            "build-status": metadata["buildStatus"],
            "project-name": metadata.get("projectName", ""),
            "build-id": metadata.get("arn", metadata["id"]),
            "current-phase": "COMPLETED",
            "additional-information": {
                "environment": {
                    "environment-variables": [
                        {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in record.environment.items()
                    ]
                },
                "phases": [
                    {
                        "phase-type": p["phaseType"],
                        "phase-status": p.get("phaseStatus"),
                        "phase-context": [c["message"] for c in p.get("contexts", [])],
                    }
                    for p in metadata.get("phases", [])
                ],
                "logs": {"deep-link": str(record.log_path)},
            },
        },
    }
