"""Helpers of the environment build, shipped inside the buildspec (standard library only).

The build-envs service embeds this file, compressed, in the buildspec it sends (CodeBuild caps an
inline buildspec at 25,600 characters, so the logic lives here and the buildspec stays shell
glue). It runs with the build image's ``python3`` (any Python 3.8+) and provides:

* ``python-manifest`` / ``nodejs-manifest``: what an environment holds (distributions and
  versions, runtime version, size, build time, installer, warnings), written next to it.
* ``run-tests``: a pack's declared tests, run inside the built environment, and their report.
* ``result``: the build's answer to the Step Functions task token (a ``BuiltEnvironment``).
* ``failure-cause``: the text a failed build answers its token with (the log lines that explain it).

Pack tests (``testing.runners`` in pack.yaml) run with the *target* interpreter (``python3.12``
for the Lambda runtime) found on the build machine, the built ``site-packages`` first on
``PYTHONPATH`` and the built ``node_modules`` on ``NODE_PATH``:
  pytest    ``python -m pytest <entry_point or tests>`` with JUnit XML output (pytest is installed
            next to, not into, the environment when the pack's requirements do not bring it).
  unittest  discovery from ``<entry_point or tests>`` (a directory, or one file), run by this
            module inside the target interpreter, each test's outcome recorded.
  script    ``<entry_point>`` (``.py`` with the target Python, ``.js`` with node, ``.sh`` with bash,
            else executed). ``result_format``: ``simple`` (exit status: one test), ``json``
            (``{"tests": [{"name", "status", "message"}]}`` or ``{"passed", "failed", "skipped",
            "failures": [...]}``) or ``junit`` (JUnit XML), written to ``$ATTUNE_TEST_RESULTS``
            or printed on stdout.
Every runner gets a scrubbed environment (no AWS credentials or endpoints, no task token, no
CodeBuild variables) and its own timeout. The summary has exactly the shape registration reads
(see :func:`summarise`); the full report adds each runner's command, exit status and output tail.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # noqa: S405 - size-capped, DTDs refused before parsing
from datetime import datetime, timezone

REPORT_SCHEMA = "attune.pack-tests/1"
DEFAULT_PYTEST_VERSION = "8.3.5"  # the buildspec sets PYTEST_VERSION
MAX_FAILURES_PER_SUITE = 20
MAX_MESSAGE_CHARS = 500
MAX_RESULT_BYTES = 5 * 2**20
OUTPUT_TAIL_CHARS = 4000
# Variables a test may see from the build's own environment; everything else (credentials,
# AWS_* endpoints, TASK_TOKEN, CODEBUILD_*) is withheld.
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
PYENV_ROOTS = ("~/.pyenv", "/root/.pyenv", "/usr/local/pyenv", "/opt/pyenv")


# --- interpreters ---------------------------------------------------------------------------------


def _version_of(executable: str) -> tuple[str, str] | None:
    """(implementation, X.Y.Z) of a Python executable, or None when it does not run."""
    try:
        probe = subprocess.run(
            [executable, "-c", "import platform;print(platform.python_implementation(), platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = probe.stdout.split()
    return (parts[0], parts[1]) if probe.returncode == 0 and len(parts) == 2 else None


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"versions/(\d+(?:\.\d+)*)", path)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def python_candidates(version: str) -> list[str]:
    """Where a Python ``version`` (MAJOR.MINOR) may live on a build machine, best first: on PATH,
    in a pyenv root (CodeBuild's managed images and this project's dev machines keep theirs there),
    then wherever ``uv python find`` knows of."""
    found = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    roots = [os.environ.get("PYENV_ROOT", "")] + [os.path.expanduser(r) for r in PYENV_ROOTS]
    for root in dict.fromkeys(r for r in roots if r):
        pattern = os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")
        found.extend(sorted(glob.glob(pattern), key=_version_key, reverse=True))
        found.extend(glob.glob(os.path.join(root, "versions", version, "bin", f"python{version}")))
    uv = uv_command()
    if uv:
        try:
            located = subprocess.run(
                [*uv, "python", "find", "--no-config", version], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            located = None
        if located is not None and located.returncode == 0 and located.stdout.strip():
            found.append(located.stdout.strip())
    return list(dict.fromkeys(found))


def uv_command() -> list[str] | None:
    """How to run uv here: ``$UV`` (the buildspec sets it, possibly ``python3 -m uv``), else on PATH."""
    configured = os.environ.get("UV")
    if configured is not None:
        return configured.split() or None
    found = shutil.which("uv")
    return [found] if found else None


class Interpreter:
    def __init__(self, path: str, implementation: str, version: str, requested: str) -> None:
        self.path, self.implementation, self.version, self.requested = path, implementation, version, requested

    @property
    def matches(self) -> bool:
        return self.version.split(".")[:2] == self.requested.split(".")[:2]

    def describe(self) -> str:
        text = f"{self.implementation} {self.version} ({self.path})"
        if not self.matches:
            text += f"; Python {self.requested} was requested but not found on the build machine"
        return text


def find_python(version: str, fallback: str | None = None) -> Interpreter:
    """The interpreter of ``version``; else ``fallback`` (this interpreter), marked as a mismatch."""
    for candidate in python_candidates(version):
        found = _version_of(candidate)
        if found and found[1].split(".")[:2] == version.split(".")[:2]:
            return Interpreter(candidate, found[0], found[1], version)
    path = fallback or sys.executable
    found = _version_of(path) or ("Python", "unknown")
    return Interpreter(path, found[0], found[1], version)


# --- result formats -------------------------------------------------------------------------------


class ResultFormatError(ValueError):
    """A runner's result output could not be read."""


