"""Register stage and registry lifecycle on the in-memory table: items first, then a conditional
pointer flip; idempotent; never half-registered; remove and rollback; the read side."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.data.operations import Put
from attune_packs.data.packs import component_fields
from attune_packs.errors import DependencyError, NotFoundError, SourceGoneError, ThrottledError
from attune_packs.models import (
    COMPONENT_TYPES,
    BuiltEnvironment,
    EnvironmentArtifact,
    FailedBuild,
    RegisterRequest,
    RegisterResponse,
)
from attune_packs.services import catalog, lifecycle
from attune_packs.services.catalog import get_component, list_components, list_packs, show_pack
from attune_packs.services.stages.register import RegistryPolicy, register_packs
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz


def put(store: FakeObjectStore, ref: str, version: str, deps: str = "", **kw: Any) -> str:
    body = tar_gz(pack_files(ref, version, dependencies=deps, **kw))
    return store.add(stored_archive_key(body), body)


def register(store: FakeObjectStore, table: FakePackTable, *paths: str, **options: Any) -> RegisterResponse:
    policy = options.pop("policy", None)
    clock = options.pop("clock", None)
    extra = {"clock": clock} if clock else {}
    return register_packs(
        RegisterRequest(pack_paths=list(paths), **options), store=store, table=table, policy=policy, **extra
    )


def pack_items(table: FakePackTable, ref: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    return {sk: item for (pk, sk), item in table.items.items() if pk == f"PACK#{ref}" and sk.startswith(prefix)}


def component_keys(table: FakePackTable, ref: str) -> set[str]:
    """The keys of the pack's component items (not of the listings of them)."""
    return {sk for sk, item in pack_items(table, ref, "COMPONENT#").items() if item["entity"] == "component"}


# Every registration's items written in batches before its flip (as for a pack too large for the
# flip's transaction), whatever its size.
STAGED_FIRST = RegistryPolicy(inline_registration_bytes=0)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# --- registration ---------------------------------------------------------------------------------


def test_pack_and_components_are_registered_dependencies_first() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    app = put(store, "app", "1.0.0", "dependencies: [lib]\n")
    lib = put(store, "lib", "2.0.0")
    response = register(store, table, app, lib)
    assert [p.pack_ref for p in response.registered_packs] == ["lib", "app"]
    assert set(response.registered_packs[0].components_registered) == set(COMPONENT_TYPES)
    assert response.registered_packs[0].components_registered["actions"] == 1
    current = table.items[("PACK#app", "CURRENT")]
    assert current["version"] == "1.0.0" and current["revision"] == 1
    rid = current["registration_id"]
    component = component_fields(table.items[("PACK#app", f"COMPONENT#1.0.0#{rid}#actions#hello")])
    assert component["ref"] == "app.hello" and component["GSI1PK"] == "COMPONENT#actions"
    assert component["GSI1SK"] == f"app.hello#1.0.0#{rid}"
    assert component["parameters"] == {"who": {"type": "string"}}
    assert response.summary.total_components == 2
    # app is recorded as a dependent of lib, and nothing stays staged
    assert table.items[("PACK#lib", "CURRENT#DEPENDENT#app")]["constraint"] == "*"
    assert not [k for k in table.items if k[1].startswith("CURRENT#STAGED#")]


def test_the_version_record_says_what_who_when_and_which_installation() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "app", "1.0.0")
    register(store, table, path, installation_id="install-1", requested_by="token-42")
    record = table.items[("PACK#app", "VERSION#1.0.0")]
    assert record["archive"] == path
    assert record["checksum"] == "sha256:" + path.rsplit("/", 1)[-1].removesuffix(".tar.gz")
    assert record["installation_id"] == "install-1" and record["registered_by"] == "token-42"
    assert record["registered_at"] and record["component_counts"]["actions"] == 1
    installation = catalog.installation_record(table, "install-1")
    assert installation["summary"]["success_count"] == 1
    assert [(p["pack_ref"], p["status"]) for p in installation["packs"]] == [("app", "registered")]


def test_registering_the_same_version_again_is_a_no_op_success() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "app", "1.0.0")
    register(store, table, path, installation_id="first")
    before = {k: dict(v) for k, v in table.items.items() if k[0] == "PACK#app"}
    again = register(store, table, path, installation_id="second")
    assert again.registered_packs[0].status == "unchanged"
    assert {k: v for k, v in table.items.items() if k[0] == "PACK#app"} == before
    assert table.calls["transact_write_items"] == 1


def test_a_retried_stage_reports_what_its_installation_registered() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "app", "1.0.0")
    first = register(store, table, path, installation_id="install-7")
    retried = register(store, table, path, installation_id="install-7")
    assert retried.registered_packs[0].status == first.registered_packs[0].status == "registered"
    assert table.items[("PACK#app", "CURRENT")]["revision"] == 1


