"""Registration keeps pack.yaml's fields, protects installed system packs, and knows which packs
need a built environment."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.models import RegisterRequest, RegisterResponse
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
