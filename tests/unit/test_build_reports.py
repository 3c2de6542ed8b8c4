"""Failed builds are explained by their log lines; test results have one checked shape."""

from __future__ import annotations

from typing import Any

import pytest

from attune_packs.errors import TransientError
from attune_packs.services import build_reports
from attune_packs.services.build_reports import BuildStateDetail, report_build_state

BUILD_ID = "arn:aws:codebuild:us-east-1:123456789012:build/attune-envs:6a1c0c3e-5a57-4d67-9b56-0d1c4f2b9d1e"


def failed_build_event() -> dict[str, Any]:
    """CodeBuild's "Build State Change" event for a build whose PRE_BUILD failed (as AWS shapes it)."""
    phase = {"phase-status": "SUCCEEDED", "phase-context": [": "], "duration-in-seconds": 0}
    return {
        "version": "0",
        "detail-type": "CodeBuild Build State Change",
        "source": "aws.codebuild",
        "detail": {
            "build-status": "FAILED",
            "project-name": "attune-envs",
            "build-id": BUILD_ID,
            "current-phase": "COMPLETED",
            "additional-information": {
                "environment": {
                    "environment-variables": [
                        {"name": "PACK_REF", "value": "http_tools", "type": "PLAINTEXT"},
                        {"name": "TASK_TOKEN", "value": "tok", "type": "PLAINTEXT"},
                    ]
                },
                "logs": {
                    "group-name": "/aws/codebuild/attune-envs",
                    "stream-name": "6a1c0c3e-5a57-4d67-9b56-0d1c4f2b9d1e",
                    "deep-link": "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:x",
                },
                "phases": [
                    {**phase, "phase-type": "SUBMITTED"},
                    {**phase, "phase-type": "INSTALL"},
                    {
                        "phase-type": "PRE_BUILD",
                        "phase-status": "FAILED",
                        "phase-context": [
                            "COMMAND_EXECUTION_ERROR: Error while executing command: aws s3 cp x y. Reason: exit status"
                        ],
                    },
                    {"phase-type": "FINALIZING", "phase-status": "SUCCEEDED"},
                ],
            },
        },
    }


class FakeTokens:
    def __init__(self, answered: bool = True) -> None:
        self.failed: list[tuple[str, str, str]] = []
        self.answered = answered

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        raise AssertionError("a failed build never succeeds its token")

    def fail(self, token: str, error: str, cause: str) -> bool:
        self.failed.append((token, error, cause))
        return self.answered


class FakeLogs:
    def __init__(self, lines: list[str] | None = None, error: Exception | None = None) -> None:
        self.lines, self.error = lines or [], error
        self.asked: list[tuple[str, str, int]] = []

    def tail(self, group: str, stream: str, *, lines: int = 40) -> list[str]:
        self.asked.append((group, stream, lines))
        if self.error:
            raise self.error
        return self.lines[-lines:]


def state_change(status: str = "FAILED", phase: str = "PRE_BUILD", token: str = "tok") -> BuildStateDetail:
    detail = failed_build_event()["detail"]
    detail["build-status"] = status
    detail["additional-information"]["phases"][2]["phase-type"] = phase
    for var in detail["additional-information"]["environment"]["environment-variables"]:
        if var["name"] == "TASK_TOKEN":
            var["value"] = token
    return BuildStateDetail.model_validate(detail)


def test_a_build_failing_before_post_build_fails_its_token_with_the_last_lines_of_its_log() -> None:
    tokens = FakeTokens()
    logs = FakeLogs(
        ["[Container] 2026/11/29 10:00:01 Running command aws s3 cp ...", "fatal error: An error occurred (404)"]
    )
    result = report_build_state(state_change(), tokens, logs)
    assert result == {"answered": True, "build_id": state_change().build_id, "phase": "PRE_BUILD"}
    [(token, error, cause)] = tokens.failed
    assert token == "tok" and error == "BuildError"
    assert cause.startswith("BUILD_FAILED: the environment build of http_tools ended FAILED in phase PRE_BUILD")
    assert "CodeBuild: COMMAND_EXECUTION_ERROR: Error while executing command: aws s3 cp x y" in cause
    assert cause.endswith("Last lines of the build log:\nfatal error: An error occurred (404)")
    assert logs.asked == [("/aws/codebuild/attune-envs", "6a1c0c3e-5a57-4d67-9b56-0d1c4f2b9d1e", 120)]


