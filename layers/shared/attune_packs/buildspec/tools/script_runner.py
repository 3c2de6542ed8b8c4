"""The ``script`` runner: ``<entry_point>`` (``.py`` with the target Python, ``.js`` with node,
``.sh`` with bash, else executed). ``result_format``: ``simple`` (exit status: one test named after
the runner), ``json`` (``{"tests": [{"name", "status", "message"}]}`` or ``{"passed", "failed",
"skipped", "failures": [...]}``) or ``junit`` (JUnit XML), read from ``$ATTUNE_TEST_RESULTS``, else
from the files the run wrote under pack.yaml's ``result_path``, else from stdout."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from .execution import (
    Outcome,
    TestContext,
    failure_text,
    last_line,
    node_version,
    read_results,
    result_files,
    run_runner,
    written_results,
)
from .results import ResultFormatError, make_case, parse_json_results, parse_junit, suite_result

if TYPE_CHECKING:
    from typing import Any

SUFFIXES = {"junit": (".xml",), "json": (".json",)}


def script_command(target: str, context: TestContext) -> list[str]:
    if target.endswith(".py"):
        return [context.need_python().path, target]
    if target.endswith((".js", ".cjs", ".mjs")):
        node = shutil.which("node", path=context.base_env.get("PATH"))
        if node is None:
            raise ResultFormatError("node is not available on the build machine")
        context.used["node"] = f"node {node_version(node)} ({node})"
        return [node, target]
    if target.endswith(".sh"):
        return ["bash", target]
    return [target]


def _parse(text: str, result_format: str) -> list[dict[str, str]]:
    return parse_junit(text) if result_format == "junit" else parse_json_results(text)


def run_script(name: str, runner: dict[str, Any], context: TestContext) -> tuple[dict[str, Any], Outcome | None]:
    if not runner.get("entry_point"):
        raise ResultFormatError("a script runner needs an entry_point")
    command = script_command(context.resolve(runner["entry_point"], ""), context)
    results = os.path.join(context.work, f"{name}.results")
    result_format = runner.get("result_format", "simple")
    before = result_files(context, runner.get("result_path"))
    outcome = run_runner(name, runner, context, command, results)
    if outcome.timed_out:
        return suite_result(name, "script", [], f"timed out after {runner['timeout']}s"), outcome
    if result_format == "simple":
        ok = outcome.exit_code == 0
        return suite_result(
            name, "script", [make_case(name, "passed" if ok else "failed", failure_text(outcome))]
        ), outcome
    written = (
        []
        if os.path.exists(results)
        else written_results(context, runner.get("result_path"), before, SUFFIXES[result_format])
    )
    if written:
        cases = [case for path in written for case in _parse(read_results(path, outcome), result_format)]
    else:
        cases = _parse(read_results(results, outcome), result_format)
    if outcome.exit_code != 0 and not any(c["status"] == "failed" for c in cases):
        cases.append(make_case(name, "failed", f"exit status {outcome.exit_code}: {last_line(outcome)}"))
    return suite_result(name, "script", cases), outcome