def _case(name: str, status: str, message: str = "") -> dict[str, str]:
    return {"name": str(name)[:300], "status": status, "message": str(message or "")[:MAX_MESSAGE_CHARS]}


def parse_junit(text: str) -> list[dict[str, str]]:
    """Test cases of a JUnit XML document (``<testsuites>`` or ``<testsuite>`` at the root)."""
    if len(text.encode("utf-8", "replace")) > MAX_RESULT_BYTES:
        raise ResultFormatError("JUnit XML larger than 5 MiB")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ResultFormatError("JUnit XML with a DOCTYPE or entity declarations is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 - see the checks above
    except ET.ParseError as exc:
        raise ResultFormatError(f"JUnit XML does not parse: {exc}") from exc
    cases = []
    for case in root.iter("testcase"):
        name = ".".join(p for p in (case.get("classname"), case.get("name")) if p) or "unnamed"
        problem = next((c for c in case if c.tag in ("failure", "error")), None)
        skipped = next((c for c in case if c.tag == "skipped"), None)
        if problem is not None:
            lines = (problem.text or "").strip().splitlines()
            message = problem.get("message") or (lines[-1] if lines else problem.tag)
            cases.append(_case(name, "failed", message))
        elif skipped is not None:
            cases.append(_case(name, "skipped", skipped.get("message") or ""))
        else:
            cases.append(_case(name, "passed"))
    return cases


_STATUS_ALIASES = {
    "pass": "passed",
    "passed": "passed",
    "ok": "passed",
    "success": "passed",
    "fail": "failed",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "skip": "skipped",
    "skipped": "skipped",
}


def parse_json_results(text: str) -> list[dict[str, str]]:
    """``{"tests": [{"name", "status", "message"}]}`` or counts with ``failures``."""
    document = None
    try:
        document = json.loads(text)
    except ValueError:
        # Printed on stdout among other lines: take the last line that is a JSON object.
        for line in reversed(text.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    document = json.loads(line)
                    break
                except ValueError:
                    continue
    if not isinstance(document, dict):
        raise ResultFormatError("no JSON object with test results was found")
    if isinstance(document.get("tests"), list):
        cases = []
        for number, test in enumerate(document["tests"], start=1):
            if not isinstance(test, dict):
                raise ResultFormatError(f"tests[{number - 1}] is not an object")
            status = _STATUS_ALIASES.get(str(test.get("status", "")).lower())
            if status is None:
                raise ResultFormatError(f"tests[{number - 1}] has an unknown status {test.get('status')!r}")
            cases.append(_case(test.get("name") or f"test {number}", status, test.get("message") or ""))
        return cases
    counts = {}
    for key in ("passed", "failed", "skipped"):
        value = document.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ResultFormatError(f"{key} must be a non-negative integer")
        counts[key] = value
    if not any(counts.values()) and "passed" not in document:
        raise ResultFormatError('the JSON results have neither "tests" nor "passed"/"failed" counts')
    failures = [f for f in document.get("failures") or [] if isinstance(f, dict)][: counts["failed"]]
    cases = [_case(f.get("name") or "unnamed", "failed", f.get("message") or "") for f in failures]
    cases += [_case(f"failed test {n + 1}", "failed") for n in range(counts["failed"] - len(cases))]
    cases += [_case(f"passed test {n + 1}", "passed") for n in range(counts["passed"])]
    cases += [_case(f"skipped test {n + 1}", "skipped") for n in range(counts["skipped"])]
    return cases


# --- suites and the summary -----------------------------------------------------------------------


def suite_result(name: str, runner_type: str, cases: list[dict[str, str]], error: str | None = None) -> dict:
    """One runner's entry of ``suites``. An error (the runner could not run, timed out, wrote
    unreadable results) counts as one failed test when no test was recorded, so it lowers the
    pass rate instead of vanishing."""
    passed = sum(1 for c in cases if c["status"] == "passed")
    failed = sum(1 for c in cases if c["status"] == "failed")
    skipped = sum(1 for c in cases if c["status"] == "skipped")
    failures = [{"name": c["name"], "message": c["message"]} for c in cases if c["status"] == "failed"]
    if error is not None:
        failures.insert(0, {"name": name, "message": error[:MAX_MESSAGE_CHARS]})
        if passed + failed == 0:
            failed = 1
        status = "error"
    elif failed == 0 and passed == 0:
        status = "skipped"
    elif failed == 0:
        status = "passed"
    elif passed == 0:
        status = "failed"
    else:
        status = "partial"
    return {
        "name": name,
        "type": runner_type,
        "status": status,
        "total": passed + failed + skipped,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "failures": failures[:MAX_FAILURES_PER_SUITE],
    }


def summarise(
    suites: list[dict], *, policy: dict, duration_ms: int, report: str, interpreter: str, status: str | None = None
) -> dict:
    """The test result registration gates on, in exactly this shape.

    ``pass_rate`` is passed / (passed + failed): skipped tests do not count, and it is 0.0 when no
    test ran. ``status``: ``error`` when a runner could not run, ``skipped`` when no test ran,
    ``passed`` with no failure, ``failed`` with no pass, ``partial`` otherwise."""
    passed = sum(s["passed"] for s in suites)
    failed = sum(s["failed"] for s in suites)
    skipped = sum(s["skipped"] for s in suites)
    if status is None:
        if any(s["status"] == "error" for s in suites):
            status = "error"
        elif passed + failed == 0:
            status = "skipped"
        elif failed == 0:
            status = "passed"
        elif passed == 0:
            status = "failed"
        else:
            status = "partial"
    return {
        "status": status,
        "total_tests": passed + failed + skipped,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "pass_rate": round(passed / (passed + failed), 4) if passed + failed else 0.0,
        "duration_ms": int(duration_ms),
        "suites": suites,
        "policy": {
            "min_pass_rate": float(policy.get("min_pass_rate", 1.0)),
            "on_failure": str(policy.get("on_failure", "block")),
        },
        "report": report,
        "interpreter": interpreter,
    }


# --- running ------------------------------------------------------------------------------------


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


def ensure_pytest(context: TestContext) -> None:
    """Make pytest importable without adding it to the environment: the pack's own pytest wins;
    else pytest goes to a tools directory placed after the environment on PYTHONPATH."""
    python = context.need_python()
    env = context.environment(os.devnull)
    probe = subprocess.run([python.path, "-c", "import pytest"], env=env, capture_output=True, timeout=60)
    if probe.returncode == 0:
        return
    tools = os.path.join(context.work, "tools")
    os.makedirs(tools, exist_ok=True)
    version = os.environ.get("PYTEST_VERSION") or DEFAULT_PYTEST_VERSION
    uv = uv_command()
    if uv:
        command = [*uv, "pip", "install", "--no-config", "--quiet", "--target", tools, "--python", python.path]
    else:
        command = [python.path, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", tools]
    installed = subprocess.run(
        [*command, f"pytest=={version}"], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    if installed.returncode != 0:
        raise ResultFormatError(f"pytest could not be installed for the tests: {installed.stderr.strip()[-300:]}")
    context.tools = tools
    context.warnings.append(f"pytest {version} was installed beside the environment to run the tests")


def _read_results(path: str, outcome: Outcome) -> str:
    if os.path.exists(path) and os.path.getsize(path) > 0:
        if os.path.getsize(path) > MAX_RESULT_BYTES:
            raise ResultFormatError("the results file is larger than 5 MiB")
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    return outcome.output


def run_pytest(name: str, runner: dict, context: TestContext) -> tuple[dict, Outcome | None]:
    target = context.resolve(runner.get("entry_point"), "tests")
    ensure_pytest(context)
    python = context.need_python()
    results = os.path.join(context.work, f"{name}.junit.xml")
    command = [python.path, "-m", "pytest", target, "-q", "-p", "no:cacheprovider", f"--junitxml={results}"]
    command += ["-o", "junit_family=xunit2"]
    outcome = run_command(
        command,
        cwd=context.pack_dir,
        env=context.environment(results),
        timeout=runner["timeout"],
        log_path=os.path.join(context.work, f"{name}.log"),
    )
    if outcome.timed_out:
        return suite_result(name, "pytest", [], f"timed out after {runner['timeout']}s"), outcome
    if outcome.exit_code == 5:  # pytest: no tests were collected
        return suite_result(name, "pytest", []), outcome
    if not os.path.exists(results):
        return suite_result(name, "pytest", [], f"pytest wrote no results: {_last_line(outcome)}"), outcome
    cases = parse_junit(_read_results(results, outcome))
    error = None if outcome.exit_code in (0, 1, 2) else f"pytest ended with status {outcome.exit_code}"
    return suite_result(name, "pytest", cases, error), outcome


def run_unittest(name: str, runner: dict, context: TestContext) -> tuple[dict, Outcome | None]:
    target = context.resolve(runner.get("entry_point"), "tests")
    python = context.need_python()
    start, pattern = (target, "test*.py") if os.path.isdir(target) else os.path.split(target)
    results = os.path.join(context.work, f"{name}.unittest.json")
    command = [python.path, os.path.abspath(__file__), "unittest-worker", start, pattern, context.pack_dir, results]
    outcome = run_command(
        command,
        cwd=context.pack_dir,
        env=context.environment(results),
        timeout=runner["timeout"],
        log_path=os.path.join(context.work, f"{name}.log"),
    )
    if outcome.timed_out:
        return suite_result(name, "unittest", [], f"timed out after {runner['timeout']}s"), outcome
    if not os.path.exists(results):
        return suite_result(name, "unittest", [], f"unittest could not run: {_last_line(outcome)}"), outcome
    return suite_result(name, "unittest", parse_json_results(_read_results(results, outcome))), outcome


def run_script(name: str, runner: dict, context: TestContext) -> tuple[dict, Outcome | None]:
    if not runner.get("entry_point"):
        raise ResultFormatError("a script runner needs an entry_point")
    target = context.resolve(runner["entry_point"], "")
    if target.endswith(".py"):
        command = [context.need_python().path, target]
    elif target.endswith((".js", ".cjs", ".mjs")):
        node = shutil.which("node", path=context.base_env.get("PATH"))
        if node is None:
            raise ResultFormatError("node is not available on the build machine")
        context.used["node"] = f"node {_node_version(node)} ({node})"
        command = [node, target]
    elif target.endswith(".sh"):
        command = ["bash", target]
    else:
        command = [target]
    results = os.path.join(context.work, f"{name}.results")
    outcome = run_command(
        command,
        cwd=context.pack_dir,
        env=context.environment(results),
        timeout=runner["timeout"],
        log_path=os.path.join(context.work, f"{name}.log"),
    )
    if outcome.timed_out:
        return suite_result(name, "script", [], f"timed out after {runner['timeout']}s"), outcome
    result_format = runner.get("result_format", "simple")
    if result_format == "simple":
        ok = outcome.exit_code == 0
        return suite_result(
            name, "script", [_case(name, "passed" if ok else "failed", _failure_text(outcome))]
        ), outcome
    text = _read_results(results, outcome)
    cases = parse_junit(text) if result_format == "junit" else parse_json_results(text)
    if outcome.exit_code != 0 and not any(c["status"] == "failed" for c in cases):
        cases.append(_case(name, "failed", f"exit status {outcome.exit_code}: {_last_line(outcome)}"))
    return suite_result(name, "script", cases), outcome


def _node_version(node: str) -> str:
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _last_line(outcome: Outcome) -> str:
    lines = [line for line in outcome.output.strip().splitlines() if line.strip()]
    return lines[-1][:MAX_MESSAGE_CHARS] if lines else f"exit status {outcome.exit_code}, no output"


def _failure_text(outcome: Outcome) -> str:
    if outcome.exit_code == 0:
        return ""
    return f"exit status {outcome.exit_code}: {_last_line(outcome)}"


RUNNERS = {"pytest": run_pytest, "unittest": run_unittest, "script": run_script}


def run_tests(config: dict, context: TestContext, *, report_uri: str) -> tuple[dict, list[dict]]:
    """Run every runner of ``config`` (pack.yaml's ``testing``); (summary, per-runner details)."""
    started = time.monotonic()
    policy = {"min_pass_rate": config.get("min_pass_rate", 1.0), "on_failure": config.get("on_failure", "block")}
    suites, details = [], []
    runners = config.get("runners") or {}
    if not config.get("enabled", True) or not runners:
        summary = summarise([], policy=policy, duration_ms=0, report=report_uri, interpreter="", status="skipped")
        return summary, details
    for name in sorted(runners):
        runner = {"timeout": 300, "result_format": "simple", **runners[name]}
        kind = runner.get("type", "")
        outcome = None
        try:
            if kind not in RUNNERS:
                raise ResultFormatError(f"unknown runner type {kind!r}")
            suite, outcome = RUNNERS[kind](name, runner, context)
        except ResultFormatError as exc:
            suite = suite_result(name, kind, [], str(exc))
        except (OSError, subprocess.SubprocessError) as exc:
            suite = suite_result(name, kind, [], f"the runner could not be started: {exc}")
        suites.append(suite)
        details.append(
            {
                "name": name,
                "type": kind,
                "command": outcome.command if outcome else [],
                "exit_code": outcome.exit_code if outcome else None,
                "timed_out": outcome.timed_out if outcome else False,
                "duration_ms": outcome.duration_ms if outcome else 0,
                "output_tail": outcome.tail() if outcome else "",
            }
        )
    interpreter = "; ".join(context.used[k] for k in ("python", "node") if k in context.used)
    duration_ms = int((time.monotonic() - started) * 1000)
    return summarise(
        suites, policy=policy, duration_ms=duration_ms, report=report_uri, interpreter=interpreter
    ), details


# --- the unittest worker (runs inside the target interpreter) -------------------------------------


def unittest_worker(start: str, pattern: str, top: str, out: str) -> int:
    import unittest

    cases: list[dict[str, str]] = []

    class Recorder(unittest.TestResult):
        def addSuccess(self, test):  # noqa: N802 - unittest's API
            cases.append(_case(test.id(), "passed"))

        def addFailure(self, test, err):  # noqa: N802
            cases.append(_case(test.id(), "failed", _exception_text(err)))

        def addError(self, test, err):  # noqa: N802
            cases.append(_case(test.id(), "failed", _exception_text(err)))

        def addSkip(self, test, reason):  # noqa: N802
            cases.append(_case(test.id(), "skipped", reason))

        def addExpectedFailure(self, test, err):  # noqa: N802
            cases.append(_case(test.id(), "passed"))

        def addUnexpectedSuccess(self, test):  # noqa: N802
            cases.append(_case(test.id(), "failed", "unexpected success"))

        def addSubTest(self, test, subtest, err):  # noqa: N802
            if err is not None:
                cases.append(_case(subtest.id(), "failed", _exception_text(err)))

    # A tests folder that is a package is imported from the pack root (relative imports work);
    # a plain folder is its own top level, as ``python -m unittest discover -s <folder>`` does.
    if not os.path.exists(os.path.join(start, "__init__.py")):
        top = start
    suite = unittest.defaultTestLoader.discover(start, pattern=pattern, top_level_dir=top)
    suite.run(Recorder())
    with open(out, "w") as handle:
        json.dump({"tests": cases}, handle)
    return 0


def _exception_text(err: tuple) -> str:
    kind, value = err[0], err[1]
    return f"{getattr(kind, '__name__', kind)}: {value}"


# --- manifests, result, failure cause -----------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _tree_size(root: str) -> int:
    return sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(root) for f in fs)


def python_manifest(root: str, *, env_hash: str, python_version: str, platform: str, started_ms: int, installer: str):
    """What ``root/site-packages`` holds."""
    import importlib.metadata as metadata

    site = os.path.join(root, "site-packages")
    dists = sorted({(d.metadata["Name"], d.version) for d in metadata.distributions(path=[site])})
    return {
        "kind": "python",
        "env_hash": env_hash,
        "python_version": python_version,
        "platform": platform,
        "distributions": [{"name": n, "version": v} for n, v in dists],
        "size_bytes": _tree_size(site),
        "build_ms": _now_ms() - started_ms,
        "layout": "site-packages",
        "installer": installer,
        "warnings": []
        if installer.startswith("uv")
        else [f"built with {installer}: uv is not available on the build machine"],
        "built_by": os.environ.get("CODEBUILD_BUILD_ID", ""),
    }


def installed_node_packages(modules: str) -> list[dict[str, str]]:
    """Every package under ``node_modules`` (nested ones too), from npm's hidden lockfile
    (``node_modules/.package-lock.json``) when present, else from the package folders."""
    hidden = os.path.join(modules, ".package-lock.json")
    found = set()
    if os.path.exists(hidden):
        with open(hidden) as handle:
            entries = (json.load(handle).get("packages") or {}).items()
        for path, entry in entries:
            if not path or entry.get("link"):
                continue
            found.add((entry.get("name") or path.rsplit("node_modules/", 1)[-1], entry.get("version") or ""))
    else:
        pattern = [os.path.join(modules, "*", "package.json"), os.path.join(modules, "@*", "*", "package.json")]
        for path in glob.glob(pattern[0]) + glob.glob(pattern[1]):
            with open(path) as handle:
                meta = json.load(handle)
            found.add((meta.get("name") or "", meta.get("version") or ""))
    return [{"name": n, "version": v} for n, v in sorted(found)]


def nodejs_manifest(root: str, *, env_hash: str, started_ms: int, installer: str, warnings: list[str]):
    """What ``root/node_modules`` holds, and the node that built it."""
    modules = os.path.join(root, "node_modules")
    node = shutil.which("node")
    return {
        "kind": "nodejs",
        "env_hash": env_hash,
        "nodejs_version": _node_version(node).lstrip("v") if node else "",
        "distributions": installed_node_packages(modules),
        "size_bytes": _tree_size(modules),
        "build_ms": _now_ms() - started_ms,
        "layout": "node_modules",
        "installer": installer,
        "warnings": warnings,
        "built_by": os.environ.get("CODEBUILD_BUILD_ID", ""),
    }


def build_result(out: str, environ: dict[str, str]) -> dict:
    """The ``BuiltEnvironment`` a successful build answers its task token with: the environments
    it built (``<kind>.manifest.json``), those that were already stored (``<kind>.cached.manifest.json``,
    fetched by the build) and the test result."""
    environments = {}
    for kind in ("python", "nodejs"):
        built = os.path.join(out, f"{kind}.manifest.json")
        path = built if os.path.exists(built) else os.path.join(out, f"{kind}.cached.manifest.json")
        if not os.path.exists(path):
            continue
        with open(path) as handle:
            manifest = json.load(handle)
        environments[kind] = {
            "artifact": f"s3://{environ['BUCKET']}/envs/{manifest['env_hash']}/{kind}.tar.gz",
            "env_hash": manifest["env_hash"],
            "requirements_installed": [f"{d['name']}=={d['version']}" for d in manifest["distributions"]],
            "package_count": len(manifest["distributions"]),
            "python_version": manifest.get("python_version"),
            "nodejs_version": manifest.get("nodejs_version"),
            "size_bytes": manifest["size_bytes"],
            "cached": path != built,
            "warnings": manifest.get("warnings", []),
        }
    test_result = None
    summary = os.path.join(out, "test_result.json")
    if os.path.exists(summary):
        with open(summary) as handle:
            test_result = json.load(handle)
    return {
        "pack_ref": environ["PACK_REF"],
        "pack_version": environ["PACK_VERSION"],
        "archive": environ["ARCHIVE_URI"],
        "environments": environments,
        "duration_ms": _now_ms() - int(environ["BUILD_STARTED_MS"]),
        "test_result": test_result,
    }


MAX_ANSWER_REQUIREMENTS = 25
MAX_ANSWER_SUITES = 10
MAX_ANSWER_MESSAGE_CHARS = 300


def task_answer(result: dict) -> dict:
    """What a build answers its task token with: ``result`` without its long lists, so that the
    state machine's payload stays small however many packs it builds. The installed distributions
    beyond the first few stay in the environment manifests (``package_count`` is exact); each test
    suite keeps its counts and its first failure, the whole report stays at ``test_result.report``."""
    environments = {
        kind: {**env, "requirements_installed": env.get("requirements_installed", [])[:MAX_ANSWER_REQUIREMENTS]}
        for kind, env in (result.get("environments") or {}).items()
    }
    test_result = result.get("test_result")
    if test_result:
        suites = []
        for suite in (test_result.get("suites") or [])[:MAX_ANSWER_SUITES]:
            first = [
                {**failure, "message": str(failure.get("message", ""))[:MAX_ANSWER_MESSAGE_CHARS]}
                for failure in (suite.get("failures") or [])[:1]
            ]
            suites.append({**suite, "failures": first})
        test_result = {**test_result, "suites": suites}
    return {**result, "environments": environments, "test_result": test_result}


MAX_TASK_CAUSE_CHARS = 600


def short_cause(cause: str, report_uri: str = "") -> str:
    """A failure cause small enough for the state machine's payload (a failed build's item travels
    inline): its first line and the end of the rest, and where the whole cause is stored."""
    if len(cause) <= MAX_TASK_CAUSE_CHARS:
        return cause
    head, _, rest = cause.partition("\n")
    head = head[:200]
    where = f"\n(the whole report: {report_uri})" if report_uri else ""
    room = max(0, MAX_TASK_CAUSE_CHARS - len(head) - len(where) - 6)
    return f"{head}\n…{rest[-room:]}{where}"


def failure_report(pack_ref: str, cause: str) -> dict:
    """The stored report of a failed build (the whole cause; the task gets :func:`short_cause`)."""
    return {"pack_ref": pack_ref, "failed": True, "error_type": "BuildError", "error": cause}


def reference_answer(result: dict, report_uri: str, content: bytes) -> dict:
    """The task answer when the whole result (``content``) is stored at ``report_uri`` (a
    ``BuildReference``). Its sha256 travels with the answer, through this build's own task token:
    whoever reads the report checks it, so another build (another pack's install scripts or tests
    run with the same role) cannot pass off a forged result."""
    return {
        "pack_ref": result["pack_ref"],
        "pack_version": result.get("pack_version"),
        "report": report_uri,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def unique_report_key(report_key: str, unique: str) -> str:
    """Where one build stores its result: the item's key with this build's id, so a build of an
    earlier attempt can never overwrite the result of the attempt that answered."""
    return f"{report_key.removesuffix('.json')}-{re.sub(r'[^A-Za-z0-9-]', '-', unique)[-40:]}.json"


_NOISE = re.compile(r"^\[Container\] .*(Running command |Entering phase )")


def log_excerpt(lines: list[str], *, max_lines: int = 40, max_chars: int = 3000) -> str:
    """The last lines of a build log, where a failed build says why (without CodeBuild's
    "Running command" and "Entering phase" lines: the failing command is named by its own
    "Command did not exit successfully" line)."""
    kept = [line.rstrip() for line in lines if line.strip() and not _NOISE.match(line)][-max_lines:]
    text = "\n".join(kept)
    return text[-max_chars:]


def failure_cause(environ: dict[str, str], log_lines: list[str]) -> str:
    """What a build that failed in its build phase answers its task token with."""
    timed_out = any("exceeded the build timeout" in line for line in log_lines)
    what = "ran out of time" if timed_out else "failed"
    return (
        f"BUILD_FAILED: the environment build of {environ.get('PACK_REF', '?')} {what} in phase BUILD "
        f"(build {environ.get('CODEBUILD_BUILD_ID', '?')}). Last lines of the build log:\n{log_excerpt(log_lines)}"
    )


# --- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Helpers of the environment build (attune-packs).")
    commands = parser.add_subparsers(dest="command", required=True)
    py = commands.add_parser("python-manifest", help="describe ROOT/site-packages")
    py.add_argument("root")
    py.add_argument("--started-ms", type=int, required=True)
    py.add_argument("--installer", required=True)
    node = commands.add_parser("nodejs-manifest", help="describe ROOT/node_modules")
    node.add_argument("root")
    node.add_argument("--started-ms", type=int, required=True)
    node.add_argument("--installer", required=True)
    node.add_argument("--warning", action="append", default=[])
    result = commands.add_parser("result", help="print the BuiltEnvironment this build produced")
    result.add_argument("out")
    answer = commands.add_parser("answer", help="print the task answer (task_answer) of a result file")
    answer.add_argument("result_file")
    answer.add_argument("--reference", metavar="S3_URI", help="the result is stored there: answer a reference")
    unique = commands.add_parser("result-key", help="print the key this build stores its result at")
    unique.add_argument("report_key")
    unique.add_argument("build_id")
    cause = commands.add_parser("failure-cause", help="print why this build failed")
    cause.add_argument("log")
    short = commands.add_parser("short-cause", help="print the task failure cause of a cause file")
    short.add_argument("cause_file")
    short.add_argument("report_uri", nargs="?", default="")
    failed = commands.add_parser("failure-report", help="print the stored report of a cause file")
    failed.add_argument("cause_file")
    run = commands.add_parser("run-tests", help="run the tests of $TEST_CONFIG and write the report")
    run.add_argument("--pack-dir", required=True)
    run.add_argument("--python-version", required=True)
    run.add_argument("--site-packages")
    run.add_argument("--node-modules")
    run.add_argument("--work", required=True)
    run.add_argument("--report", required=True, help="the full report (JSON) to write")
    run.add_argument("--summary", required=True, help="the summary (test_result) to write")
    run.add_argument("--report-uri", required=True, help="where the report will be stored")
    worker = commands.add_parser("unittest-worker")
    for name in ("start", "pattern", "top", "out"):
        worker.add_argument(name)
    args = parser.parse_args(argv)
    environ = dict(os.environ)

    if args.command == "unittest-worker":
        return unittest_worker(args.start, args.pattern, args.top, args.out)
    if args.command == "python-manifest":
        manifest = python_manifest(
            args.root,
            env_hash=environ["PYTHON_ENV_HASH"],
            python_version=environ["PYTHON_VERSION"],
            platform=environ["PYTHON_PLATFORM"],
            started_ms=args.started_ms,
            installer=args.installer,
        )
        _write_json(os.path.join(os.path.dirname(os.path.abspath(args.root)), "python.manifest.json"), manifest)
        print(f"{manifest['env_hash'][:12]}: {len(manifest['distributions'])} distribution(s) with {args.installer}")
        return 0
    if args.command == "nodejs-manifest":
        manifest = nodejs_manifest(
            args.root,
            env_hash=environ["NODEJS_ENV_HASH"],
            started_ms=args.started_ms,
            installer=args.installer,
            warnings=args.warning,
        )
        _write_json(os.path.join(os.path.dirname(os.path.abspath(args.root)), "nodejs.manifest.json"), manifest)
        print(f"{manifest['env_hash'][:12]}: {len(manifest['distributions'])} package(s) with {args.installer}")
        return 0
    if args.command == "result":
        print(json.dumps(build_result(args.out, environ)))
        return 0
    if args.command == "answer":
        with open(args.result_file, "rb") as handle:
            content = handle.read()
        result = json.loads(content)
        print(json.dumps(reference_answer(result, args.reference, content) if args.reference else task_answer(result)))
        return 0
    if args.command == "result-key":
        print(unique_report_key(args.report_key, args.build_id))
        return 0
    if args.command in ("short-cause", "failure-report"):
        with open(args.cause_file, encoding="utf-8", errors="replace") as handle:
            text = handle.read().rstrip("\n")
        if args.command == "short-cause":
            print(short_cause(text, args.report_uri))
        else:
            print(json.dumps(failure_report(environ.get("PACK_REF", ""), text)))
        return 0
    if args.command == "failure-cause":
        with open(args.log, encoding="utf-8", errors="replace") as handle:
            print(failure_cause(environ, handle.read().splitlines()))
        return 0
    return run_tests_command(args, environ)


def _write_json(path: str, document: dict) -> None:
    with open(path, "w") as handle:
        json.dump(document, handle)


def run_tests_command(args: argparse.Namespace, environ: dict[str, str]) -> int:
    config = json.loads(environ.get("TEST_CONFIG") or "{}")
    os.makedirs(args.work, exist_ok=True)
    runners = (config.get("runners") or {}).values()
    wants_python = any(r.get("type") != "script" or str(r.get("entry_point", "")).endswith(".py") for r in runners)
    python = find_python(args.python_version, fallback=shutil.which("python3")) if wants_python else None
    context = TestContext(
        pack_dir=args.pack_dir,
        work=tempfile.mkdtemp(prefix="run-", dir=args.work),
        python=python,
        site_packages=args.site_packages,
        node_modules=args.node_modules,
        base_env=environ,
    )
    summary, details = run_tests(config, context, report_uri=args.report_uri)
    report = {
        "schema": REPORT_SCHEMA,
        "pack_ref": environ.get("PACK_REF", ""),
        "pack_version": environ.get("PACK_VERSION", ""),
        "archive": environ.get("ARCHIVE_URI", ""),
        "environments": {kind: environ.get(f"{kind.upper()}_ENV_HASH", "") for kind in ("python", "nodejs")},
        "build_id": environ.get("CODEBUILD_BUILD_ID", ""),
        "finished_at": datetime.now(timezone.utc).isoformat(),  # noqa: UP017 - runs on Python 3.8+
        "test_result": summary,
        "runners": details,
        "warnings": context.warnings,
    }
    _write_json(args.report, report)
    _write_json(args.summary, summary)
    print(
        f"Pack tests: {summary['status']}: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['skipped']} skipped (pass rate {summary['pass_rate']:.2f}) with {summary['interpreter'] or '-'}"
    )
    for suite in summary["suites"]:
        for failure in suite["failures"][:5]:
            print(f"  FAILED {suite['name']}: {failure['name']}: {failure['message'][:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