def test_other_content_under_the_same_version_needs_force_and_replaces_every_component() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0", extra={"actions/gone.yaml": "name: gone\nrunner_type: x\n"}))
    old = component_keys(table, "app")
    changed = put(store, "app", "1.0.0", extra={"README.md": "changed"})
    refused = register(store, table, changed)
    assert refused.failed_packs[0].error_code == "VERSION_CONTENT_MISMATCH"
    assert component_keys(table, "app") == old
    assert register(store, table, changed, force=True).registered_packs[0].status == "registered"
    shown = show_pack(table, "app")
    assert shown["checksum"] == "sha256:" + changed.rsplit("/", 1)[-1].removesuffix(".tar.gz")
    assert [c["name"] for c in shown["components"]["actions"]] == ["hello"]
    assert not component_keys(table, "app") & old, "the replaced registration's items are deleted"


def test_downgrades_need_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "2.0.0"))
    assert register(store, table, put(store, "app", "1.0.0")).failed_packs[0].error_code == "DOWNGRADE_REFUSED"
    forced = register(store, table, put(store, "app", "1.0.0"), force=True)
    assert forced.registered_packs[0].previous_version == "2.0.0"
    assert show_pack(table, "app")["version"] == "1.0.0"


def test_a_pack_whose_dependency_is_missing_is_not_registered() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    response = register(store, table, put(store, "app", "1.0.0", "dependencies: [ghost]\n"))
    assert response.failed_packs[0].error_code == "DEPENDENCY_NOT_FOUND"
    assert pack_items(table, "app") == {}


def test_a_failed_build_keeps_its_pack_out_and_the_others_go_on() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    a, b = put(store, "a", "1.0.0", requirements="six\n"), put(store, "b", "1.0.0")
    failed = FailedBuild(pack_ref="a", failed=True, error_type="BuildError", error="no such package")
    response = register(store, table, a, b, build_results=[failed], installation_id="i-1")
    assert [p.pack_ref for p in response.registered_packs] == ["b"]
    assert response.failed_packs[0].error_code == "BUILD_FAILED"
    assert pack_items(table, "a") == {}
    statuses = {p["pack_ref"]: p["status"] for p in catalog.installation_record(table, "i-1")["packs"]}
    assert statuses == {"a": "failed", "b": "registered"}


def test_the_same_pack_twice_in_a_batch_is_reported_not_dropped() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    response = register(store, table, put(store, "app", "1.0.0"), put(store, "app", "1.1.0"))
    assert [p.pack_version for p in response.registered_packs] == ["1.0.0"]
    assert response.failed_packs[0].error_code == "PACK_DUPLICATE_IN_BATCH"


def test_environment_artifacts_are_recorded_on_the_pack() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "a", "1.0.0", requirements="six\n")
    env = EnvironmentArtifact(artifact="s3://packs/envs/h/python.tar.gz", env_hash="h", cached=False, package_count=1)
    register(
        store, table, path, build_results=[BuiltEnvironment(pack_ref="a", environments={"python": env}, duration_ms=1)]
    )
    assert table.items[("PACK#a", "CURRENT")]["environments"]["python"]["env_hash"] == "h"
    assert table.items[("PACK#a", "VERSION#1.0.0")]["environments"]["python"]["artifact"] == env.artifact


def test_a_registration_that_fits_is_written_by_the_flip_alone_without_a_staged_marker() -> None:
    # Given a small pack (its items fit in the flip's transaction)
    store, table = FakeObjectStore(), FakePackTable()
    # When it is registered
    register(store, table, put(store, "app", "1.0.0"))
    # Then one transaction wrote the pointer, the version and the items; one batch the installation
    assert table.calls == {"query": 1, "transact_write_items": 1, "batch_write_item": 1}
    [flip] = table.transactions
    written = {op.item["SK"].split("#")[0] for op in flip if isinstance(op, Put)}
    assert written == {"CURRENT", "VERSION", "COMPONENT"}
    assert not [sk for sk in pack_items(table, "app") if sk.startswith("CURRENT#STAGED#")]


def test_a_crash_of_a_flip_that_carries_the_items_writes_nothing_and_a_retry_completes() -> None:
    store, table, clock = FakeObjectStore(), FakePackTable(), Clock()
    register(store, table, put(store, "app", "1.0.0"), clock=clock)
    before = {k: dict(v) for k, v in table.items.items() if k[0] == "PACK#app"}
    table.fail_next_transact = True
    newer = put(store, "app", "1.1.0", extra={"actions/b.yaml": "name: b\nrunner_type: x\n"})
    crashed = register(store, table, newer, clock=clock)
    assert crashed.failed_packs[0].error_code == "INTERNAL_ERROR"
    # nothing of the crashed attempt is in the table: no items, no marker to collect later
    assert {k: v for k, v in table.items.items() if k[0] == "PACK#app"} == before
    retried = register(store, table, newer, clock=clock)
    assert retried.registered_packs[0].pack_version == "1.1.0"
    assert {c["name"] for c in show_pack(table, "app")["components"]["actions"]} == {"hello", "b"}


