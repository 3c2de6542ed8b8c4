"""Registration keeps pack.yaml's fields, protects installed system packs, and knows which packs
need a built environment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable
from test_api_access import api_event, call

from attune_packs import wiring
from attune_packs.api.routes import status_of
from attune_packs.errors import SystemPackProtectedError
from attune_packs.models import RegisterRequest, RegisterResponse
from attune_packs.services import lifecycle
from attune_packs.services.catalog import show_pack
from attune_packs.services.stages.register import register_packs
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz

NOT_BUILT = "runtime environment not built"


def put(store: FakeObjectStore, ref: str, version: str, pack_yaml: str = "", **kw: Any) -> str:
    """A pack whose pack.yaml ends with ``pack_yaml`` (more fields)."""
    body = tar_gz(pack_files(ref, version, dependencies=pack_yaml, **kw))
    return store.add(stored_archive_key(body), body)


def register(store: FakeObjectStore, table: FakePackTable, *paths: str, **options: Any) -> RegisterResponse:
    return register_packs(RegisterRequest(pack_paths=list(paths), **options), store=store, table=table)


# --- which packs need an environment -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pack_yaml", "files", "needs"),
    [
        ("meta:\n  python_dependencies: [requests>=2.28]\n", {}, True),
        ("meta:\n  python_dependencies:\n    dependencies: [requests]\n", {}, True),
        ("", {"requirements.txt": "requests\n"}, True),
        ("", {"package.json": '{"name": "x", "version": "1.0.0"}'}, True),
        ("runtime_deps: [shell, python3]\n", {}, False),
        ("meta:\n  keywords: [x]\n", {}, False),
    ],
)
def test_a_pack_declaring_requirements_anywhere_needs_a_built_environment(
    pack_yaml: str, files: dict[str, str], needs: bool
) -> None:
    store, table = FakeObjectStore(), FakePackTable()
    [pack] = register(store, table, put(store, "app", "1.0.0", pack_yaml, extra=files)).registered_packs
    warned = any(NOT_BUILT in w for w in pack.validation_results["warnings"])
    assert warned is needs


# --- every pack.yaml field kept is stored and shown ---------------------------------------------------

ATTUNE_FIELDS = """system: true
enabled: false
email: ops@example.com
tags: [ops, core]
runtime_deps: [shell, python3]
conf_schema:
  type: object
  properties:
    region: {type: string, default: eu-west-1}
  required: [region]
config:
  region: eu-central-1
meta:
  keywords: [timers]
  python_dependencies: [requests>=2.28]
  documentation_url: https://docs.example.com/app
  repository_url: https://git.example.com/app
testing:
  enabled: true
  runners:
    python: {type: unittest, entry_point: tests}
  min_pass_rate: 0.8
  on_failure: warn
