"""POST /packs/plan, POST /packs/install with a lock, and the lock kept with each installation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from attune_cli.http_server import LocalApiServer
from attune_cli.local_stack import LocalStack
from attune_packs.adapters.dynamodb import DynamoPackTable
from attune_packs.services.tokens import create_token
from testkit.pack_archives import pack_files, write_pack

pytestmark = pytest.mark.slow


class Api:
    def __init__(self, stack: LocalStack, url: str) -> None:
        self.url = url
        self.token = create_token(
            DynamoPackTable(stack.client("dynamodb"), stack.table), name="t", scopes=["admin"]
        ).token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=120, **kwargs)

    def finished(self, installation_id: str) -> dict[str, Any]:
        for _ in range(600):
            body = self.call("GET", f"/packs/installs/{installation_id}").json()["data"]
            if body["status"] != "RUNNING":
                return dict(body)
            time.sleep(0.2)
        raise AssertionError("the installation did not finish")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with LocalStack(tmp_path / "state") as stack, LocalApiServer(stack) as server:
        yield Api(stack, server.url)


def test_plan_then_install_then_the_stored_lock_reinstalls_and_refuses_drift(api: Api, tmp_path: Path) -> None:
    archive = write_pack(tmp_path, "demo", "1.0.0")
    # When the install is planned over the API, Then the answer is the plan, and nothing changed
    planned = api.call("POST", "/packs/plan", json={"packs": [str(archive)]})
    assert planned.status_code == 200, planned.text
    [pack] = planned.json()["data"]["packs"]
    assert (pack["pack_ref"], pack["action"], pack["requested"]) == ("demo", "install", True)
    assert api.call("GET", "/packs/demo").status_code == 404

    # When it is installed, Then the installation links its lock, which pins the planned digest
    started = api.call("POST", "/packs/install", json={"packs": [str(archive)]}).json()["data"]
    status = api.finished(started["installation_id"])
    assert status["status"] == "SUCCEEDED"
    assert status["lock"].endswith(f"reports/installs/{started['installation_id']}/lock.json")
    lock = api.call("GET", status["lock_url"].removeprefix("/api/v1")).json()
    assert lock["lockfile_version"] == 1
    assert [(p["pack_ref"], p["checksum"]) for p in lock["packs"]] == [("demo", pack["checksum"])]

    # When the same lock is installed again, Then it verifies (nothing moved) and the pack is unchanged
    again = api.call("POST", "/packs/install", json={"lock": lock})
    assert again.status_code == 202, again.text
    assert api.finished(again.json()["data"]["installation_id"])["status"] == "SUCCEEDED"

    # When the archive changes under the lock, Then the install is refused with 409 LOCK_MISMATCH
    write_pack(tmp_path, "demo", "1.0.0", pack_files("demo", "1.0.0", description="changed"))
    refused = api.call("POST", "/packs/install", json={"lock": lock})
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "LOCK_MISMATCH"
    assert refused.json()["details"][0]["field"] == "checksum"

    # And pins cannot be sent directly: only a lockfile sets them
    pins = {"demo": {"pack_version": "1.0.0", "checksum": pack["checksum"]}}
    assert api.call("POST", "/packs/install", json={"packs": [str(archive)], "locked": pins}).status_code == 400
