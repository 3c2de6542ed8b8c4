"""The ``pytest`` runner: ``python -m pytest <entry_point or discovery path>`` in the target
interpreter, its outcome per test read from the JUnit XML pytest writes."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from .execution import Outcome, TestContext, last_line, read_results, run_runner
from .results import ResultFormatError, parse_junit, suite_result

if TYPE_CHECKING:
    from typing import Any

DEFAULT_PYTEST_VERSION = "8.3.5"  # the buildspec sets PYTEST_VERSION
NO_TESTS_COLLECTED = 5  # pytest's exit status


def ensure_pytest(context: TestContext) -> None:
    """Make pytest importable without adding it to the environment: the pack's own pytest wins;
    else pytest goes to a tools directory placed after the environment on PYTHONPATH."""
    from .interpreters import uv_command

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


def run_pytest(name: str, runner: dict[str, Any], context: TestContext) -> tuple[dict[str, Any], Outcome | None]:
    target = context.resolve(runner.get("entry_point"), runner.get("discovery_path") or "tests")
    ensure_pytest(context)
    python = context.need_python()
    results = os.path.join(context.work, f"{name}.junit.xml")
    command = [python.path, "-m", "pytest", target, "-q", "-p", "no:cacheprovider", f"--junitxml={results}"]
    command += ["-o", "junit_family=xunit2"]
    outcome = run_runner(name, runner, context, command, results)
    if outcome.timed_out:
        return suite_result(name, "pytest", [], f"timed out after {runner['timeout']}s"), outcome
    if outcome.exit_code == NO_TESTS_COLLECTED:
        return suite_result(name, "pytest", []), outcome
    if not os.path.exists(results):
        return suite_result(name, "pytest", [], f"pytest wrote no results: {last_line(outcome)}"), outcome
    cases = parse_junit(read_results(results, outcome))
    error = None if outcome.exit_code in (0, 1, 2) else f"pytest ended with status {outcome.exit_code}"
    return suite_result(name, "pytest", cases, error), outcome
