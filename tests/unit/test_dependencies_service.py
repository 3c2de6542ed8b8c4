"""Dependencies stage: installed, provided by the batch, chosen from the registry, conflicting, cyclic."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.domain.install_order import install_order
from attune_packs.domain.registry_index import parse_registry_ref
from attune_packs.errors import DownloadError
from attune_packs.models import DependenciesRequest, DependenciesResponse
from attune_packs.services.stages.dependencies import analyze_dependencies
from attune_packs.settings import Settings
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz

INDEX_KEY = "registry/index.json"
CHECKSUM = "sha256:" + "0" * 64


def stored(
    store: FakeObjectStore,
    ref: str,
    version: str,
    deps: str = "",
    requirements: str | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    body = tar_gz(pack_files(ref, version, dependencies=deps, requirements=requirements, extra=extra))
    return store.add(stored_archive_key(body), body)


def installed(table: FakePackTable, ref: str, version: str, deps: dict[str, str] | None = None) -> None:
    table.items[(f"PACK#{ref}", "CURRENT")] = {
        "PK": f"PACK#{ref}",
        "SK": "CURRENT",
        "version": version,
        "revision": 1,
        "dependencies": deps or {},
    }


def publish(store: FakeObjectStore, *entries: tuple[str, str, list[str]], key: str = INDEX_KEY) -> str:
    packs = [
        {
            "ref": ref,
            "version": version,
            "dependencies": deps,
            "install_sources": [{"type": "archive", "url": f"{ref}-{version}.tar.gz", "checksum": CHECKSUM}],
        }
        for ref, version, deps in entries
    ]
    return store.add(key, json.dumps({"packs": packs}).encode())


def settings(*urls: str, **extra: Any) -> Settings:
    return Settings.model_validate({"BUCKET_NAME": "packs", "REGISTRY_INDEX_URLS": ",".join(urls), **extra})


def analyze(
    store: FakeObjectStore, table: FakePackTable, *paths: str, config: Settings | None = None, **options: Any
) -> DependenciesResponse:
    request = DependenciesRequest(pack_paths=list(paths), **options)
    return analyze_dependencies(request, store, table, config if config is not None else settings())


def test_installed_in_batch_and_registry_dependencies_with_exact_pins() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    url = publish(store, ("extra", "1.0.0", []), ("extra", "1.3.0", ["leaf^2"]), ("leaf", "2.0.0", []))
    installed(table, "base", "1.4.0")
    app = stored(store, "app", "1.0.0", "dependencies:\n  base: '>=1.0.0'\n  lib: '^2.0.0'\n  extra: '*'\n")
    lib = stored(store, "lib", "2.3.0")
    response = analyze(store, table, app, lib, config=settings(url))
    by_ref = {(d.required_by, d.pack_ref): d for d in response.dependencies}
    assert by_ref[("app", "base")].already_installed and by_ref[("app", "base")].satisfied
    assert by_ref[("app", "lib")].provided_by == lib and by_ref[("app", "lib")].satisfied
    assert not by_ref[("app", "extra")].satisfied and by_ref[("app", "extra")].resolved_version == "1.3.0"
    assert by_ref[("extra", "leaf")].version_spec == ">=2.0.0,<3.0.0"
    assert response.missing_dependencies == ["extra@=1.3.0", "leaf@=2.0.0"]
    assert response.missing_count == 2
    assert [(r.pack_ref, r.version, r.index, r.required_by) for r in response.resolution] == [
        ("extra", "1.3.0", url, ["app 1.0.0"]),
        ("leaf", "2.0.0", url, ["extra 1.3.0"]),
    ]
    assert response.install_order == ["leaf", "lib", "extra", "app"]
    assert response.conflicts == [] and response.errors == []


def test_a_missing_pin_is_read_back_by_the_download_stage_as_that_exact_version() -> None:
    ref, constraint = parse_registry_ref("extra@=1.3.0")
    assert ref == "extra"
    assert str(constraint) == "=1.3.0"


def test_a_second_round_with_the_downloaded_dependencies_needs_nothing_more() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    url = publish(store, ("base", "1.0.0", []), ("base", "2.0.0", []))
    app = stored(store, "app", "1.0.0", "dependencies: [base=1.0.0]\n")
    first = analyze(store, table, app, config=settings(url))
    assert first.missing_dependencies == ["base@=1.0.0"]
    base = stored(store, "base", "1.0.0")
    second = analyze(store, table, app, base, config=settings(url))
    assert second.missing_dependencies == [] and second.conflicts == []
    assert second.install_order == ["base", "app"]


def test_an_installed_version_that_does_not_fit_is_a_conflict_unless_forced() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    url = publish(store, ("base", "1.0.0", []), ("base", "2.1.0", []))
    installed(table, "base", "1.0.0")
    app = stored(store, "app", "1.0.0", "dependencies:\n  base: '>=2.0.0'\n", requirements="six==1.17.0\n")
    response = analyze(store, table, app, config=settings(url))
    assert [(c.pack_ref, c.error_code) for c in response.conflicts] == [("app", "DEPENDENCY_CONFLICT")]
    assert "base 1.0.0 is installed" in response.conflicts[0].message
    assert "force" in response.conflicts[0].message
    assert response.missing_dependencies == [] and response.build_items == []
    assert response.analyzed_packs[0].blocked
    forced = analyze(store, table, app, config=settings(url), force=True)
    assert forced.conflicts == [] and forced.missing_dependencies == ["base@=2.1.0"]
    assert forced.resolution[0].installed_version == "1.0.0"
    assert [b.pack_ref for b in forced.build_items] == ["app"]


def test_cycles_are_reported_with_the_cycle() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    a = stored(store, "a", "1.0.0", "dependencies: [b]\n")
    b = stored(store, "b", "1.0.0", "dependencies: [a]\n")
    response = analyze(store, table, a, b)
    assert {c.error_code for c in response.conflicts} == {"DEPENDENCY_CYCLE"}
    assert "a 1.0.0 -> b 1.0.0 -> a 1.0.0" in response.conflicts[0].message
    assert response.build_items == [] and response.install_order == []


def test_a_self_dependency_is_a_cycle() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    a = stored(store, "a", "1.0.0", "dependencies: [a]\n")
    response = analyze(store, table, a)
    assert [(c.pack_ref, c.error_code) for c in response.conflicts] == [("a", "DEPENDENCY_CYCLE")]
    assert "depends on itself" in response.conflicts[0].message


def test_a_dependency_nobody_offers_is_not_found_and_says_where_it_looked() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    url = publish(store, ("other", "1.0.0", []))
    app = stored(store, "app", "1.0.0", "dependencies: [ghost]\n")
    fine = stored(store, "fine", "1.0.0")
    response = analyze(store, table, app, fine, config=settings(url))
    assert [(c.pack_ref, c.error_code) for c in response.conflicts] == [("app", "DEPENDENCY_NOT_FOUND")]
    assert url in response.conflicts[0].message
    assert response.install_order == ["fine"]
    without = analyze(store, table, app)
    assert "no registry index is configured" in without.conflicts[0].message


def test_the_request_registry_url_overrides_the_configured_indices() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    configured = publish(store, ("base", "1.0.0", []), key="registry/configured.json")
    requested = publish(store, ("base", "3.0.0", []), key="registry/requested.json")
    app = stored(store, "app", "1.0.0", "dependencies: [base]\n")
    assert analyze(store, table, app, config=settings(configured)).missing_dependencies == ["base@=1.0.0"]
    response = analyze(store, table, app, config=settings(configured), registry_url=requested)
    assert response.missing_dependencies == ["base@=3.0.0"]
    assert response.resolution[0].index == requested


def test_indices_managed_through_the_api_follow_the_configured_ones_in_their_position_order() -> None:
    from attune_packs.services.managed_indices import IndexInput, create_index

    store, table = FakeObjectStore(), FakePackTable()
    configured = publish(store, ("base", "1.0.0", []), key="registry/configured.json")
    late = publish(store, ("base", "2.0.0", []), ("extra", "1.0.0", []), key="registry/late.json")
    early = publish(store, ("extra", "5.0.0", []), key="registry/early.json")
    create_index(table, IndexInput(url=late, position=20))
    create_index(table, IndexInput(url=early, position=10))
    create_index(table, IndexInput(url=early.replace("early", "disabled"), position=1, enabled=False))
    app = stored(store, "app", "1.0.0", "dependencies: [base, extra]\n")

    response = analyze(store, table, app, config=settings(configured))

    # base: the configured index comes first; extra: the stored index with the lowest position wins
    assert response.missing_dependencies == ["base@=1.0.0", "extra@=5.0.0"]
    assert {r.pack_ref: r.index for r in response.resolution} == {"base": configured, "extra": early}


def test_an_unreadable_index_is_an_error_entry_and_the_others_still_resolve() -> None:
    from attune_packs.services.managed_indices import IndexInput, create_index

    store, table = FakeObjectStore(), FakePackTable()
    good = publish(store, ("base", "1.0.0", []), key="registry/good.json")
    create_index(table, IndexInput(url="s3://packs/registry/missing.json", position=1))
    app = stored(store, "app", "1.0.0", "dependencies: [base]\n")

    response = analyze(store, table, app, config=settings(good))

    assert response.missing_dependencies == ["base@=1.0.0"]
    assert [(e.source, e.error_code) for e in response.errors] == [("s3://packs/registry/missing.json", "SOURCE_GONE")]


def test_indices_are_not_read_when_nothing_is_missing() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    url = publish(store, ("base", "1.0.0", []))
    installed(table, "base", "1.0.0")
    app = stored(store, "app", "1.0.0", "dependencies: [base]\n")
    store.calls.clear()
    analyze(store, table, app, config=settings(url))
    assert store.calls["get"] == 1  # the pack archive only


def test_an_unreadable_index_is_an_error_entry_and_resolution_goes_on() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    broken = store.add(INDEX_KEY, b"{not json")
    app = stored(store, "app", "1.0.0", "dependencies: [base]\n")
    fine = stored(store, "fine", "1.0.0")
    response = analyze(store, table, app, fine, config=settings(broken))
    assert [(e.source, e.error_code) for e in response.errors] == [("registry", "INDEX_INVALID")]
    assert [(c.pack_ref, c.error_code) for c in response.conflicts] == [("app", "DEPENDENCY_NOT_FOUND")]
    assert response.install_order == ["fine"]


def test_a_transient_failure_reading_an_index_propagates_for_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    from attune_packs.services.stages import dependencies

    def flaky(*_args: object, **_kwargs: object) -> None:
        raise DownloadError("the registry timed out")

    monkeypatch.setattr(dependencies, "load_indices", flaky)
    store, table = FakeObjectStore(), FakePackTable()
    app = stored(store, "app", "1.0.0", "dependencies: [base]\n")
    with pytest.raises(DownloadError):
        analyze(store, table, app, config=settings("s3://packs/registry/index.json"))


def test_platform_constraints_block_a_pack_with_an_actionable_message() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    newer = stored(store, "newer", "1.0.0", "stackstorm_version: '>=4.0.0'\n")
    py2 = stored(store, "py2", "1.0.0", "python_versions: ['2']\n", requirements="six\n")
    ok = stored(store, "ok", "1.0.0", "python_versions: ['2', '3']\nattune_version: '^3.9'\n")
    response = analyze(store, table, newer, py2, ok, config=settings(PLATFORM_VERSION="3.9.1"))
    problems = {c.pack_ref: c for c in response.conflicts}
    assert set(problems) == {"newer", "py2"}
    assert {c.error_code for c in problems.values()} == {"PLATFORM_INCOMPATIBLE"}
    assert "requires Attune/StackStorm >=4.0.0, but this installer targets 3.9.1" in problems["newer"].message
    assert "Python 2" in problems["py2"].message and "3.12" in problems["py2"].message
    assert response.install_order == ["ok"] and response.build_items == []
    older_python = analyze(store, table, py2, python_version="3.11")
    assert older_python.conflicts[0].error_code == "PLATFORM_INCOMPATIBLE"


def test_a_node_version_the_pack_declares_is_checked() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    node = stored(store, "js", "1.0.0", extra={"package.json": '{"name": "js", "engines": {"node": ">=22"}}'})
    assert analyze(store, table, node).conflicts[0].error_code == "PLATFORM_INCOMPATIBLE"
    assert analyze(store, table, node, nodejs_version="22").conflicts == []


def test_runtime_requirements_and_build_items() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    py = stored(
        store,
        "py",
        "1.0.0",
        requirements="-r requirements-base.txt\nSix==1.17.0\n",
        extra={"requirements-base.txt": "attrs==23.1.0\n"},
    )
    plain = stored(store, "plain", "1.0.0")
    nested_body = tar_gz(
        pack_files("nested", "1.0.0", requirements="-r reqs/base.txt\n", extra={"reqs/base.txt": "idna==3.7\n"}),
        root="nested-1.0.0/",
    )
    nested = store.add(stored_archive_key(nested_body), nested_body)
    response = analyze(store, table, py, plain, nested)
    assert response.errors == []
    nested_python = response.runtime_requirements["nested"].python
    assert nested_python is not None and nested_python.packages == ["idna==3.7"]
    python = response.runtime_requirements["py"].python
    assert python is not None and python.packages == ["attrs==23.1.0", "six==1.17.0"]
    assert python.included_files == ["requirements-base.txt"]
    assert response.runtime_requirements["plain"].python is None
    assert [b.pack_ref for b in response.build_items] == ["nested", "py"] and response.build_count == 2


def test_forbidden_requirements_make_the_pack_an_error_before_any_build() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    evil = stored(store, "evil", "1.0.0", requirements="six\n--index-url https://evil.example/simple\n")
    response = analyze(store, table, evil)
    assert [e.error_code for e in response.errors] == ["REQUIREMENTS_FORBIDDEN"]
    assert response.build_items == [] and response.analyzed_packs == []


def test_a_broken_pack_is_an_error_entry_not_a_failed_batch() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    good = stored(store, "good", "1.0.0")
    bad_body = tar_gz({"pack.yaml": "ref: [unclosed\n"})
    bad = store.add(stored_archive_key(bad_body), bad_body)
    response = analyze(store, table, good, bad)
    assert response.install_order == ["good"]
    assert response.errors[0].source == bad and response.errors[0].error_code.startswith("MANIFEST")


def test_two_versions_of_one_pack_in_a_batch_block_it() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    one = stored(store, "lib", "1.0.0")
    two = stored(store, "lib", "2.0.0")
    response = analyze(store, table, one, two)
    assert [(c.pack_ref, c.error_code) for c in response.conflicts] == [("lib", "DEPENDENCY_CONFLICT")]
    assert "two versions of lib" in response.conflicts[0].message
    assert response.install_order == []


def test_install_order_puts_dependencies_first_on_a_diamond() -> None:
    order, conflicts = install_order({"top": {"left", "right"}, "left": {"base"}, "right": {"base"}, "base": set()})
    assert conflicts == []
    assert order.index("base") < order.index("left") < order.index("top")
    assert order.index("right") < order.index("top")


def test_install_order_reports_cycles_and_what_depends_on_them() -> None:
    order, conflicts = install_order({"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": set(), "e": {"e"}})
    assert order == ["d"]
    assert {(c.pack_ref, c.message) for c in conflicts} == {
        ("a", "dependency cycle: a -> b -> a"),
        ("b", "dependency cycle: a -> b -> a"),
        ("e", "dependency cycle: e -> e"),
        ("c", "c depends on packs that are on a dependency cycle"),
    }


def test_the_response_is_json_for_the_state_machine() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    url = publish(store, ("base", "1.0.0", []))
    app = stored(store, "app", "1.0.0", "dependencies: [base]\n")
    body = analyze(store, table, app, config=settings(url)).model_dump(mode="json")
    assert json.loads(json.dumps(body))["resolution"][0] == {
        "pack_ref": "base",
        "version": "1.0.0",
        "index": url,
        "required_by": ["app 1.0.0"],
        "installed_version": None,
    }
