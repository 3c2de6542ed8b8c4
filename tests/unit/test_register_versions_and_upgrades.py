"""Registration by SemVer precedence, environment artifacts checked against their build's digest,
upgrades that purge what the new version removed (and rollbacks that bring it back), and the
DynamoDB call budget of a 3,581-action pack (issue 13: <= 150 calls, <= 2 unchanged)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.errors import NotFoundError
from attune_packs.models import BuiltEnvironment, EnvironmentArtifact, RegisterRequest, RegisterResponse
from attune_packs.services import catalog, lifecycle
from attune_packs.services.stages.register import register_packs, same_version
from testkit.pack_archives import pack_files, tar_gz

BIG_PACK_ACTIONS = 3581  # StackStorm's aws pack


def action(name: str) -> str:
    return f"name: {name}\nrunner_type: python-script\nentry_point: hello.py\nparameters:\n  x: {{type: string}}\n"


def put(store: FakeObjectStore, ref: str, version: str, actions: list[str] = (), **kw: Any) -> str:  # type: ignore[assignment]
    extra = {f"actions/{name}.yaml": action(name) for name in actions}
    body = tar_gz(pack_files(ref, version, extra={**extra, **kw.pop("extra", {})}, **kw))
    return store.add(f"archives/sha256/{hashlib.sha256(body).hexdigest()}.tar.gz", body)


def register(store: FakeObjectStore, table: FakePackTable, *paths: str, **options: Any) -> RegisterResponse:
    return register_packs(RegisterRequest(pack_paths=list(paths), **options), store=store, table=table)


def shown_actions(table: FakePackTable, ref: str) -> set[str]:
    return {c["name"] for c in catalog.show_pack(table, ref)["components"]["actions"]}


def listed_actions(table: FakePackTable) -> set[str]:
    return {c["ref"] for c in catalog.list_components(table, "actions", limit=1000)["components"]}


# --- versions by precedence -------------------------------------------------------------------------


def test_versions_that_differ_only_in_build_metadata_are_the_same_version() -> None:
    assert same_version("1.0.0", "1.0.0+build.7") and same_version("1.0.0+a", "1.0.0+b")
    assert not same_version("1.0.0", "1.0.0-rc.1") and not same_version("1.0.0", "1.0.1")


def test_build_metadata_with_other_content_is_refused_without_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    rebuilt = put(store, "app", "1.0.0+build.7", ["extra"])
    refused = register(store, table, rebuilt)
    assert [f.error_code for f in refused.failed_packs] == ["VERSION_CONTENT_MISMATCH"]
    assert catalog.show_pack(table, "app")["version"] == "1.0.0" and shown_actions(table, "app") == {"hello"}
    forced = register(store, table, rebuilt, force=True).registered_packs[0]
    assert forced.status == "registered" and forced.previous_version == "1.0.0"
    assert shown_actions(table, "app") == {"hello", "extra"}


def test_the_same_content_again_is_a_no_op_whatever_its_build_metadata() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "app", "1.0.0+build.7")
    register(store, table, path)
    table.calls.clear()
    again = register(store, table, path).registered_packs[0]
    assert table.calls == {"query": 1, "batch_write_item": 1}, "read the pointer, record the installation"
    assert again.status == "unchanged" and catalog.show_pack(table, "app")["revision"] == 1


def test_a_lower_precedence_is_a_downgrade_and_build_metadata_is_not() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0+build.9"))
    lower = register(store, table, put(store, "app", "1.0.0-rc.1"))
    assert [f.error_code for f in lower.failed_packs] == ["DOWNGRADE_REFUSED"]
    same = register(store, table, put(store, "app", "1.0.0+build.1", ["other"]))
    assert [f.error_code for f in same.failed_packs] == ["VERSION_CONTENT_MISMATCH"], "not a downgrade"


# --- environment artifacts ----------------------------------------------------------------------------


class DigestedArtifact(EnvironmentArtifact):
    """An environment as the build stage records it once it stores the artifact's sha256."""

    artifact_sha256: str


def built(ref: str, artifact: str, sha256: str | None) -> BuiltEnvironment:
    fields = {"artifact": artifact, "env_hash": "h", "cached": False, "package_count": 1}
    env = DigestedArtifact(**fields, artifact_sha256=sha256) if sha256 else EnvironmentArtifact(**fields)
    return BuiltEnvironment(pack_ref=ref, environments={"python": env}, duration_ms=1)


def test_an_environment_artifact_whose_bytes_match_its_build_digest_is_registered() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    artifact = store.add("envs/h/python.tar.gz", b"the built environment")
    digest = hashlib.sha256(b"the built environment").hexdigest()
    response = register(store, table, put(store, "a", "1.0.0"), build_results=[built("a", artifact, digest)])
    assert not response.failed_packs and catalog.show_pack(table, "a")["environments"]["python"]["artifact"] == artifact


def test_an_environment_artifact_replaced_after_its_build_is_refused() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    artifact = store.add("envs/h/python.tar.gz", b"the built environment")
    digest = hashlib.sha256(b"the built environment").hexdigest()
    store.add("envs/h/python.tar.gz", b"something else written later")
    response = register(store, table, put(store, "a", "1.0.0"), build_results=[built("a", artifact, digest)])
    assert [f.error_code for f in response.failed_packs] == ["ENVIRONMENT_ARTIFACT_MISMATCH"]
    assert not any(pk == "PACK#a" for pk, _ in table.items), "nothing of it was written"


