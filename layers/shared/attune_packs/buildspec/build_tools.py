"""The build's own tools, by the names the layer's callers import (the build-envs service, build
reports, tests and benchmarks). They live in :mod:`attune_packs.buildspec.tools`, one module per
kind; the buildspec runs that package as a zip application (``python3 "$TOOLS" <command>``)."""

from attune_packs.buildspec.tools.artifacts import artifact_matches, seal_manifest
from attune_packs.buildspec.tools.cli import main
from attune_packs.buildspec.tools.execution import Outcome, TestContext, run_command
from attune_packs.buildspec.tools.interpreters import Interpreter, find_python, python_candidates, uv_command
from attune_packs.buildspec.tools.node_env import installed_node_packages, nodejs_manifest
from attune_packs.buildspec.tools.pack_tests import REPORT_SCHEMA, RUNNERS, run_tests, runner_settings
from attune_packs.buildspec.tools.python_env import python_manifest
from attune_packs.buildspec.tools.reporting import (
    MAX_ANSWER_FAILED_TESTS,
    MAX_ANSWER_MESSAGE_CHARS,
    MAX_ANSWER_REQUIREMENTS,
    MAX_ANSWER_SUITES,
    MAX_TASK_CAUSE_CHARS,
    build_result,
    failure_cause,
    failure_report,
    log_excerpt,
    reference_answer,
    short_cause,
    task_answer,
    unique_report_key,
)
from attune_packs.buildspec.tools.results import (
    MAX_FAILED_TESTS,
    ResultFormatError,
    make_case,
    parse_json_results,
    parse_junit,
    suite_result,
    summarise,
)

__all__ = [
    "MAX_ANSWER_FAILED_TESTS",
    "MAX_ANSWER_MESSAGE_CHARS",
    "MAX_ANSWER_REQUIREMENTS",
    "MAX_ANSWER_SUITES",
    "MAX_FAILED_TESTS",
    "MAX_TASK_CAUSE_CHARS",
    "REPORT_SCHEMA",
    "RUNNERS",
    "Interpreter",
    "Outcome",
    "ResultFormatError",
    "TestContext",
    "artifact_matches",
    "build_result",
    "failure_cause",
    "failure_report",
    "find_python",
    "installed_node_packages",
    "log_excerpt",
    "main",
    "make_case",
    "nodejs_manifest",
    "parse_json_results",
    "parse_junit",
    "python_candidates",
    "python_manifest",
    "reference_answer",
    "run_command",
    "run_tests",
    "runner_settings",
    "seal_manifest",
    "short_cause",
    "suite_result",
    "summarise",
    "task_answer",
    "unique_report_key",
    "uv_command",
]