def test_a_crash_before_the_flip_leaves_the_old_version_visible_and_a_retry_completes() -> None:
    """Items staged before the flip (a registration too large for its transaction)."""
    store, table, clock = FakeObjectStore(), FakePackTable(), Clock()
    options: dict[str, Any] = {"clock": clock, "policy": STAGED_FIRST}
    register(store, table, put(store, "app", "1.0.0"), **options)
    table.fail_next_transact = True
    crashed = register(
        store, table, put(store, "app", "1.1.0", extra={"actions/b.yaml": "name: b\nrunner_type: x\n"}), **options
    )
    # an unexpected exception is that pack's INTERNAL_ERROR, with its type, not a failed stage
    [failure] = crashed.failed_packs
    assert (failure.error_code, failure.details["exception_type"]) == ("INTERNAL_ERROR", "RuntimeError")
    # the new registration's items are written, but nothing points at them
    assert len(component_keys(table, "app")) == 3
    shown = show_pack(table, "app")
    assert shown["version"] == "1.0.0"
    assert [(c["name"], c["pack_version"]) for c in shown["components"]["actions"]] == [("hello", "1.0.0")]
    assert [c["pack_version"] for c in list_components(table, "actions")["components"]] == ["1.0.0"]
    assert get_component(table, "app.hello")["pack_version"] == "1.0.0"
    with pytest.raises(NotFoundError):
        get_component(table, "app.b")
    # a retry completes (under a new registration id)
    retried = register(
        store, table, put(store, "app", "1.1.0", extra={"actions/b.yaml": "name: b\nrunner_type: x\n"}), **options
    )
    assert retried.registered_packs[0].pack_version == "1.1.0"
    assert {c["name"] for c in show_pack(table, "app")["components"]["actions"]} == {"hello", "b"}
    # the crashed attempt is collected once it is older than any registration can run
    clock.now += timedelta(hours=1)
    register(store, table, put(store, "app", "1.2.0"), **options)
    staged = [sk for sk in pack_items(table, "app") if sk.startswith("CURRENT#STAGED#")]
    assert staged == []
    live = {table.items[("PACK#app", "CURRENT")]["registration_id"]}
    live |= {e["registration_id"] for e in table.items[("PACK#app", "CURRENT")]["retained"]}
    assert {table.items[("PACK#app", sk)]["registration_id"] for sk in component_keys(table, "app")} <= live


def test_a_young_staged_registration_is_never_collected() -> None:
    store, table, clock = FakeObjectStore(), FakePackTable(), Clock()
    register(store, table, put(store, "app", "1.0.0"), clock=clock, policy=STAGED_FIRST)
    table.fail_next_transact = True
    crashed = register(store, table, put(store, "app", "1.1.0"), clock=clock, policy=STAGED_FIRST)
    assert crashed.failed_packs[0].error_code == "INTERNAL_ERROR"
    in_flight = [sk for sk in pack_items(table, "app") if sk.startswith("CURRENT#STAGED#")]
    assert len(in_flight) == 1
    clock.now += timedelta(minutes=5)  # it could still be flipping
    register(store, table, put(store, "app", "1.2.0"), clock=clock)
    assert [sk for sk in pack_items(table, "app") if sk.startswith("CURRENT#STAGED#")] == in_flight


class RacingTable(FakePackTable):
    """Runs ``before`` just before the first transaction: another writer getting there first."""

    def __init__(self) -> None:
        super().__init__()
        self.before: Any = None

    def transact(self, operations: Any) -> None:
        before, self.before = self.before, None
        if before is not None:
            before()
        super().transact(operations)


@pytest.mark.parametrize("policy", [None, STAGED_FIRST], ids=["items in the flip", "items staged first"])
def test_the_loser_of_a_race_gets_conflict_and_leaves_nothing_behind(policy: RegistryPolicy | None) -> None:
    store, table = FakeObjectStore(), RacingTable()
    register(store, table, put(store, "app", "1.0.0"))
    winner = put(store, "app", "1.2.0", extra={"actions/w.yaml": "name: w\nrunner_type: x\n"})
    table.before = lambda: register(store, table, winner, installation_id="winner")
    loser = put(store, "app", "1.1.0", extra={"actions/l.yaml": "name: l\nrunner_type: x\n"})
    lost = register(store, table, loser, policy=policy)
    failure = lost.failed_packs[0]
    assert failure.error_code == "CONFLICT" and "1.2.0 is now current" in failure.error
    shown = show_pack(table, "app")
    assert shown["version"] == "1.2.0" and shown["revision"] == 2
    assert {c["name"] for c in shown["components"]["actions"]} == {"hello", "w"}
    assert not any(table.items[("PACK#app", sk)]["name"] == "l" for sk in component_keys(table, "app"))
    assert not [sk for sk in pack_items(table, "app") if sk.startswith("CURRENT#STAGED#")]


def test_a_dependency_changing_during_registration_is_caught_by_the_flip() -> None:
    store, table = FakeObjectStore(), RacingTable()
    register(store, table, put(store, "lib", "1.0.0"))
    table.before = lambda: register(store, table, put(store, "lib", "2.0.0"))
    response = register(store, table, put(store, "app", "1.0.0", "dependencies: ['lib<2']\n"))
    assert response.failed_packs[0].error_code == "DEPENDENCY_CHANGED"
    assert ("PACK#app", "CURRENT") not in table.items


