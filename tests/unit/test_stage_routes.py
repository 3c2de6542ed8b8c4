"""The stage routes over fakes: build-envs answers at once what is stored and hands the rest to
the asynchronous build (202), with Attune's field names either way."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeObjectStore

from attune_packs import wiring
from attune_packs.api.routes import handle
from testkit.events import load_event
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz


def stored(store: FakeObjectStore, body: bytes) -> str:
    return store.add(stored_archive_key(body), body)


class Invoker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke_build_envs(self, installation_id: str, request: dict[str, Any]) -> None:
        self.calls.append((installation_id, request))


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    store, invoker = FakeObjectStore(), Invoker()
    monkeypatch.setattr(wiring, "object_store", lambda: store)
    monkeypatch.setattr(wiring, "async_invoker", lambda: invoker)
    monkeypatch.setattr(wiring, "settings", lambda: SimpleNamespace(target_architecture="arm64"))
    return SimpleNamespace(store=store, invoker=invoker)


def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    event = load_event("api_rest_request")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = "POST"
    event["path"] = path
    event["requestContext"]["authorizer"]["scopes"] = "install"
    event["body"] = json.dumps(body)

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "serve_api", 256, "t"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:serve_api"

    response = handle(event, Context())
    return response["statusCode"], json.loads(response["body"])


ATTUNE_BODY = {
    "packs_base_dir": "/opt/attune/packs",
    "python_version": "3.11",
    "nodejs_version": "20",
    "skip_python": False,
    "skip_nodejs": False,
    "force_rebuild": False,
    "timeout": 600,
}


def test_a_pack_needing_nothing_is_answered_at_once(stage: SimpleNamespace) -> None:
    path = stored(stage.store, tar_gz(pack_files("plain")))
    status, body = post("/api/v1/packs/build-envs", {"pack_paths": [path], **ATTUNE_BODY})
    assert status == 200, body
    data = body["data"]
    assert data["status"] == "SUCCEEDED" and stage.invoker.calls == []
    assert [(b["pack_ref"], b["pack_path"]) for b in data["built_environments"]] == [("plain", path)]


def test_a_pack_whose_environment_must_be_built_continues_asynchronously(stage: SimpleNamespace) -> None:
    plain = stored(stage.store, tar_gz(pack_files("plain")))
    needy = stored(stage.store, tar_gz(pack_files("needy", requirements="six==1.16.0\n")))
    status, body = post("/api/v1/packs/build-envs", {"pack_paths": [plain, needy], **ATTUNE_BODY})
    assert status == 202, body
    data = body["data"]
    assert data["status"] == "RUNNING" and data["pending_packs"] == [needy]
    assert data["status_url"] == f"/api/v1/packs/installs/{data['installation_id']}"
    [(installation_id, request)] = stage.invoker.calls
    assert installation_id == data["installation_id"] and "packs_base_dir" not in request
    assert request["pack_paths"] == [plain, needy] and request["python_version"] == "3.11"
    recorded = json.loads(stage.store.objects[f"reports/async-builds/{installation_id}.json"][0])
    assert recorded["status"] == "RUNNING"


def test_an_unreadable_archive_is_a_failed_environment_in_attunes_shape(stage: SimpleNamespace) -> None:
    gone = "s3://packs/archives/sha256/" + "0" * 64 + ".tar.gz"
    status, body = post("/api/v1/packs/build-envs", {"pack_paths": [gone]})
    assert status == 200, body
    [failed] = body["data"]["failed_environments"]
    assert failed["pack_path"] == gone and failed["runtime"] == "unknown"
    assert failed["error_code"] == "SOURCE_GONE" and body["data"]["summary"]["failure_count"] == 1
