"""The services behind the new pack routes: PUT /packs/{ref}, the test history and its re-runs,
and what the register routes accept from an API caller."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.errors import InvalidRequestError, NotFoundError
from attune_packs.models import BuildReference, BuiltEnvironment, EnvironmentArtifact, RegisterRequest
from attune_packs.services import pack_tests, registration_gate
from attune_packs.services.catalog import show_pack
from attune_packs.services.pack_updates import PackUpdate, update_pack
from attune_packs.services.stages.register import register_packs
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz

CONF = (
    "conf_schema:\n  channel: {type: string, required: true}\n  retries: {type: integer}\nconfig:\n  channel: '#ops'\n"
)
TESTING = "testing:\n  enabled: true\n  runners:\n    python: {type: script, entry_point: tests/run.sh}\n"


def stored(store: FakeObjectStore, body: bytes) -> str:
    """The archive stored as the download stage stores it: named by its content's sha256."""
    return store.add(stored_archive_key(body), body)


def installed(store: FakeObjectStore, table: FakePackTable, extra_yaml: str = "", **results: Any) -> str:
    files = pack_files("chat", "1.0.0", dependencies=extra_yaml)
    files["tests/run.sh"] = "#!/bin/sh\necho ok\n"
    path = stored(store, tar_gz(files))
    request = RegisterRequest(pack_paths=[path], requested_by="api:tokenid", **results)
    response = register_packs(request, store=store, table=table)
    assert response.failed_packs == [], response.failed_packs
    return path


# --- PUT /packs/{ref} -----------------------------------------------------------------------------


def test_label_description_and_enabled_change_and_the_pointer_revision_moves_on() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(store, table, CONF)
    before = show_pack(table, "chat")
    after = update_pack(
        table,
        store,
        "chat",
        PackUpdate.model_validate({"label": "Chat", "description": {"op": "clear"}, "enabled": False}),
        updated_by="api:admin",
    )
    assert (after["label"], after.get("description"), after["enabled"]) == ("Chat", None, False)
    assert after["revision"] == before["revision"] + 1 and after["updated_by"] == "api:admin"
    assert after["components"] == before["components"] and after["version"] == "1.0.0"


def test_config_is_validated_against_the_packs_conf_schema() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(store, table, CONF)
    with pytest.raises(InvalidRequestError) as refused:
        update_pack(table, store, "chat", PackUpdate(config={"retries": "three"}), updated_by="api:a")
    assert refused.value.error_code == "CONFIG_INVALID"
    assert {d["field"] for d in refused.value.details} >= {"config.retries"}
    done = update_pack(table, store, "chat", PackUpdate(config={"channel": "#dev", "retries": 2}), updated_by="api:a")
    assert done["config"] == {"channel": "#dev", "retries": 2}


def test_a_pack_without_conf_schema_takes_no_config_and_unknown_packs_are_404() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(store, table)
    with pytest.raises(InvalidRequestError, match="conf_schema"):
        update_pack(table, store, "chat", PackUpdate(config={"a": 1}), updated_by="api:a")
    with pytest.raises(NotFoundError):
        update_pack(table, store, "nope", PackUpdate(label="x"), updated_by="api:a")
    with pytest.raises(InvalidRequestError, match="nothing to change"):
        update_pack(table, store, "chat", PackUpdate(), updated_by="api:a")


# --- the test history -------------------------------------------------------------------------------

RESULT = {
    "status": "passed",
    "total_tests": 4,
    "passed": 4,
    "failed": 0,
    "skipped": 0,
    "pass_rate": 1.0,
    "duration_ms": 1200,
    "suites": [
        {
            "name": "python",
            "type": "script",
            "status": "passed",
            "total": 4,
            "passed": 4,
            "failed": 0,
            "skipped": 0,
            "failures": [],
        }
    ],
    "policy": {"min_pass_rate": 1.0, "on_failure": "block"},
    "report": "s3://packs/reports/builds/tests/x.json",
}


def built(result: dict[str, Any]) -> BuiltEnvironment:
    env = EnvironmentArtifact(
        artifact="s3://packs/envs/h/python.tar.gz", env_hash="h", cached=False, python_version="3.12"
    )
    return BuiltEnvironment(pack_ref="chat", environments={"python": env}, duration_ms=1, test_result=result)