def test_registering_a_version_that_breaks_an_installed_dependent_needs_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "lib", "1.0.0"), put(store, "app", "1.0.0", "dependencies: ['lib<2']\n"))
    refused = register(store, table, put(store, "lib", "2.0.0"))
    assert refused.failed_packs[0].error_code == "DEPENDENT_CONFLICT"
    assert "app" in refused.failed_packs[0].error
    # the dependent upgraded in the same batch to accept it: fine
    together = register(
        store, table, put(store, "lib", "2.0.0"), put(store, "app", "2.0.0", "dependencies: ['lib>=2']\n")
    )
    assert [p.pack_ref for p in together.registered_packs] == ["lib", "app"]
    assert table.items[("PACK#lib", "CURRENT#DEPENDENT#app")]["constraint"] == ">=2.0.0"


def test_old_registrations_beyond_keep_versions_are_cleaned_up_but_their_history_stays() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    policy = RegistryPolicy(keep_versions=3)
    for minor in range(6):
        register(store, table, put(store, "app", f"1.{minor}.0"), policy=policy)
    current = table.items[("PACK#app", "CURRENT")]
    assert [e["version"] for e in current["retained"]] == ["1.5.0", "1.4.0", "1.3.0"]
    versions = {table.items[("PACK#app", sk)]["pack_version"] for sk in component_keys(table, "app")}
    assert versions == {"1.5.0", "1.4.0", "1.3.0"}
    history = show_pack(table, "app")["history"]
    assert [(h["version"], h["state"]) for h in history] == [
        ("1.0.0", "cleaned_up"),
        ("1.1.0", "cleaned_up"),
        ("1.2.0", "cleaned_up"),
        ("1.3.0", "available"),
        ("1.4.0", "available"),
        ("1.5.0", "current"),
    ]
    assert not [sk for sk in pack_items(table, "app") if sk.startswith("CURRENT#GARBAGE#")]


# --- tests: the build's test result decides ------------------------------------------------------


def built(ref: str, **test_result: Any) -> BuiltEnvironment:
    return BuiltEnvironment(pack_ref=ref, environments={}, duration_ms=1, test_result=test_result or None)


FAILING = {
    "status": "failed",
    "total_tests": 10,
    "passed": 6,
    "failed": 4,
    "skipped": 0,
    "pass_rate": 0.6,
    "duration_ms": 5,
    "suites": [],
    "report": "s3://packs/reports/t.json",
}


@pytest.mark.parametrize(
    ("policy", "options", "decision", "warned"),
    [
        ({"min_pass_rate": 0.5, "on_failure": "block"}, {}, "passed", False),
        ({"min_pass_rate": 0.9, "on_failure": "warn"}, {}, "warned", True),
        ({"min_pass_rate": 0.9, "on_failure": "ignore"}, {}, "ignored", False),
        ({"min_pass_rate": 0.9, "on_failure": "block"}, {"force": True}, "forced", True),
        ({"min_pass_rate": 0.9, "on_failure": "block"}, {"skip_tests": True}, "skipped_by_request", False),
    ],
)
def test_the_test_result_policy_decides_registration(
    policy: dict[str, Any], options: dict[str, Any], decision: str, warned: bool
) -> None:
    store, table = FakeObjectStore(), FakePackTable()
    response = register(
        store, table, put(store, "app", "1.0.0"), build_results=[built("app", **FAILING, policy=policy)], **options
    )
    [pack] = response.registered_packs
    assert pack.validation_results["tests"]["decision"] == decision
    assert pack.test_result is not None and pack.test_result["pass_rate"] == 0.6
    assert any("60%" in w for w in pack.validation_results["warnings"]) is warned
    assert table.items[("PACK#app", "CURRENT")]["test_result"]["report"] == "s3://packs/reports/t.json"


def test_failing_tests_under_a_block_policy_fail_the_pack_and_write_nothing() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    result = built("app", **FAILING, policy={"min_pass_rate": 0.9, "on_failure": "block"})
    response = register(store, table, put(store, "app", "1.0.0"), build_results=[result])
    failure = response.failed_packs[0]
    assert failure.error_code == "TESTS_FAILED" and "60%" in failure.error and "90%" in failure.error
    assert pack_items(table, "app") == {}


def test_without_a_policy_in_the_result_pack_yaml_testing_applies() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    testing = "testing:\n  min_pass_rate: 0.5\n  on_failure: warn\n"
    passing = register(store, table, put(store, "a", "1.0.0", testing), build_results=[built("a", **FAILING)])
    assert passing.registered_packs[0].validation_results["tests"]["decision"] == "passed"
    errored = register(store, table, put(store, "b", "1.0.0"), build_results=[built("b", status="error")])
    assert errored.failed_packs[0].error_code == "TESTS_FAILED", "an error is no pass; the default policy blocks"


def test_a_huge_test_report_is_stored_compact() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    suites = [{"name": f"suite{i}", "total": 3, "cases": [{"name": "x" * 200}] * 20} for i in range(200)]
    result = built("app", **{**FAILING, "pass_rate": 1.0, "status": "passed", "suites": suites})
    [pack] = register(store, table, put(store, "app", "1.0.0"), build_results=[result]).registered_packs
    assert pack.test_result is not None and pack.test_result["suites_truncated"] is True
    assert len(json.dumps(pack.test_result)) <= 16 * 1024
    assert pack.test_result["suites"][0] == {"name": "suite0", "total": 3}


# --- components: references, inline triggers, large schemas ----------------------------------------


