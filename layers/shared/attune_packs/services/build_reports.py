"""What environment builds report: failures (with the log lines that explain them) and test results.

The buildspec answers its own task token in post_build. When a build fails before it can (install
or pre_build failure), times out or is stopped, EventBridge delivers CodeBuild's state-change event
here and the token is failed with what CodeBuild says went wrong and the last lines of the build's
CloudWatch log, so no Map item waits forever and the per-pack failure says why.

:class:`TestResult` is the shape of a pack's test result (``BuiltEnvironment.test_result``) that
registration gates on; stored test reports are checked against it before they are reused.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from attune_packs.adapters.logs import LogReader
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.adapters.stepfunctions import TaskTokens
from attune_packs.buildspec.build_tools import failure_report, log_excerpt, short_cause
from attune_packs.errors import AttuneError
from attune_packs.models import REPORT_KEY_PATTERN
from attune_packs.s3_uri import S3Location

FAILED_STATES = {"FAILED", "STOPPED", "TIMED_OUT", "FAULT"}
EXCERPT_LINES = 40
REPORT_KEY = re.compile(REPORT_KEY_PATTERN.removeprefix("^").removesuffix("$"))


# --- failures ----------------------------------------------------------------------------------


class BuildStateDetail(BaseModel):
    """``detail`` of CodeBuild's "Build State Change" event."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)
    build_status: str = Field(alias="build-status")
    build_id: str = Field(alias="build-id")
    project_name: str = Field(default="", alias="project-name")
    additional_information: dict[str, Any] = Field(default_factory=dict, alias="additional-information")

    def variable(self, name: str) -> str:
        environment = self.additional_information.get("environment") or {}
        for var in environment.get("environment-variables") or []:
            if var.get("name") == name:
                return str(var.get("value") or "")
        return ""

    def failed_phase(self) -> tuple[str, list[str]]:
        """The first phase that did not succeed, and what CodeBuild says about it."""
        for phase in self.additional_information.get("phases") or []:
            if phase.get("phase-status") not in (None, "SUCCEEDED"):
                return str(phase.get("phase-type")), [str(c) for c in phase.get("phase-context") or [] if c]
        return "", []

    @property
    def log_stream(self) -> tuple[str, str]:
        logs = self.additional_information.get("logs") or {}
        return str(logs.get("group-name") or ""), str(logs.get("stream-name") or "")


def fetch_excerpt(logs: LogReader | None, group: str, stream: str) -> str:
    """The last lines of a build's log, or why they cannot be shown."""
    if logs is None or not group or not stream:
        return "(no build log is configured for this build)"
    try:
        lines = logs.tail(group, stream, lines=EXCERPT_LINES * 3)
    except AttuneError as exc:
        return f"(the build log {group}/{stream} could not be read: {exc.message})"
    return log_excerpt(lines) or f"(the build log {group}/{stream} is empty)"


def failure_message(*, pack_ref: str, build_id: str, status: str, phase: str, contexts: list[str], excerpt: str) -> str:
    """One failed build, for a person: what ended how, where, and the log lines that say why."""
    where = f" in phase {phase}" if phase else ""
    said = f" CodeBuild: {'; '.join(contexts)}." if contexts else ""
    return (
        f"BUILD_FAILED: the environment build of {pack_ref or '?'} ended {status}{where} (build {build_id}).{said}"
        f" Last lines of the build log:\n{excerpt}"
    )


def report_build_state(
    detail: BuildStateDetail, tokens: TaskTokens, logs: LogReader | None = None, store: ObjectStore | None = None
) -> dict[str, Any]:
    """Fail the task token of a build that ended before its buildspec answered. With ``store`` and
    the build's REPORT_KEY, the whole cause is stored there and the token gets a short one."""
    token = detail.variable("TASK_TOKEN")
    if detail.build_status not in FAILED_STATES or not token:
        return {"answered": False, "reason": "nothing to answer"}
    phase, contexts = detail.failed_phase()
    group, stream = detail.log_stream
    cause = failure_message(
        pack_ref=detail.variable("PACK_REF"),
        build_id=detail.build_id,
        status=detail.build_status,
        phase=phase,
        contexts=contexts,
        excerpt=fetch_excerpt(logs, group, stream),
    )
    report_key = detail.variable("REPORT_KEY")
    report_uri = ""
    written = False
    if store is not None and report_key and REPORT_KEY.fullmatch(report_key):
        report_uri = S3Location(store.bucket, report_key).uri
        # Written before answering, so readers find it; never over a report the buildspec stored.
        if store.head(S3Location(store.bucket, report_key)) is None:
            body = failure_report(detail.variable("PACK_REF"), cause)
            store.put_bytes(report_key, json.dumps(body).encode(), "application/json")
            written = True
    answered = tokens.fail(token, "BuildError", short_cause(cause, report_uri))
    if written and not answered and store is not None:
        # The token was answered already (the build answered it, then ended badly; or this event
        # came twice): the failure report would contradict what the installation recorded.
        store.delete(report_key)
    return {"answered": answered, "build_id": detail.build_id, "phase": phase}


# --- test results ------------------------------------------------------------------------------

Status = Literal["passed", "failed", "partial", "skipped", "error"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class TestFailure(_Strict):
    name: str
    message: str


class TestSuite(_Strict):
    name: str
    type: str
    status: Status
    total: int = Field(ge=0)
    passed: int = Field(ge=0)
    failed: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed_tests: list[str]
    failures: list[TestFailure]


class TestPolicy(_Strict):
    min_pass_rate: float = Field(ge=0, le=1)
    on_failure: Literal["block", "warn", "ignore"]


class TestResult(_Strict):
    """A pack's test result, as ``build_tools.summarise`` writes it."""

    status: Status
    total_tests: int = Field(ge=0)
    ran: int = Field(ge=0, description="passed + failed: the tests that ran (skipped ones did not)")
    passed: int = Field(ge=0)
    failed: int = Field(ge=0)
    skipped: int = Field(ge=0)
    pass_rate: float = Field(ge=0, le=1, description="passed / ran; 0.0 when no test ran")
    failed_tests: list[str] = Field(description="the failed tests by name, '<runner>: <test>'")
    duration_ms: int = Field(ge=0)
    suites: list[TestSuite]
    policy: TestPolicy
    report: str
    interpreter: str

    @model_validator(mode="after")
    def _counts_agree(self) -> TestResult:
        if self.ran != self.passed + self.failed or self.total_tests != self.ran + self.skipped:
            raise ValueError("ran is passed + failed and total_tests is ran + skipped")
        expected = round(self.passed / self.ran, 4) if self.ran else 0.0
        if abs(self.pass_rate - expected) > 1e-4:
            raise ValueError(f"pass_rate {self.pass_rate} is not passed / ran ({expected})")
        return self


def valid_test_result(document: Any) -> dict[str, Any] | None:
    """``document`` as a test result when it has exactly the expected shape, else None."""
    try:
        return TestResult.model_validate(document).model_dump(mode="json")
    except ValidationError:
        return None
