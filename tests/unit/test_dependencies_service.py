"""Dependencies stage: installed, provided by the batch, missing, conflicting, cyclic."""

from __future__ import annotations

from fakes import FakeObjectStore, FakePackTable
from packs import pack_files, tar_gz

from attune_packs.models import DependenciesRequest
from attune_packs.services.dependencies import analyze_dependencies, install_order


def stored(store: FakeObjectStore, ref: str, version: str, deps: str = "", requirements: str | None = None) -> str:
    return store.add(
        f"archives/sha256/{ref}{version.replace('.', '')}.tar.gz",
        tar_gz(pack_files(ref, version, dependencies=deps, requirements=requirements)),
    )


def installed(table: FakePackTable, ref: str, version: str) -> None:
    table.items[(f"PACK#{ref}", "CURRENT")] = {"PK": f"PACK#{ref}", "SK": "CURRENT", "version": version, "revision": 1}


def analyze(store: FakeObjectStore, table: FakePackTable, *paths: str, force: bool = False):
    return analyze_dependencies(DependenciesRequest(pack_paths=list(paths), force=force), store, table)


def test_missing_installed_and_in_batch_dependencies() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(table, "base", "1.4.0")
    app = stored(store, "app", "1.0.0", "dependencies:\n  base: '>=1.0.0'\n  lib: '^2.0.0'\n  extra: '*'\n")
    lib = stored(store, "lib", "2.3.0")
    response = analyze(store, table, app, lib)
    by_ref = {d.pack_ref: d for d in response.dependencies}
    assert by_ref["base"].already_installed and by_ref["base"].satisfied
    assert by_ref["lib"].provided_by == lib and by_ref["lib"].satisfied
    assert response.missing_dependencies == ["extra"]
    assert response.install_order == ["lib", "app"]


def test_an_installed_version_that_does_not_fit_is_a_conflict_unless_forced() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    installed(table, "base", "1.0.0")
    app = stored(store, "app", "1.0.0", "dependencies:\n  base: '>=2.0.0'\n")
    response = analyze(store, table, app)
    assert response.conflicts[0].error_code == "DEPENDENCY_CONFLICT"
    assert "base 1.0.0 is installed" in response.conflicts[0].message
    assert response.missing_dependencies == []
    forced = analyze(store, table, app, force=True)
    assert forced.conflicts == [] and forced.missing_dependencies == ["base@>=2.0.0"]


def test_cycles_are_reported_with_the_cycle() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    a = stored(store, "a", "1.0.0", "dependencies: [b]\n")
    b = stored(store, "b", "1.0.0", "dependencies: [a]\n")
    response = analyze(store, table, a, b)
    assert {c.error_code for c in response.conflicts} == {"DEPENDENCY_CYCLE"}
    assert "a -> b -> a" in response.conflicts[0].message
    assert response.build_items == []


def test_runtime_requirements_and_build_items() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    py = stored(store, "py", "1.0.0", requirements="six==1.17.0\n")
    plain = stored(store, "plain", "1.0.0")
    response = analyze(store, table, py, plain)
    assert response.runtime_requirements["py"].python.packages == ["six==1.17.0"]
    assert response.runtime_requirements["plain"].python is None
    assert [b.pack_ref for b in response.build_items] == ["py"] and response.build_count == 1


def test_a_broken_pack_is_an_error_entry_not_a_failed_batch() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    good = stored(store, "good", "1.0.0")
    bad = store.add("archives/sha256/bad.tar.gz", tar_gz({"pack.yaml": "ref: [unclosed\n"}))
    response = analyze(store, table, good, bad)
    assert response.install_order == ["good"]
    assert response.errors[0].source == bad and response.errors[0].error_code.startswith("MANIFEST")


def test_install_order_puts_dependencies_first_on_a_diamond() -> None:
    order, conflicts = install_order({"top": {"left", "right"}, "left": {"base"}, "right": {"base"}, "base": set()})
    assert conflicts == []
    assert order.index("base") < order.index("left") < order.index("top")
    assert order.index("right") < order.index("top")