RULE_PACK = {
    "triggers/tick.yaml": "name: tick\n",
    "rules/r.yaml": "name: r\ntrigger_ref: app.tick\naction_ref: app.hello\n",
    "rules/timer.yaml": "name: timer\ntrigger:\n  type: core.st2.IntervalTimer\naction:\n  ref: core.local\n",
}


def test_rules_resolving_to_the_pack_and_core_built_ins_register() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    response = register(store, table, put(store, "app", "1.0.0", extra=RULE_PACK))
    assert response.registered_packs[0].components_registered["rules"] == 2
    rule = get_component(table, "app.timer")
    assert rule["trigger_ref"] == "core.st2.IntervalTimer" and rule["attributes"]["action"]["ref"] == "core.local"


@pytest.mark.parametrize(
    ("rule", "field", "problem"),
    [
        ("trigger_ref: app.nope\naction_ref: app.hello\n", "trigger_ref", "has no trigger 'nope'"),
        ("trigger_ref: app.tick\naction_ref: other.go\n", "action_ref", "does not depend on"),
        ("trigger:\n  type: app.tick\naction:\n  ref: lib.missing\n", "action.ref", "has no action 'missing'"),
        ("trigger_ref: core.st2.Nope\naction_ref: app.hello\n", "trigger_ref", "not a core built-in"),
    ],
)
def test_unresolved_rule_references_fail_the_pack_naming_file_and_field(rule: str, field: str, problem: str) -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "lib", "1.0.0"))
    files = {"triggers/tick.yaml": "name: tick\n", "rules/bad.yaml": f"name: bad\n{rule}"}
    response = register(store, table, put(store, "app", "1.0.0", "dependencies: [lib]\n", extra=files))
    failure = response.failed_packs[0]
    assert failure.error_code == "COMPONENT_REFERENCE_UNRESOLVED"
    assert failure.details == [{"file": "rules/bad.yaml", "field": field, "problem": failure.details[0]["problem"]}]
    assert problem in failure.error
    assert pack_items(table, "app") == {}


def test_rules_may_use_components_of_installed_and_batched_dependencies() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    sensor = {
        "sensors/watch.yaml": "name: watch\nentry_point: w.py\n"
        "trigger_types:\n  - name: down\n    payload_schema: {}\n",
        "sensors/w.py": "",
    }
    register(store, table, put(store, "lib", "1.0.0", extra=sensor))
    uses_installed = {"rules/r.yaml": "name: r\ntrigger_ref: lib.down\naction_ref: lib.hello\n"}
    installed = register(store, table, put(store, "app", "1.0.0", "dependencies: [lib]\n", extra=uses_installed))
    assert installed.registered_packs and not installed.failed_packs
    # the sensor's inline declaration registered a trigger of lib
    assert get_component(table, "lib.down")["declared_by"] == "lib.watch"
    uses_batch = {"rules/r.yaml": "name: r\ntrigger_ref: base.down\naction_ref: base.hello\n"}
    batch = register(
        store,
        table,
        put(store, "top", "1.0.0", "dependencies: [base]\n", extra=uses_batch),
        put(store, "base", "1.0.0", extra=sensor),
    )
    assert [p.pack_ref for p in batch.registered_packs] == ["base", "top"]


def test_skip_validation_registers_unresolved_references_with_a_warning() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    files = {"rules/r.yaml": "name: r\ntrigger_ref: app.nope\naction_ref: app.hello\n"}
    [pack] = register(store, table, put(store, "app", "1.0.0", extra=files), skip_validation=True).registered_packs
    assert pack.validation_results["checks"]["references"] == "skipped"
    assert any("skip_validation" in w for w in pack.validation_results["warnings"])


def test_large_schemas_are_stored_in_s3_and_referenced() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    params = "".join(f"  p{i}:\n    type: string\n    description: {'d' * 100}\n" for i in range(400))
    big = {"actions/big.yaml": f"name: big\nrunner_type: python-script\nparameters:\n{params}"}
    register(store, table, put(store, "app", "1.0.0", extra=big))
    item = component_fields(next(v for k, v in table.items.items() if k[1].endswith("#actions#big")))
    assert "parameters" not in item and item["schema_ref"].startswith("s3://packs/components/")
    assert item["parameter_names"][:2] == ["p0", "p1"] and len(json.dumps(item)) < 32 * 1024
    key = item["schema_ref"].split("/", 3)[3]
    assert key == f"components/{item['schema_sha256']}.json"
    assert len(json.loads(store.objects[key][0])["parameters"]) == 400
    resolved = get_component(table, "app.big", store=store)
    assert len(resolved["parameters"]) == 400
    assert len(show_pack(table, "app", store=store)["components"]["actions"][0]["parameters"]) == 400
    # small components stay whole in the table
    assert get_component(table, "app.hello")["parameters"] == {"who": {"type": "string"}}


def test_a_component_too_large_even_without_its_schemas_fails_naming_file_and_field() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    long = {"actions/long.yaml": f"name: long\nrunner_type: x\ndescription: {'x' * 4000}\n"}
    response = register(
        store, table, put(store, "app", "1.0.0", extra=long), policy=RegistryPolicy(max_item_bytes=3000)
    )
    failure = response.failed_packs[0]
    assert failure.error_code == "COMPONENT_TOO_LARGE" and failure.error.startswith("actions/long.yaml: description")
    assert pack_items(table, "app") == {}