def test_a_long_cause_is_stored_whole_at_the_report_key_and_the_token_gets_a_short_one() -> None:
    import json

    from fakes import FakeObjectStore

    from attune_packs.buildspec.build_tools import MAX_TASK_CAUSE_CHARS

    detail = state_change()
    variables = detail.model_dump(by_alias=True)["additional-information"]["environment"]["environment-variables"]
    key = "reports/installs/install-1/build-http_tools.json"
    variables.append({"name": "REPORT_KEY", "value": key, "type": "PLAINTEXT"})
    raw = detail.model_dump(by_alias=True)
    raw["additional-information"]["environment"]["environment-variables"] = variables
    detail = BuildStateDetail.model_validate(raw)
    lines = [f"Collecting line {n} " + "x" * 80 for n in range(60)] + ["ERROR: the real reason"]
    tokens, store = FakeTokens(), FakeObjectStore()

    report_build_state(detail, tokens, FakeLogs(lines), store=store)

    [(_, _, cause)] = tokens.failed
    assert len(cause) <= MAX_TASK_CAUSE_CHARS and cause.startswith("BUILD_FAILED: the environment build of http_tools")
    assert "ERROR: the real reason" in cause and f"(the whole report: s3://packs/{key})" in cause
    stored = json.loads(store.objects[key][0])
    assert stored["failed"] is True and stored["pack_ref"] == "http_tools"
    assert "Collecting line 45 " in stored["error"] and "Collecting line 45 " not in cause


def test_an_unreadable_log_still_fails_the_token_and_says_why() -> None:
    tokens = FakeTokens()
    report_build_state(state_change("TIMED_OUT"), tokens, FakeLogs(error=TransientError("AccessDenied")))
    [(_, _, cause)] = tokens.failed
    assert "ended TIMED_OUT" in cause and "could not be read: AccessDenied" in cause


@pytest.mark.parametrize(("status", "token"), [("SUCCEEDED", "tok"), ("IN_PROGRESS", "tok"), ("FAILED", "")])
def test_builds_that_did_not_fail_or_carry_no_token_are_left_alone(status: str, token: str) -> None:
    tokens = FakeTokens()
    assert report_build_state(state_change(status, token=token), tokens, FakeLogs())["answered"] is False
    assert tokens.failed == []


def valid_result() -> dict[str, Any]:
    suite = {"name": "u", "type": "pytest", "status": "failed", "total": 1, "passed": 0, "failed": 1, "skipped": 0}
    return {
        "status": "failed",
        "total_tests": 1,
        "ran": 1,
        "passed": 0,
        "failed": 1,
        "skipped": 0,
        "pass_rate": 0.0,
        "failed_tests": ["u: t"],
        "duration_ms": 3,
        "suites": [{**suite, "failed_tests": ["t"], "failures": [{"name": "t", "message": "m"}]}],
        "policy": {"min_pass_rate": 1.0, "on_failure": "block"},
        "report": "s3://b/k",
        "interpreter": "CPython 3.12.1 (/x)",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"status": "unknown"},
        {"pass_rate": 1.5},
        {"policy": {"min_pass_rate": 1.0, "on_failure": "explode"}},
        {"extra": True},
        {"suites": [{"name": "u"}]},
        {"ran": 2},
        {"pass_rate": 1.0},
        {"total_tests": 9},
    ],
)
def test_only_results_of_the_exact_shape_and_consistent_counts_are_accepted(change: dict[str, Any]) -> None:
    assert build_reports.valid_test_result(valid_result()) == valid_result()
    assert build_reports.valid_test_result({**valid_result(), **change}) is None
