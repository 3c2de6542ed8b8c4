"""Register stage: items first, then a conditional pointer flip; idempotent; never half-registered."""

from __future__ import annotations

import pytest
from fakes import FakeObjectStore, FakePackTable
from packs import pack_files, tar_gz

from attune_packs.models import BuiltEnvironment, EnvironmentArtifact, FailedBuild, RegisterRequest
from attune_packs.services.catalog import list_packs, show_pack
from attune_packs.services.register import register_packs


def put(store: FakeObjectStore, ref: str, version: str, deps: str = "", key: str | None = None, **kw: object) -> str:
    return store.add(
        key or f"archives/sha256/{ref}{version.replace('.', '')}.tar.gz",
        tar_gz(pack_files(ref, version, dependencies=deps, **kw)),
    )


def register(store: FakeObjectStore, table: FakePackTable, *paths: str, **options: object):
    return register_packs(RegisterRequest(pack_paths=list(paths), **options), store=store, table=table)


def test_pack_and_components_are_registered_dependencies_first() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    app = put(store, "app", "1.0.0", "dependencies: [lib]\n")
    lib = put(store, "lib", "2.0.0")
    response = register(store, table, app, lib)
    assert [p.pack_ref for p in response.registered_packs] == ["lib", "app"]
    assert response.registered_packs[0].components_registered["actions"] == 1
    assert table.items[("PACK#app", "CURRENT")]["version"] == "1.0.0"
    component = table.items[("PACK#app", "COMPONENT#1.0.0#actions#hello")]
    assert component["ref"] == "app.hello" and component["GSI1PK"] == "COMPONENT#actions"
    assert response.summary.total_components == 2


def test_registering_the_same_version_again_is_a_no_op_success() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "app", "1.0.0")
    register(store, table, path)
    writes = table.calls["batch_write_item"]
    again = register(store, table, path)
    assert again.registered_packs[0].status == "unchanged"
    assert table.calls["batch_write_item"] == writes
    assert table.items[("PACK#app", "CURRENT")]["revision"] == 1


def test_other_content_under_the_same_version_needs_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    changed = put(store, "app", "1.0.0", key="archives/sha256/other.tar.gz", extra={"README.md": "changed"})
    refused = register(store, table, changed)
    assert refused.failed_packs[0].error_code == "VERSION_CONTENT_MISMATCH"
    assert register(store, table, changed, force=True).registered_packs[0].status == "registered"


def test_downgrades_need_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "2.0.0"))
    assert register(store, table, put(store, "app", "1.0.0")).failed_packs[0].error_code == "DOWNGRADE_REFUSED"
    assert register(store, table, put(store, "app", "1.0.0"), force=True).registered_packs


def test_a_pack_whose_dependency_is_missing_is_not_registered() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    response = register(store, table, put(store, "app", "1.0.0", "dependencies: [ghost]\n"))
    assert response.failed_packs[0].error_code == "DEPENDENCY_NOT_FOUND"
    assert table.items == {}


def test_a_failed_build_keeps_its_pack_out_and_the_others_go_on() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    a, b = put(store, "a", "1.0.0", requirements="six\n"), put(store, "b", "1.0.0")
    failed = FailedBuild(pack_ref="a", failed=True, error_type="BuildError", error="no such package")
    response = register(store, table, a, b, build_results=[failed])
    assert [p.pack_ref for p in response.registered_packs] == ["b"]
    assert response.failed_packs[0].error_code == "BUILD_FAILED"
    assert not any(pk == "PACK#a" for pk, _ in table.items)


def test_environment_artifacts_are_recorded_on_the_pack() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "a", "1.0.0", requirements="six\n")
    env = EnvironmentArtifact(artifact="s3://packs/envs/h/python.tar.gz", env_hash="h", cached=False, package_count=1)
    register(
        store, table, path, build_results=[BuiltEnvironment(pack_ref="a", environments={"python": env}, duration_ms=1)]
    )
    assert table.items[("PACK#a", "CURRENT")]["environments"]["python"]["env_hash"] == "h"


def test_a_crash_before_the_flip_leaves_the_old_version_visible_and_a_retry_completes() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    table.fail_next_flip = True
    with pytest.raises(RuntimeError):
        register(store, table, put(store, "app", "1.1.0"))
    assert show_pack(table, "app")["version"] == "1.0.0"
    assert {c["pack_version"] for c in show_pack(table, "app")["components"]["actions"]} == {"1.0.0"}
    assert register(store, table, put(store, "app", "1.1.0")).registered_packs[0].pack_version == "1.1.0"
    assert show_pack(table, "app")["version"] == "1.1.0"


def test_the_read_side_lists_packs_and_shows_history() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0"))
    register(store, table, put(store, "app", "1.1.0"))
    assert [p["ref"] for p in list_packs(table)] == ["app"]
    assert [h["version"] for h in show_pack(table, "app")["history"]] == ["1.0.0", "1.1.0"]