def test_throttling_that_outlasts_the_retries_fails_the_stage_to_be_retried_whole() -> None:
    class Throttled(FakePackTable):
        def batch_put(self, items: Any) -> int:
            raise ThrottledError("DynamoDB kept throttling")

    store, table = FakeObjectStore(), Throttled()
    with pytest.raises(ThrottledError) as caught:
        register(store, table, put(store, "app", "1.0.0"))
    assert caught.value.retriable


# --- the read side ----------------------------------------------------------------------------------


def test_the_read_side_lists_packs_and_shows_history() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    register(store, table, put(store, "app", "1.1.0"))
    assert [p["ref"] for p in list_packs(table)] == ["app"]
    assert [(h["version"], h["state"]) for h in show_pack(table, "app")["history"]] == [
        ("1.0.0", "available"),
        ("1.1.0", "current"),
    ]
    with pytest.raises(NotFoundError):
        show_pack(table, "ghost")


def test_packs_are_listed_page_by_page() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, *(put(store, f"p{i}", "1.0.0") for i in range(5)))
    seen, cursor = [], None
    while True:
        page = catalog.list_packs_page(table, limit=2, cursor=cursor)
        seen.extend(p["ref"] for p in page["packs"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["p0", "p1", "p2", "p3", "p4"]


def test_components_are_listed_by_type_across_packs_current_versions_only() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    extra = {f"actions/a{i}.yaml": f"name: a{i}\nrunner_type: x\n" for i in range(3)}
    register(store, table, *(put(store, f"p{i}", "1.0.0", extra=extra) for i in range(4)))
    register(store, table, put(store, "p1", "2.0.0"))  # p1 now has one action
    pages, cursor = [], None
    while True:
        page = list_components(table, "actions", limit=3, cursor=cursor)
        pages.append([c["ref"] for c in page["components"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    refs = [ref for page in pages for ref in page]
    assert refs == sorted(refs) and len(refs) == len(set(refs))
    assert [r for r in refs if r.startswith("p1.")] == ["p1.hello"]
    assert len(refs) == 3 * 4 + 1
    assert all(len(page) == 3 for page in pages[:-1]), "pages hold the limit, a pack may span two"
    by_ref = {c["ref"]: c for c in list_components(table, "actions", limit=1000)["components"]}
    assert by_ref["p1.hello"]["pack_version"] == "2.0.0"
    assert [v["version"] for v in catalog.component_versions(table, "p1.hello", "actions")] == ["2.0.0", "1.0.0"]


def test_a_listing_never_mixes_a_pack_whose_new_items_the_index_does_not_show_yet() -> None:
    class LaggingIndex(FakePackTable):
        """The index still shows only what it held before the last registration."""

        hidden: set[tuple[str, str]] = set()

        def _indexed(self, gsi_pk: str) -> list[dict[str, Any]]:
            return [v for v in super()._indexed(gsi_pk) if (v["PK"], v["SK"]) not in self.hidden]

    store, table = FakeObjectStore(), LaggingIndex()
    register(store, table, put(store, "app", "1.0.0"))
    before = set(table.items)
    register(store, table, put(store, "app", "1.1.0", extra={"actions/new.yaml": "name: new\nrunner_type: x\n"}))
    table.hidden = set(table.items) - before
    listed = list_components(table, "actions")["components"]
    assert {(c["name"], c["pack_version"]) for c in listed} == {("hello", "1.1.0"), ("new", "1.1.0")}


# --- remove -----------------------------------------------------------------------------------------


def test_remove_is_refused_while_installed_packs_depend_on_it_unless_forced() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "lib", "1.0.0"), put(store, "app", "1.0.0", "dependencies: [lib]\n"))
    with pytest.raises(DependencyError) as caught:
        lifecycle.remove_pack(table, "lib")
    assert caught.value.error_code == "PACK_HAS_DEPENDENTS" and caught.value.details == {"dependents": ["app"]}
    assert show_pack(table, "lib")["version"] == "1.0.0"
    removed = lifecycle.remove_pack(table, "lib", force=True)
    assert removed.forced and removed.dependents == ["app"] and removed.components_removed == 1


def test_remove_deletes_pointer_and_components_keeps_history_and_frees_dependencies() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "lib", "1.0.0"), put(store, "app", "1.0.0", "dependencies: [lib]\n"))
    register(store, table, put(store, "app", "1.1.0", "dependencies: [lib]\n"))
    removed = lifecycle.remove_pack(table, "app", requested_by="ops")
    assert removed.removed_version == "1.1.0" and removed.components_removed == 2 and not removed.forced
    with pytest.raises(NotFoundError):
        show_pack(table, "app")
    assert component_keys(table, "app") == set()
    assert list_components(table, "actions")["components"][0]["ref"] == "lib.hello"
    assert ("PACK#lib", "CURRENT#DEPENDENT#app") not in table.items
    history = catalog.pack_history(table, "app")
    assert not history["installed"] and [v["version"] for v in history["versions"]] == ["1.0.0", "1.1.0"]
    assert history["last_removal"]["removed_by"] == "ops"
    # lib has no dependents any more: it can go too
    lifecycle.remove_pack(table, "lib")
    with pytest.raises(NotFoundError):
        lifecycle.remove_pack(table, "lib")


def test_a_pack_registered_again_after_removal_continues_its_revisions() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    lifecycle.remove_pack(table, "app")
    register(store, table, put(store, "app", "1.0.0"))
    current = table.items[("PACK#app", "CURRENT")]
    assert current["revision"] == 3, "1 registered, 2 removed (fence), 3 registered again"
    assert ("PACK#app", "CURRENT#REMOVED") not in table.items


def test_a_dependent_registered_while_its_dependency_is_removed_does_not_win() -> None:
    store, table = FakeObjectStore(), RacingTable()
    register(store, table, put(store, "lib", "1.0.0"))
    table.before = lambda: lifecycle.remove_pack(table, "lib")
    response = register(store, table, put(store, "app", "1.0.0", "dependencies: [lib]\n"))
    assert response.failed_packs[0].error_code == "DEPENDENCY_CHANGED"
    assert ("PACK#app", "CURRENT") not in table.items and ("PACK#lib", "CURRENT") not in table.items


def test_a_dependent_that_registers_before_the_fence_stops_the_removal() -> None:
    class FenceRace(FakePackTable):
        def __init__(self) -> None:
            super().__init__()
            self.during_fence: Any = None

        def transact(self, operations: Any) -> None:
            hook, self.during_fence = self.during_fence, None
            if hook is not None:
                hook()
            super().transact(operations)

    store, table = FakeObjectStore(), FenceRace()
    register(store, table, put(store, "lib", "1.0.0"))
    table.during_fence = lambda: register(store, table, put(store, "app", "1.0.0", "dependencies: [lib]\n"))
    with pytest.raises(DependencyError) as caught:
        lifecycle.remove_pack(table, "lib")
    assert caught.value.error_code == "PACK_HAS_DEPENDENTS"
    current = table.items[("PACK#lib", "CURRENT")]
    assert "removing" not in current and show_pack(table, "app")["version"] == "1.0.0"


# --- rollback ---------------------------------------------------------------------------------------


def env_build(ref: str, artifact: str) -> BuiltEnvironment:
    env = EnvironmentArtifact(artifact=artifact, env_hash="h", cached=False)
    return BuiltEnvironment(pack_ref=ref, environments={"python": env}, duration_ms=1)


def test_rollback_flips_back_to_the_previous_version_whose_items_are_kept() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    register(store, table, put(store, "app", "1.1.0", extra={"actions/b.yaml": "name: b\nrunner_type: x\n"}))
    writes = table.calls["batch_write_item"]
    result = lifecycle.rollback_pack(table, store, "app")
    assert (result.from_version, result.to_version, result.status) == ("1.1.0", "1.0.0", "rolled_back")
    assert not result.rebuilt_from_archive and table.calls["batch_write_item"] == writes, "a pointer flip only"
    shown = show_pack(table, "app")
    assert shown["version"] == "1.0.0" and shown["rolled_back_from"] == "1.1.0"
    assert [c["name"] for c in shown["components"]["actions"]] == ["hello"]
    # and forward again, by version
    assert lifecycle.rollback_pack(table, store, "app", "1.1.0").to_version == "1.1.0"
    assert lifecycle.rollback_pack(table, store, "app", "1.1.0").status == "unchanged"


def test_rollback_to_a_cleaned_up_version_registers_it_again_from_its_archive() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    policy = RegistryPolicy(keep_versions=1)
    register(
        store,
        table,
        put(store, "app", "1.0.0", extra={"actions/old.yaml": "name: old\nrunner_type: x\n"}),
        policy=policy,
    )
    register(store, table, put(store, "app", "2.0.0"), policy=policy)
    assert {table.items[("PACK#app", sk)]["pack_version"] for sk in component_keys(table, "app")} == {"2.0.0"}
    result = lifecycle.rollback_pack(table, store, "app", "1.0.0", policy=policy)
    assert result.rebuilt_from_archive and result.components_registered["actions"] == 2
    assert {c["name"] for c in show_pack(table, "app")["components"]["actions"]} == {"hello", "old"}
    assert {table.items[("PACK#app", sk)]["pack_version"] for sk in component_keys(table, "app")} == {"1.0.0"}


def test_rollback_needs_the_archive_and_environments_still_stored() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    store.add("envs/h/python.tar.gz", b"env")
    first = put(store, "app", "1.0.0", requirements="six\n")
    register(store, table, first, build_results=[env_build("app", "s3://packs/envs/h/python.tar.gz")])
    register(store, table, put(store, "app", "1.1.0"))
    store.delete("envs/h/python.tar.gz")
    with pytest.raises(SourceGoneError) as caught:
        lifecycle.rollback_pack(table, store, "app")
    assert caught.value.error_code == "ROLLBACK_UNAVAILABLE"
    assert caught.value.details == {"missing": ["s3://packs/envs/h/python.tar.gz"]}
    store.add("envs/h/python.tar.gz", b"env")
    store.delete(first.removeprefix("s3://packs/"))
    with pytest.raises(SourceGoneError):
        lifecycle.rollback_pack(table, store, "app")
    assert show_pack(table, "app")["version"] == "1.1.0"


def test_rollback_refusals() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "lib", "1.0.0"))
    with pytest.raises(NotFoundError) as caught:
        lifecycle.rollback_pack(table, store, "lib")
    assert caught.value.error_code == "NO_PREVIOUS_VERSION"
    with pytest.raises(NotFoundError) as caught:
        lifecycle.rollback_pack(table, store, "lib", "0.9.0")
    assert caught.value.error_code == "VERSION_NOT_FOUND"
    register(store, table, put(store, "lib", "2.0.0"))
    register(store, table, put(store, "app", "1.0.0", "dependencies: ['lib>=2']\n"))
    with pytest.raises(DependencyError) as caught:
        lifecycle.rollback_pack(table, store, "lib")
    assert caught.value.error_code == "DEPENDENT_CONFLICT"
    assert lifecycle.rollback_pack(table, store, "lib", force=True).to_version == "1.0.0"


