"""The local stack's CodeBuild: runs a buildspec's phases for real, on this machine.

moto records builds but never runs them. This runner takes the same start_build request
(buildspec override, environment variable overrides, timeout), executes the buildspec's
install, pre_build, build and post_build commands in one bash shell (commands share the shell,
as on CodeBuild), and records the outcome on moto's build record so ``batch_get_builds`` reports
it. Builds that end badly are announced as CodeBuild's "Build State Change" event.

The log reads like CodeBuild's (``[Container] Running command ...``, ``Phase complete: BUILD
State: FAILED``) and, given a :class:`CloudWatchLogSink`, goes to CloudWatch Logs (moto's) as
CodeBuild sends it: the group of the project's ``LogsConfig``, one stream per build named by the
build id's UUID part. So the code that explains failed builds from their logs runs locally too.
"""

from __future__ import annotations

import os
import re
import secrets
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
_SHOWN_COMMAND_CHARS = 120


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


def _command_label(command: str) -> str:
    first = command.strip().splitlines()[0] if command.strip() else ""
    return first if len(first) <= _SHOWN_COMMAND_CHARS else first[: _SHOWN_COMMAND_CHARS - 3] + "..."


def render_script(buildspec: dict[str, Any], command_dir: Path, mark: str = _MARK) -> str:
    """A bash script that runs the phases with CodeBuild's semantics: a failing install or
    pre_build command ends the build; a failing build command still runs post_build with
    CODEBUILD_BUILD_SUCCEEDING=0. ``mark`` prefixes the phase markers the runner reads."""
    lines = ["__ok=1", "export CODEBUILD_BUILD_SUCCEEDING=1"]
    phases = buildspec.get("phases") or {}
    for phase in PHASES:
        commands = (phases.get(phase) or {}).get("commands") or []
        guard = "$__ok = 1" if phase != "post_build" else "$__stop = 0"
        lines.append(f'__stop=${{__stop:-0}}; if [ {guard} ]; then echo "{mark} {phase} START"; __phase_ok=1')
        for number, command in enumerate(commands):
            path = command_dir / f"{phase}_{number}.sh"
            path.write_text(str(command) + "\n")
            label = _command_label(str(command))
            running = shlex.quote(f"[Container] Running command {label}")
            failed = shlex.quote(f"[Container] Command did not exit successfully {label} exit status")
            lines.append(
                f"  if [ $__phase_ok = 1 ]; then echo {running}; . {shlex.quote(str(path))} || "
                f"{{ __rc=$?; echo {failed} $__rc; __phase_ok=0; }}; fi"
            )
        lines.append(
            '  if [ $__phase_ok = 1 ]; then echo "' + mark + f' {phase} SUCCEEDED"; else echo "{mark} '
            f'{phase} FAILED"; __ok=0; export CODEBUILD_BUILD_SUCCEEDING=0; fi'
        )
        if phase in ("install", "pre_build"):
            lines.append("  if [ $__ok = 0 ]; then __stop=1; fi")
        lines.append("fi")
    lines.append("[ $__ok = 1 ]")
    return "\n".join(lines) + "\n"


class CloudWatchLogSink:
    """Sends build logs to CloudWatch Logs as CodeBuild does (the group exists, as the template
    creates it on AWS; it is created here when missing)."""

    def __init__(self, client: Any, group: str) -> None:
        self.client = client
        self.group = group

    def open(self, stream: str) -> LogStream:
        return LogStream(self.client, self.group, stream)