x_vendor_field: {kept: true}
"""


def test_every_kept_pack_yaml_field_is_stored_with_the_version_and_the_pointer() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0", ATTUNE_FIELDS))
    pointer = table.items[("PACK#app", "CURRENT")]
    versions = [i for (pk, _), i in table.items.items() if pk == "PACK#app" and i.get("entity") == "pack_version"]
    assert len(versions) == 1
    for record in (pointer, versions[0]):
        kept = record["manifest"]
        assert record["system"] is True and record["enabled"] is False
        assert kept["system"] is True and kept["enabled"] is False
        assert kept["tags"] == ["ops", "core"] and kept["email"] == "ops@example.com"
        assert kept["runtimes"] == ["python", "shell"]
        assert kept["python_dependencies"] == ["requests>=2.28"]
        assert kept["meta"]["documentation_url"] == "https://docs.example.com/app"
        assert kept["meta"]["repository_url"] == "https://git.example.com/app"
        assert kept["conf_schema"]["required"] == ["region"]
        assert kept["config_schema"]["properties"]["region"]["type"] == "string"
        assert kept["config"] == {"region": "eu-central-1"}
        assert kept["testing"]["min_pass_rate"] == 0.8 and kept["testing"]["on_failure"] == "warn"
        assert kept["x_vendor_field"] == {"kept": True}, "unknown fields are kept too"


def test_show_displays_the_kept_fields() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0", ATTUNE_FIELDS))
    shown = show_pack(table, "app")
    assert shown["system"] is True and shown["manifest"]["tags"] == ["ops", "core"]
    assert shown["manifest"]["meta"]["keywords"] == ["timers"]


def test_a_large_configuration_schema_goes_to_s3_and_show_reads_it_back() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    properties = "".join(f"    option_{i}: {{type: string, description: {'d' * 200}}}\n" for i in range(400))
    big = f"conf_schema:\n  type: object\n  properties:\n{properties}tags: [big]\n"
    [pack] = register(store, table, put(store, "app", "1.0.0", big)).registered_packs
    pointer = table.items[("PACK#app", "CURRENT")]
    kept = pointer["manifest"]
    assert "conf_schema" not in kept and kept["tags"] == ["big"]
    assert pointer["manifest_document"]["fields"] == ["conf_schema", "config_schema"]
    assert len(json.dumps(pointer)) < 32 * 1024, "the item stays small"
    shown_pack = show_pack(table, "app", store=store)
    shown = shown_pack["manifest"]
    assert "manifest_document" not in shown_pack and len(shown["conf_schema"]["properties"]) == 400
    assert shown["tags"] == ["big"]
    assert show_pack(table, "app")["manifest_document"] == pointer["manifest_document"], "without S3: where"
    assert shown["config_schema"]["properties"]["option_399"]["type"] == "string"


# --- installed system packs are protected ----------------------------------------------------------


def test_an_installed_system_pack_is_removed_only_with_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "core", "1.0.0", "system: true\n"))
    with pytest.raises(SystemPackProtectedError) as refused:
        lifecycle.remove_pack(table, "core")
    assert refused.value.error_code == "SYSTEM_PACK_PROTECTED" and "force" in refused.value.message
    assert status_of(refused.value) == 409
    assert table.items[("PACK#core", "CURRENT")]["version"] == "1.0.0", "nothing was removed"
    removed = lifecycle.remove_pack(table, "core", force=True)
    assert removed.status == "removed" and ("PACK#core", "CURRENT") not in table.items


def test_an_ordinary_pack_is_removed_without_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "app", "1.0.0", "system: false\n"))
    assert lifecycle.remove_pack(table, "app").status == "removed"


@pytest.mark.parametrize(
    ("version", "description"), [("1.1.0", "test pack"), ("1.0.0", "other content under the same version")]
)
def test_an_installed_system_pack_is_replaced_only_with_force(version: str, description: str) -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "core", "1.0.0", "system: true\n"))
    newer = put(store, "core", version, "system: true\n", description=description)
    [failure] = register(store, table, newer).failed_packs
    assert failure.error_code == "SYSTEM_PACK_PROTECTED" and "force" in failure.error
    assert table.items[("PACK#core", "CURRENT")]["version"] == "1.0.0"
    [forced] = register(store, table, newer, force=True).registered_packs
    assert forced.pack_version == version and forced.status == "registered"


def test_the_same_system_pack_again_is_unchanged_without_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    path = put(store, "core", "1.0.0", "system: true\n")
    register(store, table, path)
    [again] = register(store, table, path).registered_packs
    assert again.status == "unchanged"


def test_a_system_pack_is_rolled_back_only_with_force() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "core", "1.0.0", "system: true\n"))
    register(store, table, put(store, "core", "1.1.0", "system: true\n"), force=True)
    with pytest.raises(SystemPackProtectedError):
        lifecycle.rollback_pack(table, store, "core")
    assert lifecycle.rollback_pack(table, store, "core", force=True).to_version == "1.0.0"


def test_the_api_refuses_removing_a_system_pack_with_409_unless_force(monkeypatch: pytest.MonkeyPatch) -> None:
    store, table = FakeObjectStore(), FakePackTable()
    register(store, table, put(store, "core", "1.0.0", "system: true\nconfig:\n  a: 1\n"))
    monkeypatch.setattr(wiring, "pack_table", lambda: table)

    status, body = call(api_event("GET", "/api/v1/packs/core"))
    assert status == 200 and body["data"]["system"] is True and body["data"]["manifest"]["config"] == {"a": 1}

    status, body = call(api_event("DELETE", "/api/v1/packs/core", scopes="admin"))
    assert (status, body["code"]) == (409, "SYSTEM_PACK_PROTECTED") and "force" in body["error"]

    forced = api_event("DELETE", "/api/v1/packs/core", scopes="admin")
    forced["queryStringParameters"] = {"force": "true"}
    forced["multiValueQueryStringParameters"] = {"force": ["true"]}
    status, body = call(forced)
    assert status == 200 and body["data"]["status"] == "removed"
