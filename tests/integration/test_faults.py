"""Fault injection on the local stack: each fault ends in the state docs/faults.md documents,
nothing is registered twice or half, nothing is left outside ``staging/`` that nothing refers to,
and a re-run completes the installation.

Faults are injected from here only: botocore event hooks on the clients the handlers use
(``attune_packs.adapters.clients.client``) and patches of the hosted handler modules of the local
stack. Production code is unchanged.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness

from attune_cli.build_runner import state_change_event
from attune_cli.local_stack import HostedFunction
from attune_cli.render import install_report
from attune_packs.adapters.clients import client
from attune_packs.models import MAX_DEPENDENCY_ROUNDS
from testkit.pack_archives import pack_files, write_pack

pytestmark = [pytest.mark.slow, pytest.mark.faults]

SERVICES = ("s3", "dynamodb", "codebuild", "stepfunctions", "logs")
STAGE_FUNCTIONS = {
    "download": "DownloadPacksFunction",
    "dependencies": "GetPackDependenciesFunction",
    "build": "BuildPackEnvsFunction",
    "register": "RegisterPacksFunction",
}
# Where installations may leave objects: archives and environments (content-addressed, referenced
# by the registry), reports (the record of every run, failed ones included), component schemas.
KEPT_PREFIXES = ("archives/", "envs/", "reports/", "components/", "manifests/", "staging/", "uploads/")


class ProcessCrashed(Exception):
    """Stands for the Lambda process dying (out of memory, timeout): not a retried error type."""


# --- the batch and the checks every scenario ends with ---------------------------------------------


def batch(tmp_path: Path) -> list[str]:
    """Three packs: one depends on another, one needs a (Python) environment built."""
    return [
        str(write_pack(tmp_path, "base")),
        str(write_pack(tmp_path, "app", files=pack_files("app", dependencies="dependencies:\n  - base\n"))),
        str(write_pack(tmp_path, "env", files=pack_files("env", requirements=""))),
    ]


REFS = ["app", "base", "env"]


def assert_whole(harness: Harness, kept_archives: frozenset[str] = frozenset()) -> None:
    """Every pack registered once, whole; no object outside the kept prefixes; no orphan archive
    (``kept_archives``: archives of packs that failed, named by their installation's report)."""
    shown = {ref: harness.backend.show_pack(ref) for ref in REFS}
    for ref, pack in shown.items():
        assert pack["version"] == "1.0.0", ref
        actions = pack["components"]["actions"]
        assert [c["name"] for c in actions] == ["hello"], (ref, actions)  # not twice, not half
        assert [h["version"] for h in pack["history"]] == ["1.0.0"], ref  # one registration
    keys = harness.keys("")
    assert [k for k in keys if not k.startswith(KEPT_PREFIXES)] == []
    archives = {k for k in keys if k.startswith("archives/")}
    referenced = {p["archive"].split("/", 3)[3] for p in shown.values()}
    assert archives == referenced | kept_archives, "an archive nothing registered refers to"


def install(harness: Harness, archives: list[str], **options: Any) -> dict[str, Any]:
    result = harness.install(*archives, **options)
    return {"result": result, "report": install_report("fault", result)}


def hosted(harness: Harness, stage: str) -> HostedFunction:
    logical_id = STAGE_FUNCTIONS[stage]
    return next(f for f in harness.stack.functions.values() if f.spec.logical_id == logical_id)


# --- botocore hooks ---------------------------------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _throttled(service: str, url: str) -> Any:
    from botocore.awsrequest import AWSResponse

    if service == "s3":
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return AWSResponse(url, 503, {"Content-Type": "application/xml"}, _Raw(body))
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": "ThrottlingException"}
    return AWSResponse(url, 400, headers, _Raw(body))


@pytest.fixture
def throttle_every_first_attempt() -> Iterator[Counter[str]]:
    """Every call a handler makes is throttled on its first attempt (botocore retries it)."""
    throttled: Counter[str] = Counter()
    hooks: list[tuple[Any, str, Callable[..., Any]]] = []
    for service in SERVICES:

        def hook(request: Any, model: Any = None, _service: str = service, **_: Any) -> Any:
            if (request.context.get("retries") or {}).get("attempt", 1) > 1:
                return None
            throttled[f"{_service}:{model.name if model else '?'}"] += 1
            return _throttled(_service, request.url)

        events = client(service).meta.events
        event = f"before-send.{client(service).meta.service_model.service_id.hyphenize()}"
        events.register(event, hook)
        hooks.append((events, event, hook))
    yield throttled
    for events, event, hook in hooks:
        events.unregister(event, hook)


# --- scenarios --------------------------------------------------------------------------------------


def test_throttling_on_every_aws_call_is_retried_and_the_installation_completes(
    harness: Harness, tmp_path: Path, throttle_every_first_attempt: Counter[str]
) -> None:
    outcome = install(harness, batch(tmp_path))

    assert outcome["result"].status == "SUCCEEDED", (outcome["result"].error, outcome["result"].cause)
    assert outcome["report"]["outcome"] == "ok", outcome["report"]["failures"]
    assert_whole(harness)
    # and the calls of every stage were throttled: S3 reads and writes, DynamoDB, CodeBuild
    services = {name.split(":")[0] for name in throttle_every_first_attempt}
    assert {"s3", "dynamodb", "codebuild"} <= services, throttle_every_first_attempt


@pytest.mark.parametrize("stage", ["download", "dependencies", "register"])
def test_a_lambda_that_crashes_between_its_s3_write_and_its_answer_fails_and_a_rerun_completes(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    function = hosted(harness, stage)
    real_answer = function.module.answer
    crashes: list[str] = []

    def write_then_crash(response: Any, request: Any, store: Any) -> Any:
        answered = real_answer(response, request, store)  # the report is in S3 (and registered packs in DynamoDB)
        if not crashes:
            crashes.append(request.report_key or "")
            raise ProcessCrashed("the process died after writing its report")
        return answered

    monkeypatch.setattr(function.module, "answer", write_then_crash)
    archives = batch(tmp_path)

    first = install(harness, archives)
    # The execution fails: a crash is not an error the state machine retries
    assert first["result"].status == "FAILED"
    assert first["result"].error == "InstallationFailed" and "ProcessCrashed" in str(first["result"].cause)
    assert crashes and crashes[0].startswith("reports/")

    # A re-run completes it; what the crashed run wrote is reused or replaced, never doubled
    second = install(harness, archives)
    assert second["result"].status == "SUCCEEDED", (second["result"].error, second["result"].cause)
    assert second["report"]["outcome"] == "ok", second["report"]["failures"]
    assert_whole(harness)


@pytest.mark.parametrize("stage", list(STAGE_FUNCTIONS))
def test_the_same_stage_event_delivered_twice_changes_nothing(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    function = hosted(harness, stage)
    real_handler = function.handler
    deliveries: Counter[str] = Counter()

    def twice(event: Any, context: Any) -> Any:
        deliveries[stage] += 1
        real_handler(json.loads(json.dumps(event)), context)
        return real_handler(event, context)

    monkeypatch.setattr(function, "handler", twice)

    outcome = install(harness, batch(tmp_path))

    assert deliveries[stage] >= 1
    assert outcome["result"].status == "SUCCEEDED", (outcome["result"].error, outcome["result"].cause)
    assert outcome["report"]["outcome"] == "ok", outcome["report"]["failures"]
    assert_whole(harness)
    # and a re-run is a no-op that succeeds
    again = install(harness, batch(tmp_path))
    assert again["result"].status == "SUCCEEDED"
    assert_whole(harness)


# --- builds -----------------------------------------------------------------------------------------


def report_function(harness: Harness) -> HostedFunction:
    return next(f for f in harness.stack.functions.values() if f.spec.logical_id == "ReportBuildResultFunction")


def test_a_build_that_fails_fails_its_pack_even_when_its_state_event_arrives_twice(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = report_function(harness)
    real_handler = function.handler
    answers: list[Any] = []

    def twice(event: Any, context: Any) -> Any:
        answers.append(real_handler(json.loads(json.dumps(event)), context))
        answers.append(real_handler(event, context))
        return answers[-1]

    monkeypatch.setattr(function, "handler", twice)
    broken = pack_files("env", requirements="attune-no-such-package-zzz==9.9.9\n")
    archives = [*batch(tmp_path)[:2], str(write_pack(tmp_path, "env", files=broken, file_name="env-broken.tar.gz"))]

    first = install(harness, archives)

    # The installation succeeds partially: the build's pack failed, the others are registered
    assert first["result"].status == "SUCCEEDED", (first["result"].error, first["result"].cause)
    assert first["report"]["outcome"] == "partial"
    assert sorted(p["pack_ref"] for p in first["report"]["registered"]) == ["app", "base"]
    assert {f["error_code"] for f in first["report"]["failures"]} == {"BUILD_FAILED"}
    # and a second delivery of the build's state event answered nothing
    assert all(a.get("answered") is False for a in answers[1::2]), answers

    # A re-run with the requirement fixed completes the installation; the failed pack's archive
    # stays, named by the first installation's download report (content-addressed, reused)
    second = install(harness, batch(tmp_path))
    assert second["result"].status == "SUCCEEDED", (second["result"].error, second["result"].cause)
    assert second["report"]["outcome"] == "ok", second["report"]["failures"]
    downloaded = first["report"]["downloaded"]
    failed_archive = next(d["archive"] for d in downloaded if d["source"].endswith("env-broken.tar.gz"))
    assert_whole(harness, frozenset({failed_archive.split("/", 3)[3]}))


@pytest.mark.parametrize("status", ["STOPPED", "TIMED_OUT", "FAILED"])
def test_a_build_that_ends_badly_after_it_answered_its_token_changes_nothing(
    harness: Harness, tmp_path: Path, status: str
) -> None:
    # Given a completed installation whose environment was built
    outcome = install(harness, batch(tmp_path))
    assert outcome["result"].status == "SUCCEEDED", (outcome["result"].error, outcome["result"].cause)
    assert harness.stack.runner is not None
    [record] = harness.stack.runner.records.values()
    keys_before = harness.keys("")

    # When the build is then reported stopped, timed out or failed (late, and twice)
    late = copy.copy(record)
    late.metadata = {**record.metadata, "buildStatus": status}
    event = state_change_event(late)
    answers = [harness.stack.invoke(report_function(harness).name, json.loads(json.dumps(event))) for _ in range(2)]

    # Then nothing is answered (the token was answered), nothing is written, all stays registered
    assert [a["answered"] for a in answers] == [False, False], answers
    assert harness.keys("") == keys_before
    assert_whole(harness)


# --- S3: 5xx and connection resets in the middle of a transfer --------------------------------------


class _ResetAfter:
    """A response body that breaks after ``after`` bytes, as a reset connection does."""

    def __init__(self, body: Any, after: int) -> None:
        self._body, self._left = body, after

    def read(self, amt: int | None = None) -> bytes:
        from botocore.exceptions import ResponseStreamingError

        if self._left <= 0:
            raise ResponseStreamingError(error=ConnectionResetError(104, "Connection reset by peer"))
        data = self._body.read(min(amt or self._left, self._left))
        self._left -= len(data)
        return data

    def __enter__(self) -> _ResetAfter:
        return self

    def __exit__(self, *_: object) -> None:
        self._body.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


def test_s3_5xx_and_a_reset_in_the_middle_of_a_streamed_read_are_retried(harness: Harness, tmp_path: Path) -> None:
    events = client("s3").meta.events
    broken: Counter[str] = Counter()

    def server_error(request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        if "/archives/" in request.url and (request.context.get("retries") or {}).get("attempt", 1) == 1:
            broken["5xx"] += 1
            body = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
            return AWSResponse(request.url, 500, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    def reset_midway(parsed: dict[str, Any], **_: Any) -> None:
        if "Body" in parsed and broken["reset"] < 2:  # the first two archive reads break after 100 bytes
            broken["reset"] += 1
            parsed["Body"] = _ResetAfter(parsed["Body"], 100)

    events.register("before-send.s3.GetObject", server_error)
    events.register("after-call.s3.GetObject", reset_midway)
    try:
        outcome = install(harness, batch(tmp_path))
    finally:
        events.unregister("before-send.s3.GetObject", server_error)
        events.unregister("after-call.s3.GetObject", reset_midway)

    # 5xx answers are retried by botocore; a read that breaks off is a TransientError: retried with
    # the stage by the state machine, or (download stage) that pack's retriable failure
    assert broken["5xx"] > 0 and broken["reset"] == 2
    assert outcome["result"].status == "SUCCEEDED", (outcome["result"].error, outcome["result"].cause)
    failures = outcome["report"]["failures"]
    assert all(f["retriable"] and f["error_code"] == "TRANSIENT" and "broke off" in f["error"] for f in failures)
    # and a re-run completes the installation
    again = install(harness, batch(tmp_path))
    assert again["report"]["outcome"] == "ok", again["report"]["failures"]
    assert_whole(harness)


def test_s3_5xx_and_a_reset_during_a_multipart_upload_are_retried(harness: Harness, tmp_path: Path) -> None:
    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import ConnectionClosedError

    events = client("s3").meta.events
    broken: Counter[str] = Counter()

    def break_parts(request: Any, **_: Any) -> Any:
        if (request.context.get("retries") or {}).get("attempt", 1) > 1:
            return None
        if "partNumber=1" in request.url:
            broken["reset"] += 1
            raise ConnectionClosedError(endpoint_url=request.url)
        broken["5xx"] += 1
        body = b"<Error><Code>ServiceUnavailable</Code><Message>Please retry.</Message></Error>"
        return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Raw(body))

    big = pack_files("base", extra={"data.bin": os.urandom(9 * 2**20)})  # incompressible 9 MiB: two parts
    archives = [str(write_pack(tmp_path, "base", files=big, file_name="base-big.tar.gz")), *batch(tmp_path)[1:]]
    events.register("before-send.s3.UploadPart", break_parts)
    try:
        outcome = install(harness, archives)
    finally:
        events.unregister("before-send.s3.UploadPart", break_parts)

    assert broken["reset"] >= 1 and broken["5xx"] >= 1, (broken, outcome["report"]["failures"])
    assert outcome["result"].status == "SUCCEEDED", (outcome["result"].error, outcome["result"].cause)
    assert outcome["report"]["outcome"] == "ok", outcome["report"]["failures"]
    assert_whole(harness)


# --- the dependency loop at its bound ---------------------------------------------------------------

MAX_ROUNDS = MAX_DEPENDENCY_ROUNDS  # the state machine's MissingDependencies choice


def chain_index(folder: Path, length: int) -> Path:
    """An index of ``chain0`` -> ``chain1`` -> ... -> ``chain<length-1>``, each needing the next; the
    index does not list dependencies, so each round of the loop discovers one more pack."""
    import hashlib

    entries = []
    for number in range(length):
        ref = f"chain{number}"
        needs = f"dependencies:\n  - chain{number + 1}\n" if number + 1 < length else ""
        path = write_pack(folder, ref, files=pack_files(ref, dependencies=needs))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        source = {"type": "archive", "url": path.name, "checksum": f"sha256:{digest}"}
        entries.append({"ref": ref, "version": "1.0.0", "description": ref, "install_sources": [source]})
    index = folder / "index.json"
    index.write_text(json.dumps({"name": "chain", "packs": entries}))
    return index


def test_a_chain_within_the_dependency_loop_bound_installs_whole(harness: Harness, tmp_path: Path) -> None:
    index = chain_index(tmp_path, MAX_ROUNDS + 1)  # chain0 and five rounds of dependencies

    outcome = install(harness, ["chain0"], registry_url=str(index))

    assert outcome["result"].status == "SUCCEEDED", (outcome["result"].error, outcome["result"].cause)
    assert outcome["result"].output["dependency_rounds"] == MAX_ROUNDS
    assert outcome["report"]["outcome"] == "ok", outcome["report"]["failures"]
    assert sorted(p["pack_ref"] for p in outcome["report"]["registered"]) == [f"chain{n}" for n in range(6)]


def test_a_chain_beyond_the_dependency_loop_bound_registers_nothing_half_and_a_rerun_completes(
    harness: Harness, tmp_path: Path
) -> None:
    index = chain_index(tmp_path, MAX_ROUNDS + 2)  # chain6 would need a sixth round

    outcome = install(harness, ["chain0"], registry_url=str(index))

    # The loop stops after its last round: the execution succeeds with outcome failed, nothing is
    # registered (every pack of the chain needs the one after it), each pack says what it misses
    result, report = outcome["result"], outcome["report"]
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert (result.output["dependency_rounds"], report["outcome"], report["registered"]) == (MAX_ROUNDS, "failed", [])
    assert {f["pack_ref"]: f["error_code"] for f in report["failures"]} == {
        f"chain{n}": "DEPENDENCY_NOT_FOUND" for n in range(6)
    }
    assert any("chain6" in f["error"] for f in report["failures"])
    # and why: the chain is longer than the rounds one installation follows
    why = f"stopped downloading dependencies after its {MAX_ROUNDS} rounds"
    assert all(why in f["error"] for f in report["failures"])

    # A re-run completes it: the deep end first (within the bound), then the rest
    deep = install(harness, ["chain5"], registry_url=str(index))
    assert deep["report"]["outcome"] == "ok", deep["report"]["failures"]
    rest = install(harness, ["chain0"], registry_url=str(index))
    assert rest["report"]["outcome"] == "ok", rest["report"]["failures"]
    for n in range(7):
        assert [h["version"] for h in harness.backend.show_pack(f"chain{n}")["history"]] == ["1.0.0"]
