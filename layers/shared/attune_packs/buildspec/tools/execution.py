"""What every test runner shares: running a command within a timeout in a scrubbed environment,
and where a runner's results are read from."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from .interpreters import Interpreter
from .results import MAX_MESSAGE_CHARS, MAX_RESULT_BYTES, ResultFormatError

if TYPE_CHECKING:
    from typing import Any

OUTPUT_TAIL_CHARS = 4000
# Variables a test may see from the build's own environment; everything else (credentials,
# AWS_* endpoints, TASK_TOKEN, CODEBUILD_*) is withheld.
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


class Outcome:
    def __init__(self, command: list[str], exit_code: int | None, output: str, duration_ms: int, timed_out: bool):
        self.command, self.exit_code, self.output = command, exit_code, output
        self.duration_ms, self.timed_out = duration_ms, timed_out

    def tail(self, chars: int = OUTPUT_TAIL_CHARS) -> str:
        return self.output[-chars:]


def run_command(command: list[str], *, cwd: str, env: dict[str, str], timeout: float, log_path: str) -> Outcome:
    """Run with output to a file (a chatty test cannot fill memory); kill the whole process group
    on timeout."""
    started = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as log:
        try:
            process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            return Outcome(command, None, f"cannot start {command[0]}: {exc}", 0, False)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    with open(log_path, "rb") as log:
        log.seek(max(0, os.path.getsize(log_path) - 64 * 1024))
        output = log.read().decode("utf-8", "replace")
    return Outcome(command, process.returncode, output, int((time.monotonic() - started) * 1000), timed_out)


class TestContext:
    def __init__(
        self,
        *,
        pack_dir: str,
        work: str,
        python: Interpreter | None,
        site_packages: str | None,
        node_modules: str | None,
        base_env: dict[str, str],
    ) -> None:
        self.pack_dir = os.path.realpath(pack_dir)
        self.work = work
        self.python = python
        self.site_packages = site_packages if site_packages and os.path.isdir(site_packages) else None
        self.node_modules = node_modules if node_modules and os.path.isdir(node_modules) else None
        self.base_env = base_env
        self.tools: str | None = None
        self.used: dict[str, str] = {}
        self.warnings: list[str] = []

    def environment(self, results_file: str) -> dict[str, str]:
        home = os.path.join(self.work, "home")
        os.makedirs(os.path.join(home, "tmp"), exist_ok=True)
        env = {k: v for k, v in self.base_env.items() if k in PASSED_THROUGH}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        python_path = [p for p in (self.site_packages, self.pack_dir, self.tools) if p]
        env.update(
            HOME=home,
            TMPDIR=os.path.join(home, "tmp"),
            PYTHONPATH=os.pathsep.join(python_path),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            ATTUNE_PACK_DIR=self.pack_dir,
            ATTUNE_TEST_RESULTS=results_file,
            CI="true",
        )
        if self.node_modules:
            env["NODE_PATH"] = self.node_modules
        return env

    def resolve(self, entry_point: str | None, default: str) -> str:
        target = os.path.realpath(os.path.join(self.pack_dir, entry_point or default))
        if os.path.commonpath([target, self.pack_dir]) != self.pack_dir:
            raise ResultFormatError(f"entry point {entry_point!r} is outside the pack")
        if not os.path.exists(target):
            raise ResultFormatError(f"entry point {entry_point or default!r} does not exist in the pack")
        return target

    def need_python(self) -> Interpreter:
        if self.python is None:
            raise ResultFormatError("no Python interpreter is available for this runner")
        self.used["python"] = self.python.describe()
        return self.python


def read_results(path: str, outcome: Outcome) -> str:
    if os.path.exists(path) and os.path.getsize(path) > 0:
        if os.path.getsize(path) > MAX_RESULT_BYTES:
            raise ResultFormatError("the results file is larger than 5 MiB")
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    return outcome.output


def node_version(node: str) -> str:
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def last_line(outcome: Outcome) -> str:
    lines = [line for line in outcome.output.strip().splitlines() if line.strip()]
    return lines[-1][:MAX_MESSAGE_CHARS] if lines else f"exit status {outcome.exit_code}, no output"


def failure_text(outcome: Outcome) -> str:
    if outcome.exit_code == 0:
        return ""
    return f"exit status {outcome.exit_code}: {last_line(outcome)}"


def run_runner(name: str, runner: dict[str, Any], context: TestContext, command: list[str], results: str) -> Outcome:
    """``command`` of the runner ``name``, from the pack folder, within the runner's timeout."""
    return run_command(
        command,
        cwd=context.pack_dir,
        env=context.environment(results),
        timeout=runner["timeout"],
        log_path=os.path.join(context.work, f"{name}.log"),
    )


def result_files(context: TestContext, result_path: str | None) -> dict[str, tuple[float, int]]:
    """The files under pack.yaml's ``result_path`` (a folder of the pack, or one file), with their
    modification time and size: taken before a run, so that only what the run wrote is read (a
    results file shipped in the archive proves nothing)."""
    if not result_path:
        return {}
    try:
        target = context.resolve(result_path, "")
    except ResultFormatError:
        return {}
    paths = [target] if os.path.isfile(target) else glob.glob(os.path.join(target, "**", "*"), recursive=True)
    found = {}
    for path in paths:
        if os.path.isfile(path) and not os.path.islink(path):
            info = os.stat(path)
            found[path] = (info.st_mtime, info.st_size)
    return found


def written_results(
    context: TestContext, result_path: str | None, before: dict[str, tuple[float, int]], suffixes: tuple[str, ...]
) -> list[str]:
    """The result files (by suffix) the run created or changed under ``result_path``."""
    after = result_files(context, result_path)
    return sorted(p for p, seen in after.items() if p.endswith(suffixes) and before.get(p) != seen)