def test_an_install_that_ran_tests_is_an_execution_with_its_environment() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(store, table, TESTING, build_results=[built(RESULT)])
    [execution] = pack_tests.history(table, store, "chat")
    assert (execution.trigger, execution.status, execution.passed, execution.pass_rate) == ("install", "passed", 4, 1.0)
    assert execution.environment == {
        "python": {"env_hash": "h", "artifact": "s3://packs/envs/h/python.tar.gz", "python_version": "3.12"}
    }
    assert execution.suites[0].name == "python" and execution.started_by == "api:tokenid"
    assert execution.report == RESULT["report"]


def test_the_history_of_an_unknown_pack_is_404_and_of_a_pack_without_tests_empty() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    with pytest.raises(NotFoundError):
        pack_tests.history(table, store, "chat")
    installed(store, table)
    assert pack_tests.history(table, store, "chat") == []


class Starter:
    """CodeBuild as the re-run sees it: starts builds, reports their state."""

    def __init__(self) -> None:
        self.started: list[dict[str, str]] = []
        self.state = "IN_PROGRESS"

    def start(
        self, *, buildspec: str, environment: dict[str, str], timeout_minutes: int, idempotency_token: str
    ) -> str:
        self.started.append(environment)
        return f"build-{len(self.started)}"

    def status(self, build_id: str) -> dict[str, Any]:
        return {"buildStatus": self.state}


def test_a_rerun_runs_the_installed_versions_tests_alone_and_completes_from_its_report() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(store, table, TESTING, build_results=[built(RESULT)])
    starter = Starter()
    running = pack_tests.rerun(table, store, starter, "chat", architecture="arm64", started_by="api:tokenid")
    [environment] = starter.started
    assert environment["RUN_TESTS"] == "1" and environment["BUILD_PYTHON"] == "0"
    assert environment["TEST_REPORT_KEY"].startswith(pack_tests.RERUN_REPORT_PREFIX)
    assert running.status == "running" and running.trigger == "rerun"
    assert pack_tests.history(table, store, "chat", starter=starter)[0].status == "running"

    failed = {**RESULT, "status": "failed", "passed": 3, "failed": 1, "pass_rate": 0.75}
    store.put_bytes(environment["TEST_REPORT_KEY"], json.dumps({"test_result": failed}).encode())
    starter.state = "SUCCEEDED"
    newest = pack_tests.history(table, store, "chat", starter=starter)[0]
    assert (newest.id, newest.status, newest.failed, newest.pass_rate) == (running.id, "failed", 1, 0.75)
    page = pack_tests.page(pack_tests.history(table, store, "chat"), "chat", 1, 1)
    assert page.total == 2 and [e.id for e in page.executions] == [running.id]


def test_a_pack_without_tests_cannot_be_rerun() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(store, table)
    with pytest.raises(InvalidRequestError) as refused:
        pack_tests.rerun(table, store, Starter(), "chat", architecture="arm64", started_by="api:x")
    assert refused.value.error_code == "PACK_HAS_NO_TESTS"


# --- what registration accepts from an API caller ----------------------------------------------------


@pytest.mark.parametrize("line", ["--index-url https://evil.example/simple\nsix\n", "-e git+https://x/y.git#egg=y\n"])
def test_a_pack_whose_requirements_the_dependency_rules_refuse_is_refused(line: str) -> None:
    store, table = FakeObjectStore(), FakePackTable()
    bad = stored(store, tar_gz(pack_files("bad", requirements=line)))
    good = stored(store, tar_gz(pack_files("good", requirements="six==1.16.0\n")))
    [refused] = registration_gate.refused_by_dependency_rules([bad, good], store, table, strict=True)
    assert refused.source == bad and refused.error_code.startswith("REQUIREMENTS")


def test_build_references_must_point_at_this_buckets_build_reports() -> None:
    store = FakeObjectStore()
    good = BuildReference(pack_ref="a", report="s3://packs/reports/installs/api-1/build-a.json", sha256="0" * 64)
    registration_gate.check_build_references([good], store)
    for report in ("s3://other/reports/installs/api-1/build-a.json", "s3://packs/uploads/x.json"):
        with pytest.raises(InvalidRequestError) as refused:
            registration_gate.check_build_references([good.model_copy(update={"report": report})], store)
        assert refused.value.error_code == "BUILD_RESULT_UNTRUSTED"