def test_a_build_result_without_a_digest_is_registered_as_before() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    response = register(
        store, table, put(store, "a", "1.0.0"), build_results=[built("a", "s3://packs/envs/h/p.tar.gz", None)]
    )
    assert not response.failed_packs and store.calls["get"] == 1, "only the archive was read"


# --- upgrades purge removed components; rollback brings them back -------------------------------------


def test_an_upgrade_removes_what_the_new_version_lacks_and_a_rollback_brings_it_back() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "p", "1.0.0", ["keep", "drop1", "drop2"]))
    assert shown_actions(table, "p") == {"hello", "keep", "drop1", "drop2"}

    register(store, table, put(store, "p", "2.0.0", ["keep", "added"]))
    assert shown_actions(table, "p") == {"hello", "keep", "added"}
    assert listed_actions(table) == {"p.hello", "p.keep", "p.added"}, "show and components agree"
    for gone in ("p.drop1", "p.drop2"):
        with pytest.raises(NotFoundError):
            catalog.get_component(table, gone, component_type="actions")
        assert not any(v["current"] for v in catalog.component_versions(table, gone, "actions"))
    assert catalog.get_component(table, "p.added")["pack_version"] == "2.0.0"

    rolled = lifecycle.rollback_pack(table, store, "p")
    assert rolled.to_version == "1.0.0" and not rolled.rebuilt_from_archive
    assert shown_actions(table, "p") == {"hello", "keep", "drop1", "drop2"}
    assert listed_actions(table) == {"p.hello", "p.keep", "p.drop1", "p.drop2"}
    assert catalog.get_component(table, "p.drop1")["pack_version"] == "1.0.0"
    with pytest.raises(NotFoundError):
        catalog.get_component(table, "p.added")


def test_a_rollback_to_a_cleaned_up_version_also_brings_its_removed_components_back() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    from attune_packs.services.stages.register import RegistryPolicy

    policy = RegistryPolicy(keep_versions=1)
    for version, actions in (("1.0.0", ["old"]), ("2.0.0", ["new"])):
        register_packs(
            RegisterRequest(pack_paths=[put(store, "p", version, actions)]), store=store, table=table, policy=policy
        )
    assert listed_actions(table) == {"p.hello", "p.new"}
    rolled = lifecycle.rollback_pack(table, store, "p", "1.0.0", policy=policy)
    assert rolled.rebuilt_from_archive
    assert shown_actions(table, "p") == {"hello", "old"} and listed_actions(table) == {"p.hello", "p.old"}


# --- a 3,581-action pack ------------------------------------------------------------------------------


def test_a_3581_action_pack_registers_within_the_call_budget_and_reads_cheaply() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    names = [f"a{i:04}" for i in range(BIG_PACK_ACTIONS - 1)]  # + hello
    path = put(store, "aws", "1.0.0", names)
    response = register(store, table, path, installation_id="big")
    assert response.registered_packs[0].components_registered["actions"] == BIG_PACK_ACTIONS
    calls = dict(table.calls)
    # ceil((3,581 components + the STAGED marker) / 25) = 144 item batches, one flip, one read, one record
    assert calls == {"query": 1, "batch_write_item": 144 + 1, "transact_write_items": 1}
    assert sum(calls.values()) <= 150

    table.calls.clear()
    assert register(store, table, path).registered_packs[0].status == "unchanged"
    assert sum(table.calls.values()) <= 2

    table.calls.clear()
    shown = catalog.show_pack(table, "aws")
    assert len(shown["components"]["actions"]) == BIG_PACK_ACTIONS
    assert sum(table.calls.values()) <= 3, "the pointer with its companions, the components, the versions"

    table.calls.clear()
    page = catalog.list_components(table, "actions", limit=50)
    assert len(page["components"]) == 50 and page["next_cursor"] == page["components"][-1]["ref"]
    # one index page, the pointer, the pack's current components from the table: not 36 index pages
    assert table.calls == {"query": 2, "batch_get_item": 1}


def test_show_reads_the_registrations_listing_and_agrees_with_its_items() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "p", "1.0.0", [f"a{i}" for i in range(40)]))
    from_listing = catalog.show_pack(table, "p")["components"]
    listings = [key for key, item in table.items.items() if item.get("entity") == "component_listing"]
    assert listings, "the registration wrote its listing"
    for key in listings:
        del table.items[key]
    assert catalog.show_pack(table, "p")["components"] == from_listing, "item by item: the same components"


def test_a_listing_is_cut_in_parts_and_deleted_with_its_registration() -> None:
    from attune_packs.services.stages.register import RegistryPolicy

    store, table = FakeObjectStore(), FakePackTable()
    policy = RegistryPolicy(keep_versions=1)
    long = "x" * 2000
    names = [f"a{i:03}" for i in range(300)]
    extra = {f"actions/{n}.yaml": f"name: {n}\nrunner_type: python-script\ndescription: {long}\n" for n in names}
    for version in ("1.0.0", "2.0.0"):
        register_packs(
            RegisterRequest(pack_paths=[put(store, "p", version, extra=extra)]), store=store, table=table, policy=policy
        )
    parts = [item for item in table.items.values() if item.get("entity") == "component_listing"]
    assert len(parts) >= 2 and {p["version"] for p in parts} == {"2.0.0"}, "1.0.0's listing went with its items"
    assert len(catalog.show_pack(table, "p")["components"]["actions"]) == 301