# --- budgets ----------------------------------------------------------------------------------------


def test_a_thousand_actions_cost_one_write_per_25_items_plus_a_constant() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    actions = {f"actions/a{i:04}.yaml": f"name: a{i:04}\nrunner_type: python-script\n" for i in range(1000)}
    response = register(store, table, put(store, "big", "1.0.0", extra=actions), installation_id="bench")
    assert response.registered_packs[0].components_registered["actions"] == 1001
    # 1001 components + the STAGED marker, 25 per batch; the installation record; one flip; one read
    assert table.calls == {"batch_write_item": 41 + 1, "transact_write_items": 1, "query": 1}


def test_packs_registered_before_registration_ids_are_read_and_upgraded() -> None:
    # Given the walking skeleton's layout: components keyed by version only, a pointer without ids
    store, table = FakeObjectStore(), FakePackTable()
    pointer = {
        "ref": "app",
        "version": "1.0.0",
        "checksum": "sha256:old",
        "archive": "s3://packs/archives/x",
        "component_counts": {"actions": 1},
        "revision": 1,
        "GSI1PK": "PACKS",
        "GSI1SK": "app",
    }
    component = {
        "PK": "PACK#app",
        "SK": "COMPONENT#1.0.0#actions#hello",
        "GSI1PK": "COMPONENT#actions",
        "GSI1SK": "app.hello#1.0.0",
        "pack_ref": "app",
        "pack_version": "1.0.0",
        "type": "actions",
        "name": "hello",
        "ref": "app.hello",
    }
    table.batch_put(
        [
            {"PK": "PACK#app", "SK": "CURRENT", **pointer},
            component,
            {"PK": "PACK#app", "SK": "VERSION#1.0.0", "ref": "app", "version": "1.0.0"},
        ]
    )
    assert [c["ref"] for c in show_pack(table, "app")["components"]["actions"]] == ["app.hello"]
    assert [c["ref"] for c in list_components(table, "actions")["components"]] == ["app.hello"]
    assert get_component(table, "app.hello")["pack_version"] == "1.0.0"
    # When a new version is registered with retention 1, Then the old items are collected
    register(store, table, put(store, "app", "1.0.1"), policy=RegistryPolicy(keep_versions=1))
    assert ("PACK#app", "COMPONENT#1.0.0#actions#hello") not in table.items
    assert [c["pack_version"] for c in show_pack(table, "app")["components"]["actions"]] == ["1.0.1"]


