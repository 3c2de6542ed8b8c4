"""Every function logs with its installation's correlation ids, counts what operators watch in one
EMF namespace, and creates its X-Ray tracer only when it traces, never at import."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune_packs import observability
from attune_packs.api.routes import app
from attune_packs.models import PackFailure
from attune_packs.observability import (
    api_route,
    correlation_ids,
    count_api_response,
    count_pack_failures,
    observed,
    tracing_enabled,
)

ROOT = Path(__file__).resolve().parents[2]
EXECUTIONS = "arn:aws:states:eu-west-1:123456789012:execution:attune-install-packs"


class Context:
    function_name = "RegisterPacks"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:RegisterPacks"

    def get_remaining_time_in_millis(self) -> int:
        return 1000


def _documents(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _emf(output: str) -> list[dict[str, Any]]:
    return [doc for doc in _documents(output) if "_aws" in doc]


@pytest.fixture(autouse=True)
def _metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    observability.logger.setLevel("INFO")
    observability.metrics.clear_metrics()


def test_a_stage_event_names_its_installation_execution_and_packs() -> None:
    register = {"pack_paths": ["s3://b/archives/a.tar.gz"], "report_key": "reports/installs/api-42/register.json"}
    build_item = {
        "task_token": "t",
        "pack_path": "s3://b/archives/sha256/ab.tar.gz",
        "report_key": "reports/installs/api-42/build-slack.json",
    }
    async_build = {"installation_id": "build-7", "async_build": {"pack_paths": ["x"]}}

    assert correlation_ids(register, EXECUTIONS) == {
        "installation_id": "api-42",
        "execution_arn": f"{EXECUTIONS}:api-42",
        "pack_refs": ["s3://b/archives/a.tar.gz"],
    }
    assert correlation_ids(build_item) == {
        "installation_id": "api-42",
        "pack_ref": "slack",
        "pack_path": "s3://b/archives/sha256/ab.tar.gz",
    }
    assert correlation_ids(async_build)["installation_id"] == "build-7"
    assert correlation_ids({"report_key": "elsewhere/x.json"}) == {}
    assert correlation_ids("not an event") == {}


def test_credentials_in_a_source_url_never_reach_the_logs() -> None:
    event = {"packs": ["https://deploy:s3cr3t@git.example.com/org/pack.git@v1", "slack@2.1.0"]}

    assert correlation_ids(event)["pack_refs"] == ["https://***@git.example.com/org/pack.git@v1", "slack@2.1.0"]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = observability.logger.registered_handler
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def test_every_log_line_of_an_invocation_carries_the_correlation_ids(
    log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(observability.EXECUTIONS_ARN_ENV, EXECUTIONS)

    @observed
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        observability.logger.info("registering")
        observability.logger.warning("one pack failed")
        return {"ok": True}

    assert handler({"report_key": "reports/installs/api-42/register.json", "pack_paths": ["a"]}, Context()) == {
        "ok": True
    }
    handler({"pack_paths": ["b"]}, Context())

    first, second, third, _ = [d for d in _documents(log_stream.getvalue()) if "message" in d]
    for line in (first, second):
        assert line["installation_id"] == "api-42"
        assert line["execution_arn"] == f"{EXECUTIONS}:api-42"
        assert line["function_name"] == "RegisterPacks"
    assert "installation_id" not in third, "ids of one invocation never leak into the next"


def test_pack_failures_are_counted_per_error_code_in_the_one_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    failures = [
        PackFailure(source="a", error="x", error_code="ARCHIVE_CORRUPT"),
        PackFailure(source="b", error="y", error_code="ARCHIVE_CORRUPT"),
        {"source": "c", "error": "z", "error_code": "PACK_NOT_FOUND"},
    ]

    count_pack_failures("download", failures)

    counted = {
        doc["error_code"]: doc["PackFailures"]
        for doc in _emf(capsys.readouterr().out)
        if doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == observability.NAMESPACE
    }
    assert counted == {"ARCHIVE_CORRUPT": [2.0], "PACK_NOT_FOUND": [1.0]}


def test_metrics_added_by_a_handler_are_flushed_once_at_the_end_of_its_invocation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @observed
    def handler(event: dict[str, Any], context: Any) -> None:
        observability.count("PacksRegistered", event.get("registered", 0))

    handler({"report_key": "reports/installs/api-9/register.json", "registered": 3}, Context())
    handler({}, Context())  # nothing counted: nothing printed

    [document] = _emf(capsys.readouterr().out)
    assert document["PacksRegistered"] == [3.0]
    assert document["installation_id"] == "api-9"
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "AttunePackInstaller"


def test_metrics_are_flushed_when_the_handler_fails(capsys: pytest.CaptureFixture[str]) -> None:
    @observed
    def handler(event: dict[str, Any], context: Any) -> None:
        observability.count("PacksDownloaded", 1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, Context())

    assert [d["PacksDownloaded"] for d in _emf(capsys.readouterr().out)] == [[1.0]]


def test_api_responses_are_counted_by_route_template_never_by_raw_path(capsys: pytest.CaptureFixture[str]) -> None:
    event = {"httpMethod": "GET", "path": "/api/v1/packs/installs/api-123"}
    route = api_route(app, event)

    count_api_response(route, {"statusCode": 404, "body": "{}"})
    count_api_response(route, {"statusCode": 503, "body": "{}"})
    count_api_response(route, {"statusCode": 200, "body": "{}"})

    assert route == "GET /api/v1/packs/installs/<installation_id>"
    assert [(d.get("Api4xx"), d.get("Api5xx"), d["route"]) for d in _emf(capsys.readouterr().out)] == [
        ([1.0], None, route),
        (None, [1.0], route),
    ]
    assert api_route(app, {"httpMethod": "GET", "path": "/nowhere"}) == "GET unmatched"


def test_an_install_that_started_an_execution_counts_one_installation_started(
    capsys: pytest.CaptureFixture[str],
) -> None:
    route = api_route(app, {"httpMethod": "POST", "path": "/api/v1/packs/install"})

    count_api_response(route, {"statusCode": 202, "body": json.dumps({"data": {"created": True}})})
    count_api_response(route, {"statusCode": 202, "body": json.dumps({"data": {"created": False}})})  # replay
    observability.flush_metrics()

    assert [d.get("InstallationsStarted") for d in _emf(capsys.readouterr().out)] == [[1.0]]


def test_tracing_is_on_only_inside_lambda_and_unless_disabled() -> None:
    assert tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task"})
    assert not tracing_enabled({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not tracing_enabled({})


def test_a_handler_that_does_not_trace_never_creates_the_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    observability.tracer.cache_clear()

    @observed
    def handler(event: dict[str, Any], context: Any) -> str:
        return "done"

    assert handler({}, Context()) == "done"
    assert observability.tracer.cache_info().currsize == 0


def test_importing_any_handler_imports_neither_boto3_nor_the_xray_sdk() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT / 'cli'}"}
    for app_path in sorted((ROOT / "functions").glob("*/*/app.py")):
        script = (
            "import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('app', {str(app_path)!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(sorted(m for m in ('boto3', 'aws_xray_sdk') if m in sys.modules))\n"
        )
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "[]", app_path


def test_environment_lookups_count_hits_and_misses(capsys: pytest.CaptureFixture[str]) -> None:
    observability.count_environment_lookups(hits=2, misses=1)
    observability.flush_metrics()

    [document] = _emf(capsys.readouterr().out)
    assert (document["EnvCacheHits"], document["EnvCacheMisses"]) == ([2.0], [1.0])


class RecordingTracer:
    """Stands in for powertools' Tracer: records what it wraps, as capture_lambda_handler does."""

    def __init__(self) -> None:
        self.wrapped: list[Any] = []
        self.calls = 0

    def capture_lambda_handler(self, handler: Any, capture_response: bool = True) -> Any:
        self.wrapped.append((handler, capture_response))

        def traced(event: Any, context: Any) -> Any:
            self.calls += 1
            return handler(event, context)

        return traced


def test_on_lambda_the_tracer_is_created_at_the_first_invocation_and_wraps_the_handler_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    created: list[RecordingTracer] = []

    def tracer() -> RecordingTracer:
        if not created:
            created.append(RecordingTracer())
        return created[0]

    monkeypatch.setattr(observability, "tracer", tracer)

    @observed
    def handler(event: dict[str, Any], context: Any) -> str:
        return "answered"

    assert created == [], "decorating (importing a handler) creates no tracer"
    assert handler({}, Context()) == "answered"
    assert handler({}, Context()) == "answered"

    [recording] = created
    assert len(recording.wrapped) == 1 and recording.wrapped[0][1] is False, "responses are not captured"
    assert recording.calls == 2