class LogStream:
    """One build's stream: lines are buffered and sent in batches, and all of them are sent by
    :meth:`close`, before the build is reported finished. A CloudWatch fault never fails a build:
    it is written to the local log file and sending stops."""

    BATCH_EVENTS = 500
    BATCH_BYTES = 512 * 1024
    FLUSH_SECONDS = 1.0

    def __init__(self, client: Any, group: str, stream: str) -> None:
        self.client, self.group, self.stream = client, group, stream
        self.problem: str | None = None
        self._events: list[dict[str, Any]] = []
        self._bytes = 0
        self._last_flush = time.monotonic()
        self._last_ms = 0
        self._call(self._create)

    def _create(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.create_log_group(logGroupName=self.group)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
        self.client.create_log_stream(logGroupName=self.group, logStreamName=self.stream)

    def _call(self, action: Callable[[], None]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.problem is not None:
            return
        try:
            action()
        except (BotoCoreError, ClientError) as exc:
            self.problem = f"CloudWatch Logs unavailable for {self.group}/{self.stream}: {exc}"

    def write(self, line: str) -> None:
        message = line.rstrip("\n") or " "
        self._last_ms = max(self._last_ms, int(time.time() * 1000))
        self._events.append({"timestamp": self._last_ms, "message": message})
        self._bytes += len(message.encode()) + 26
        if (
            len(self._events) >= self.BATCH_EVENTS
            or self._bytes >= self.BATCH_BYTES
            or time.monotonic() - self._last_flush >= self.FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        events, self._events, self._bytes = self._events, [], 0
        self._last_flush = time.monotonic()
        if events:
            self._call(
                lambda: self.client.put_log_events(logGroupName=self.group, logStreamName=self.stream, logEvents=events)
            )

    def close(self) -> None:
        self.flush()


def log_stream_name(build_id: str) -> str:
    """CodeBuild names a build's log stream after the UUID part of its id (``project:uuid``)."""
    return build_id.rsplit(":", 1)[-1]


class LocalBuildRunner:
    def __init__(
        self,
        base_environment: dict[str, str],
        log_dir: Path,
        on_finished: Callable[[BuildRecord], None],
        max_parallel: int = 2,
        log_sink: CloudWatchLogSink | None = None,
    ) -> None:
        # The machine's environment every build starts from (tests may adjust it).
        self.environment = base_environment
        self.log_sink = log_sink
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
        metadata["logs"] = {"deepLink": str(record.log_path)}
        if self.log_sink is not None:
            stream = log_stream_name(metadata["id"])
            metadata["logs"].update(
                groupName=self.log_sink.group,
                streamName=stream,
                cloudWatchLogs={"status": "ENABLED", "groupName": self.log_sink.group, "streamName": stream},
            )
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
        mark = f"{_MARK}-{secrets.token_hex(8)}"
        with tempfile.TemporaryDirectory(prefix="attune-build-") as workdir:
            work = Path(workdir)
            (work / "commands").mkdir()
            (work / "src").mkdir()
            script = work / "build.sh"
            script.write_text(render_script(spec, work / "commands", mark))
            record.metadata.update(currentPhase="INSTALL")
            phases: list[dict[str, Any]] = []
            stream = self.log_sink.open(log_stream_name(record.metadata["id"])) if self.log_sink else None
            with record.log_path.open("w") as log:

                def emit(text: str) -> None:
                    log.write(text)
                    log.flush()
                    if stream is not None:
                        stream.write(text)

                process = subprocess.Popen(
                    ["bash", str(script)],
                    cwd=work / "src",
                    env=self._build_environment(record, spec, work),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    start_new_session=True,
                )
                killed = threading.Event()
                timer = threading.Timer(record.timeout_minutes * 60, _kill_group, args=(process, killed))
                timer.start()
                try:
                    _follow(process, mark, record, phases, emit)
                    if killed.is_set():
                        emit(f"[Container] {_now()} Build timed out after {record.timeout_minutes} minutes\n")
                finally:
                    timer.cancel()
                    if stream is not None:
                        stream.close()
                        if stream.problem:
                            log.write(f"local build runner: {stream.problem}\n")
            _finish(record, phases, timed_out=killed.is_set(), returncode=process.returncode)

    def _build_environment(self, record: BuildRecord, spec: dict[str, Any], work: Path) -> dict[str, str]:
        """The variables a build sees, as on CodeBuild: the buildspec's, the overrides, CodeBuild's own."""
        spec_env = {k: str(v) for k, v in ((spec.get("env") or {}).get("variables") or {}).items()}
        return {
            **self.environment,
            **spec_env,
            **record.environment,
            "CODEBUILD_BUILD_ID": record.metadata["id"],
            "CODEBUILD_BUILD_ARN": record.metadata.get("arn", ""),
            "CODEBUILD_SRC_DIR": str(work / "src"),
            "CODEBUILD_INITIATOR": "attune-local",
            "TMPDIR": str(work),
        }


def _follow(
    process: subprocess.Popen[str],
    mark: str,
    record: BuildRecord,
    phases: list[dict[str, Any]],
    emit: Callable[[str], None],
) -> None:
    """Copy the build's output to its log, turning the phase markers into CodeBuild's lines."""
    marker = re.compile(rf"^{re.escape(mark)} (\w+) (START|SUCCEEDED|FAILED)$")
    assert process.stdout is not None
    for line in process.stdout:
        found = marker.match(line.rstrip("\n"))
        if found is None:
            emit(line)
            continue
        phase, status = found.group(1).upper(), found.group(2)
        if status == "START":
            record.metadata["currentPhase"] = phase
            phases.append({"phaseType": phase, "startTime": _now()})
            emit(f"[Container] {_now()} Entering phase {phase}\n")
        else:
            phases[-1].update(phaseStatus=status, endTime=_now())
            emit(f"[Container] {_now()} Phase complete: {phase} State: {status}\n")
    process.wait()


def _finish(record: BuildRecord, phases: list[dict[str, Any]], *, timed_out: bool, returncode: int | None) -> None:
    """Record the outcome on moto's build record, as batch_get_builds reports it."""
    for phase in phases:
        if phase.get("phaseStatus") == "FAILED":
            phase["contexts"] = [
                {
                    "statusCode": "COMMAND_EXECUTION_ERROR",
                    "message": f"a command of {phase['phaseType']} failed; see {record.log_path}",
                }
            ]
    status = "TIMED_OUT" if timed_out else ("SUCCEEDED" if returncode == 0 else "FAILED")
    record.metadata.update(buildStatus=status, currentPhase="COMPLETED", phases=phases, endTime=_now())


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
                "logs": {
                    "group-name": metadata.get("logs", {}).get("groupName", ""),
                    "stream-name": metadata.get("logs", {}).get("streamName", ""),
                    "deep-link": str(record.log_path),
                },
            },
        },
    }