def _flip_of_a_pack_with(actions: int) -> tuple[bool, int]:
    """(whether the registration was staged first, the operations of the flip's transaction)."""
    store, table = FakeObjectStore(), FakePackTable()
    staged, flips = [], []
    batch_put, transact = table.batch_put, table.transact

    def recording_batch_put(items: Any) -> int:
        items = list(items)
        staged.extend(i for i in items if i.get("entity") == "staged_registration")
        return batch_put(items)

    def recording_transact(operations: Any) -> None:
        operations = list(operations)
        flips.append(len(operations))
        transact(operations)

    table.batch_put, table.transact = recording_batch_put, recording_transact  # type: ignore[method-assign]
    extra = {
        f"actions/a{i:03}.yaml": f"name: a{i:03}\nrunner_type: python-script\nentry_point: hello.py\n"
        for i in range(actions)
    }
    [pack] = register(store, table, put(store, "app", "1.0.0", extra=extra)).registered_packs
    assert pack.status == "registered" and pack.components_registered["actions"] == actions + 1
    [flip] = flips
    return bool(staged), flip


def test_a_registration_is_written_in_the_flip_up_to_the_transactions_last_operation_and_staged_beyond() -> None:
    # The largest pack whose items fit fills the flip's transaction exactly; one component more is staged first
    outcomes = {actions: _flip_of_a_pack_with(actions) for actions in range(90, 101)}
    inline = [actions for actions, (staged, _) in outcomes.items() if not staged]
    assert inline and inline == list(range(90, max(inline) + 1)), outcomes
    assert outcomes[max(inline)] == (False, 100), "the room is used to the last operation"
    assert outcomes[max(inline) + 1][0] is True, "one more component: staged first"
    assert outcomes[max(inline) + 1][1] < 100, "the staged registration's flip carries the pointer, not the items"
