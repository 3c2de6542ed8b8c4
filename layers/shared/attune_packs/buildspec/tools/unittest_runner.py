"""The ``unittest`` runner: discovery from ``<entry_point or discovery path>`` (a folder, or one
file), run by :mod:`.unittest_worker` inside the target interpreter, each test's outcome recorded."""

from __future__ import annotations

import os
import pkgutil
from typing import TYPE_CHECKING

from .execution import Outcome, TestContext, last_line, read_results, run_runner
from .results import ResultFormatError, parse_json_results, suite_result

if TYPE_CHECKING:
    from typing import Any


def worker_script(context: TestContext) -> str:
    """The worker, written to the run's folder: the tools may run from a zip application, whose
    modules are not files the target interpreter could run."""
    path = os.path.join(context.work, "attune_unittest_worker.py")
    if not os.path.exists(path):
        os.makedirs(context.work, exist_ok=True)
        source = pkgutil.get_data(__package__ or "", "unittest_worker.py")
        if source is None:
            raise ResultFormatError("the unittest worker is missing from the build tools")
        with open(path, "wb") as handle:
            handle.write(source)
    return path


def run_unittest(name: str, runner: dict[str, Any], context: TestContext) -> tuple[dict[str, Any], Outcome | None]:
    target = context.resolve(runner.get("entry_point"), runner.get("discovery_path") or "tests")
    python = context.need_python()
    start, pattern = (target, "test*.py") if os.path.isdir(target) else os.path.split(target)
    results = os.path.join(context.work, f"{name}.unittest.json")
    command = [python.path, worker_script(context), start, pattern, context.pack_dir, results]
    outcome = run_runner(name, runner, context, command, results)
    if outcome.timed_out:
        return suite_result(name, "unittest", [], f"timed out after {runner['timeout']}s"), outcome
    if not os.path.exists(results):
        return suite_result(name, "unittest", [], f"unittest could not run: {last_line(outcome)}"), outcome
    return suite_result(name, "unittest", parse_json_results(read_results(results, outcome))), outcome
