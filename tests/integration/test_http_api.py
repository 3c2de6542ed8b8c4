"""The HTTP API on the local stack's API Gateway: the authorizer, every route, uploads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from attune_cli.http_server import LocalApiServer
from attune_cli.local_stack import LocalStack
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.api.routes import openapi_document
from attune_packs.services.tokens import create_token, revoke_token
from testkit.pack_archives import tar_gz

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Api:
    def __init__(self, stack: LocalStack, url: str) -> None:
        self.stack, self.url = stack, url
        self.table = DynamoPackTable(stack.client("dynamodb"), stack.table)
        self.tokens = {
            scope: create_token(self.table, name=scope, scopes=[scope]).token for scope in ("read", "install", "admin")
        }
        revoked = create_token(self.table, name="revoked", scopes=["admin"])
        revoke_token(self.table, revoked.info.token_id)
        self.tokens["revoked"] = revoked.token
        self.tokens["expired"] = create_token(
            self.table, name="old", scopes=["admin"], ttl_days=1, now=datetime.now(UTC) - timedelta(days=3)
        ).token

    def call(self, method: str, path: str, token: str | None = "admin", **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with LocalStack(tmp_path_factory.mktemp("api") / "state") as stack, LocalApiServer(stack) as server:
        yield Api(stack, server.url)


def every_route() -> list[tuple[str, str]]:
    routes = []
    for path, operations in json.loads(openapi_document()).get("paths", {}).items():
        concrete = (
            path.replace("{ref}", "core_utils")
            .replace("{component_type}", "actions")
            .replace("{installation_id}", "api-none")
            .replace("{index_id}", "none")
            .replace("{execution_id}", "none")
            .replace("{token_id}", "000000000000")
        )
        routes.extend((method.upper(), concrete) for method in operations)
    return sorted(routes)


ROUTES = every_route()


def test_the_route_list_covers_the_api() -> None:
    assert len(ROUTES) >= 18
    assert ("POST", "/api/v1/packs/install") in ROUTES and ("DELETE", "/api/v1/packs/core_utils") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("credentials", [None, "Bearer", "malformed-token", "revoked", "expired"])
def test_bad_credentials_are_401_on_every_route(api: Api, method: str, path: str, credentials: str | None) -> None:
    headers = {"Authorization": credentials} if credentials == "Bearer" else {}
    response = api.call(
        method,
        path,
        token=None if credentials in (None, "Bearer") else credentials,
        headers=headers,
        json={} if method in {"POST", "PUT"} else None,
    )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] != "GET"])
def test_a_read_token_cannot_change_anything(api: Api, method: str, path: str) -> None:
    executions_before = len(
        api.stack.client("stepfunctions").list_executions(stateMachineArn=api.stack.state_machine_arn)["executions"]
    )
    response = api.call(method, path, token="read", json={"packs": ["core_utils"]} if method != "DELETE" else None)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "FORBIDDEN"
    assert (
        len(
            api.stack.client("stepfunctions").list_executions(stateMachineArn=api.stack.state_machine_arn)["executions"]
        )
        == executions_before
    )


def wait_for(api: Api, installation_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = api.call("GET", f"/api/v1/packs/installs/{installation_id}", token="read").json()["data"]
        if status["status"] != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


def test_install_over_http_then_read_the_registry(api: Api) -> None:
    body = {"packs": ["core_utils"], "registry_url": str(ROOT / "examples" / "index.json")}
    started = api.call(
        "POST", "/api/v1/packs/install", token="install", json=body, headers={"Idempotency-Key": "install-core-1"}
    )
    assert started.status_code == 202, started.text
    installation = started.json()["data"]
    assert installation["status_url"].endswith(installation["installation_id"])
    again = api.call(
        "POST", "/api/v1/packs/install", token="install", json=body, headers={"Idempotency-Key": "install-core-1"}
    )
    assert again.json()["data"]["installation_id"] == installation["installation_id"]
    other = api.call(
        "POST",
        "/api/v1/packs/install",
        token="install",
        json={**body, "force": True},
        headers={"Idempotency-Key": "install-core-1"},
    )
    assert other.status_code == 409 and other.json()["code"] == "IDEMPOTENCY_MISMATCH"

    status = wait_for(api, installation["installation_id"])
    assert status["status"] == "SUCCEEDED", status
    assert status["started_by"].startswith("api:")
    assert [p["pack_ref"] for p in status["result"]["register"]["registered_packs"]] == ["core_utils"]

    listing = api.call("GET", "/api/v1/packs?page=1&page_size=10", token="read").json()
    assert [p["ref"] for p in listing["data"]] == ["core_utils"] and listing["pagination"]["total"] == 1
    actions = api.call("GET", "/api/v1/packs/core_utils/actions", token="read").json()["data"]
    assert {a["ref"] for a in actions} == {"core_utils.echo", "core_utils.join_strings"}
    assert api.call("GET", "/api/v1/packs/nope", token="read").status_code == 404
    assert api.call("GET", "/api/v1/packs/core_utils/gadgets", token="read").status_code == 404


def test_install_takes_a_single_source_and_refuses_what_its_stages_would_refuse(api: Api) -> None:
    archive = str(ROOT / "examples" / "archives" / "core_utils-1.0.0.tar.gz")
    started = api.call("POST", "/api/v1/packs/install", token="install", json={"source": archive})
    assert started.status_code == 202, started.text
    assert wait_for(api, started.json()["data"]["installation_id"])["status"] == "SUCCEEDED"
    executions = api.stack.client("stepfunctions").list_executions(stateMachineArn=api.stack.state_machine_arn)
    for body in ({"packs": ["  "]}, {"packs": ["core_utils"], "python_version": "3"}, {}):
        refused = api.call("POST", "/api/v1/packs/install", token="install", json=body)
        assert refused.status_code == 400 and refused.json()["code"] == "INVALID_REQUEST", (body, refused.text)
    after = api.stack.client("stepfunctions").list_executions(stateMachineArn=api.stack.state_machine_arn)
    assert len(after["executions"]) == len(executions["executions"]), "no execution started"


def test_an_archive_uploaded_through_a_presigned_post_installs_itself(api: Api) -> None:
    created = api.call(
        "POST",
        "/api/v1/packs/uploads",
        token="install",
        json={"filename": "notify.tar.gz", "content_type": "application/gzip"},
    )
    assert created.status_code == 201, created.text
    upload = created.json()["data"]
    archive = (ROOT / "examples" / "archives" / "core_utils-1.0.0.tar.gz").read_bytes()
    posted = requests.post(
        upload["upload"]["url"],
        data=upload["upload"]["fields"],
        files={"file": ("notify.tar.gz", archive, "application/gzip")},
        timeout=60,
    )
    assert posted.status_code in (200, 204), posted.text
    deadline = time.monotonic() + 30
    while api.call("GET", f"/api/v1/packs/installs/{upload['installation_id']}", token="read").status_code == 404:
        assert time.monotonic() < deadline, "the upload started no installation"
        time.sleep(0.3)
    status = wait_for(api, upload["installation_id"])
    assert status["status"] == "SUCCEEDED", status
    assert status["started_by"] == f"s3://{api.stack.bucket}/{upload['key']}"


def test_registry_indices_are_managed_and_searched(api: Api) -> None:
    index_key = "registry/index.json"
    s3 = api.stack.client("s3")
    examples = json.loads((ROOT / "examples" / "index.json").read_text())
    s3.put_object(Bucket=api.stack.bucket, Key=index_key, Body=json.dumps(examples).encode())
    created = api.call(
        "POST",
        "/api/v1/pack-indices",
        json={"url": f"s3://{api.stack.bucket}/{index_key}", "name": "examples", "position": 10},
    )
    assert created.status_code == 201, created.text
    index_id = created.json()["data"]["id"]
    assert [i["id"] for i in api.call("GET", "/api/v1/pack-indices", token="read").json()["data"]] == [index_id]
    found = api.call("GET", "/api/v1/pack-indices/packs?q=slack", token="read").json()["data"]
    assert [p["ref"] for p in found] == ["notify_slack"]
    assert api.call("GET", "/api/v1/pack-indices/packs/http_tools", token="read").json()["data"][0]["versions"] == [
        "1.2.0"
    ]
    moved = api.call(
        "PUT", f"/api/v1/pack-indices/{index_id}", json={"url": f"s3://{api.stack.bucket}/{index_key}", "position": 5}
    )
    assert moved.json()["data"]["position"] == 5
    assert api.call("DELETE", f"/api/v1/pack-indices/{index_id}").status_code == 200
    assert api.call("GET", "/api/v1/pack-indices", token="read").json()["data"] == []
    assert api.call("POST", "/api/v1/pack-indices", json={"url": "file:///etc/passwd"}).status_code == 400
    for elsewhere in (f"s3://{api.stack.bucket}/archives/index.json", "s3://another-bucket/registry/index.json"):
        refused = api.call("POST", "/api/v1/pack-indices", json={"url": elsewhere})
        assert refused.status_code == 400 and "registry/" in refused.json()["error"], refused.text
    refused = api.call("POST", "/api/v1/pack-indices", json={"url": "https://user:pw@example.com/index.json"})
    assert refused.status_code == 400, refused.text


def test_an_index_added_through_the_api_serves_installs_by_name_and_their_dependencies(api: Api) -> None:
    s3 = api.stack.client("s3")
    prefix = "registry/examples"
    s3.put_object(
        Bucket=api.stack.bucket, Key=f"{prefix}/index.json", Body=(ROOT / "examples" / "index.json").read_bytes()
    )
    for archive in (ROOT / "examples" / "archives").glob("*.tar.gz"):
        s3.put_object(Bucket=api.stack.bucket, Key=f"{prefix}/archives/{archive.name}", Body=archive.read_bytes())
    location = f"s3://{api.stack.bucket}/{prefix}/index.json"
    index_id = api.call("POST", "/api/v1/pack-indices", json={"url": location, "name": "examples"}).json()["data"]["id"]
    try:
        started = api.call(
            "POST", "/api/v1/packs/install", token="install", json={"packs": ["notify_slack"], "skip_env_build": True}
        )
        assert started.status_code == 202, started.text
        status = wait_for(api, started.json()["data"]["installation_id"])
    finally:
        api.call("DELETE", f"/api/v1/pack-indices/{index_id}")
    assert status["status"] == "SUCCEEDED", status
    result = status["result"]
    assert [p["pack_ref"] for p in result["download"]["downloaded_packs"]] == ["notify_slack"]
    assert "http_tools" in [p["pack_ref"] for p in result["dependency_download"]["downloaded_packs"]]
    registered = [p["pack_ref"] for p in result["register"]["registered_packs"]]
    assert registered[-1] == "notify_slack" and "http_tools" in registered
    for ref in ("notify_slack", "http_tools"):  # leave the registry as the other tests expect it
        assert api.call("DELETE", f"/api/v1/packs/{ref}").status_code == 200


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("download", {"packs": ["core_utils"]}),
        ("dependencies", {"pack_paths": ["s3://b/archives/sha256/x.tar.gz"]}),
        ("register-batch", {"pack_paths": ["s3://b/archives/sha256/x.tar.gz"]}),
    ],
)
def test_stage_reports_belong_to_the_state_machine_not_to_api_clients(
    api: Api, route: str, body: dict[str, Any]
) -> None:
    body = {**body, "report_key": "reports/installs/someone-else/download.json"}
    refused = api.call("POST", f"/api/v1/packs/{route}", token="install", json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "INVALID_REQUEST", refused.text
    assert "report_key" in refused.text


def test_openapi_is_served(api: Api) -> None:
    document = api.call("GET", "/api/v1/openapi.json", token="read").json()
    assert document["openapi"].startswith("3.") and "/api/v1/packs" in document["paths"]


def test_components_listing_rollback_and_remove_over_http(api: Api) -> None:
    body = {"packs": ["core_utils"], "registry_url": str(ROOT / "examples" / "index.json")}
    started = api.call("POST", "/api/v1/packs/install", token="install", json=body).json()["data"]
    assert wait_for(api, started["installation_id"])["status"] == "SUCCEEDED"

    actions = api.call("GET", "/api/v1/components/actions?limit=50", token="read").json()["data"]
    assert {"core_utils.echo", "core_utils.join_strings"} <= {c["ref"] for c in actions["components"]}

    # Only one version registered: nothing to roll back to.
    rollback = api.call("POST", "/api/v1/packs/core_utils/rollback", json={})
    assert rollback.status_code in (404, 409), rollback.text
    assert api.call("POST", "/api/v1/packs/core_utils/rollback", token="install", json={}).status_code == 403

    removed = api.call("DELETE", "/api/v1/packs/core_utils")
    assert removed.status_code == 200, removed.text
    assert api.call("GET", "/api/v1/packs/core_utils", token="read").status_code == 404


def test_build_envs_answers_at_once_when_every_environment_is_stored(api: Api) -> None:
    body = {"packs": ["core_utils"], "registry_url": str(ROOT / "examples" / "index.json")}
    downloaded = api.call("POST", "/api/v1/packs/download", token="install", json=body)
    assert downloaded.status_code == 200, downloaded.text
    archive = downloaded.json()["data"]["pack_paths"][0]

    answered = api.call("POST", "/api/v1/packs/build-envs", token="install", json={"pack_paths": [archive]})
    assert answered.status_code == 200, answered.text
    data = answered.json()["data"]
    assert data["status"] == "SUCCEEDED" and data["installation_id"] is None
    [built] = data["built_environments"]
    assert built["pack_ref"] == "core_utils" and built["pack_path"] == archive
    assert built["environments"] == {"python": None, "nodejs": None}
    assert data["summary"]["success_count"] == 1


def multipart_upload(api: Api, archive: bytes, token: str = "install", **fields: str) -> requests.Response:
    return api.call(
        "POST",
        "/api/v1/packs/upload",
        token=token,
        files={
            "pack": ("core_utils-1.0.0.tar.gz", archive, "application/gzip"),
            **{k: (None, v) for k, v in fields.items()},
        },
    )


def test_an_archive_posted_multipart_as_attunes_web_ui_does_installs(api: Api) -> None:
    archive = (ROOT / "examples" / "archives" / "core_utils-1.0.0.tar.gz").read_bytes()
    started = multipart_upload(api, archive, force="true")
    assert started.status_code == 202, started.text
    data = started.json()["data"]
    assert data["size_bytes"] == len(archive) and data["started_by"].startswith("api:")
    status = wait_for(api, data["installation_id"])
    assert status["status"] == "SUCCEEDED", status
    assert status["request"]["force"] is True and status["started_by"] == data["started_by"]
    assert [p["pack_ref"] for p in status["result"]["register"]["registered_packs"]] == ["core_utils"]
    assert multipart_upload(api, archive, token="read").status_code == 403


def test_update_a_pack_and_read_its_test_history(api: Api) -> None:
    archive = (ROOT / "examples" / "archives" / "core_utils-1.0.0.tar.gz").read_bytes()
    started = multipart_upload(api, archive, force="true").json()["data"]
    assert wait_for(api, started["installation_id"])["status"] == "SUCCEEDED"

    changed = api.call(
        "PUT",
        "/api/v1/packs/core_utils",
        json={"label": "Core!", "description": {"op": "set", "value": "changed"}, "enabled": False},
    )
    assert changed.status_code == 200, changed.text
    pack = changed.json()["data"]
    assert (pack["label"], pack["description"], pack["enabled"]) == ("Core!", "changed", False)
    assert pack["updated_by"].startswith("api:")
    no_schema = api.call("PUT", "/api/v1/packs/core_utils", json={"config": {"a": 1}})
    assert no_schema.status_code == 400 and "conf_schema" in no_schema.text
    assert api.call("PUT", "/api/v1/packs/core_utils", token="install", json={"label": "x"}).status_code == 403
    assert api.call("PUT", "/api/v1/packs/core_utils", json={"version": "9.9.9"}).status_code == 400

    history = api.call("GET", "/api/v1/packs/core_utils/tests", token="read")
    assert history.status_code == 200 and history.json()["data"]["executions"] == []  # it declares no tests
    assert api.call("GET", "/api/v1/packs/core_utils/tests/latest", token="read").status_code == 404
    rerun = api.call("POST", "/api/v1/packs/core_utils/test", token="install")
    assert rerun.status_code == 400 and rerun.json()["code"] == "PACK_HAS_NO_TESTS"


def test_register_one_pack_from_this_bucket(api: Api) -> None:
    archive = (ROOT / "examples" / "archives" / "core_utils-1.0.0.tar.gz").read_bytes()
    key = "uploads/register-test/core_utils-1.0.0.tar.gz"
    api.stack.client("s3").put_object(Bucket=api.stack.bucket, Key=key, Body=archive)
    body = {"path": f"s3://{api.stack.bucket}/{key}", "force": True, "skip_tests": True}
    registered = api.call("POST", "/api/v1/packs/register", token="install", json=body)
    assert registered.status_code == 200, registered.text
    data = registered.json()["data"]
    assert data["pack"]["ref"] == "core_utils" and data["tests_skipped"] is True
    assert data["registration"]["registered_packs"][0]["storage_path"].startswith(f"s3://{api.stack.bucket}/archives/")
    elsewhere = api.call("POST", "/api/v1/packs/register", token="install", json={"path": "s3://other-bucket/x.tar.gz"})
    assert elsewhere.status_code == 400


def test_a_read_or_install_token_cannot_list_tokens(api: Api) -> None:
    for token in ("read", "install"):
        assert api.call("GET", "/api/v1/tokens", token=token).status_code == 403
    listed = api.call("GET", "/api/v1/tokens")
    assert listed.status_code == 200 and all("hash" not in t for t in listed.json()["data"])
    no_expiry = {"name": "x", "scopes": ["read"], "ttl_days": None}
    assert api.call("POST", "/api/v1/tokens", json=no_expiry).status_code == 400


def test_a_packs_tests_run_again_in_a_real_build_and_their_result_joins_its_history(api: Api) -> None:
    # Given a pack with a script test runner, installed over HTTP (its tests ran in the install's build)
    files = {
        "pack.yaml": (
            'ref: smoke_tested\nversion: "1.0.0"\n'
            "testing:\n  runners:\n    smoke: {type: script, entry_point: smoke.py}\n"
        ),
        "actions/noop.yaml": "name: noop\nrunner_type: shell\nentry_point: noop.sh\n",
        "actions/noop.sh": "#!/bin/sh\necho ok\n",
        "smoke.py": "print('smoke ok')\n",
    }
    started = multipart_upload(api, tar_gz(files, root="smoke_tested/"))
    assert started.status_code == 202, started.text
    status = wait_for(api, started.json()["data"]["installation_id"])
    assert status["status"] == "SUCCEEDED", status
    assert [p["pack_ref"] for p in status["result"]["register"]["registered_packs"]] == ["smoke_tested"], status
    [installed] = api.call("GET", "/api/v1/packs/smoke_tested/tests", token="read").json()["data"]["executions"]
    assert (installed["trigger"], installed["status"], installed["passed"]) == ("install", "passed", 1)

    # When its tests are run again
    rerun = api.call("POST", "/api/v1/packs/smoke_tested/test", token="install")
    assert rerun.status_code == 202, rerun.text
    execution_id = rerun.json()["data"]["execution"]["id"]

    # Then a build runs them (the local CodeBuild runner, the real buildspec) and the run completes
    deadline = time.monotonic() + 300
    while True:
        latest = api.call("GET", "/api/v1/packs/smoke_tested/tests/latest", token="read").json()["data"]
        if latest["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (latest["id"], latest["trigger"], latest["status"]) == (execution_id, "rerun", "passed")
    assert (latest["total_tests"], latest["passed"], latest["failed"]) == (1, 1, 0)
    assert latest["report"] and latest["report"] != installed["report"]

    # And the history lists both runs, newest first
    history = api.call("GET", "/api/v1/packs/smoke_tested/tests", token="read").json()["data"]["executions"]
    assert [(e["trigger"], e["status"]) for e in history] == [("rerun", "passed"), ("install", "passed")]
