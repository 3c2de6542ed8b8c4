"""A pack's declared tests (pack.yaml ``testing``, Attune's form), run inside the built environment.

``testing.runners`` maps a runtime name (``shell``, ``python``, ...) to a runner of a ``type``:
``script`` (:mod:`.script_runner`), ``unittest`` (:mod:`.unittest_runner`) or ``pytest``
(:mod:`.pytest_runner`), each with ``entry_point``, ``timeout`` (seconds) and ``result_format``
(``simple``, ``json``, ``junit``; Attune's ``junit-xml`` too). ``discovery.path`` (default
``tests``) is where unittest and pytest look when a runner names no ``entry_point``;
``result_path`` is where a script runner's result files are read from when it does not write
``$ATTUNE_TEST_RESULTS``; a ``result_format`` beside the runners is every runner's default.

Tests run with the *target* interpreter (``python3.12`` for the Lambda runtime) found on the build
machine, the built ``site-packages`` first on ``PYTHONPATH`` and the built ``node_modules`` on
``NODE_PATH``, in a scrubbed environment (no AWS credentials or endpoints, no task token, no
CodeBuild variables), each runner within its own timeout. The summary has exactly the shape
registration reads (:func:`.results.summarise`); the full report adds each runner's command, exit
status and output tail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .common import write_json
from .execution import TestContext
from .interpreters import find_python
from .pytest_runner import run_pytest
from .results import ResultFormatError, suite_result, summarise
from .script_runner import run_script
from .unittest_runner import run_unittest

if TYPE_CHECKING:
    from typing import Any

REPORT_SCHEMA = "attune.pack-tests/1"
RUNNERS = {"pytest": run_pytest, "unittest": run_unittest, "script": run_script}
RESULT_FORMATS = {"simple": "simple", "json": "json", "junit": "junit", "junit-xml": "junit", "xml": "junit"}
DEFAULT_TIMEOUT = 300


def runner_settings(config: dict[str, Any], runner: dict[str, Any]) -> dict[str, Any]:
    """One runner's settings with the ``testing``-level defaults applied (discovery path,
    result path and format)."""
    discovery = found if isinstance(found := config.get("discovery"), dict) else {}
    declared = runner.get("result_format") or config.get("result_format") or "simple"
    result_format = RESULT_FORMATS.get(str(declared).lower())
    if result_format is None:
        raise ResultFormatError(f"unknown result_format {declared!r} (simple, json or junit)")
    return {
        "timeout": DEFAULT_TIMEOUT,
        **runner,
        "result_format": result_format,
        "discovery_path": discovery.get("path") or "tests",
        "result_path": runner.get("result_path") or config.get("result_path"),
    }


def _run_one(
    name: str, declared: dict[str, Any], config: dict[str, Any], context: TestContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    kind = declared.get("type", "")
    outcome = None
    try:
        runner = runner_settings(config, declared)
        if kind not in RUNNERS:
            raise ResultFormatError(f"unknown runner type {kind!r}")
        suite, outcome = RUNNERS[kind](name, runner, context)
    except ResultFormatError as exc:
        suite = suite_result(name, kind, [], str(exc))
    except (OSError, subprocess.SubprocessError) as exc:
        suite = suite_result(name, kind, [], f"the runner could not be started: {exc}")
    detail = {
        "name": name,
        "type": kind,
        "command": outcome.command if outcome else [],
        "exit_code": outcome.exit_code if outcome else None,
        "timed_out": outcome.timed_out if outcome else False,
        "duration_ms": outcome.duration_ms if outcome else 0,
        "output_tail": outcome.tail() if outcome else "",
    }
    return suite, detail


def run_tests(
    config: dict[str, Any], context: TestContext, *, report_uri: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run every runner of ``config`` (pack.yaml's ``testing``); (summary, per-runner details)."""
    started = time.monotonic()
    policy = {"min_pass_rate": config.get("min_pass_rate", 1.0), "on_failure": config.get("on_failure", "block")}
    runners = config.get("runners") or {}
    if not config.get("enabled", True) or not runners:
        summary = summarise([], policy=policy, duration_ms=0, report=report_uri, interpreter="", status="skipped")
        return summary, []
    suites, details = [], []
    for name in sorted(runners):
        suite, detail = _run_one(name, runners[name], config, context)
        suites.append(suite)
        details.append(detail)
    interpreter = "; ".join(context.used[k] for k in ("python", "node") if k in context.used)
    duration_ms = int((time.monotonic() - started) * 1000)
    return summarise(
        suites, policy=policy, duration_ms=duration_ms, report=report_uri, interpreter=interpreter
    ), details


def _wants_python(config: dict[str, Any]) -> bool:
    runners = (config.get("runners") or {}).values()
    return any(r.get("type") != "script" or str(r.get("entry_point", "")).endswith(".py") for r in runners)


def run_tests_command(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """``run-tests``: the tests of ``$TEST_CONFIG``, their report and summary written to files."""
    config = json.loads(environ.get("TEST_CONFIG") or "{}")
    os.makedirs(args.work, exist_ok=True)
    python = find_python(args.python_version, fallback=shutil.which("python3")) if _wants_python(config) else None
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
    write_json(args.report, report)
    write_json(args.summary, summary)
    print(
        f"Pack tests: {summary['status']}: {summary['passed']} of {summary['ran']} passed, {summary['failed']} "
        f"failed, {summary['skipped']} skipped (pass rate {summary['pass_rate']:.2f}) with "
        f"{summary['interpreter'] or '-'}"
    )
    for suite in summary["suites"]:
        for failure in suite["failures"][:5]:
            print(f"  FAILED {suite['name']}: {failure['name']}: {failure['message'][:200]}")
    return 0
