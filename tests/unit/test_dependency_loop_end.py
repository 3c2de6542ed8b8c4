"""A dependency that is missing at registration says why when the installation's dependency loop
ran out of rounds with dependencies still missing, and only then."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.models import MAX_DEPENDENCY_ROUNDS, RegisterRequest
from attune_packs.services.stages.register import register_packs
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz

WHY = f"stopped downloading dependencies after its {MAX_DEPENDENCY_ROUNDS} rounds"


def failure(**loop: Any) -> tuple[str, str]:
    store, table = FakeObjectStore(), FakePackTable()
    body = tar_gz(pack_files("app", dependencies="dependencies: [lib]\n"))
    request = RegisterRequest(pack_paths=[store.add(stored_archive_key(body), body)], **loop)
    [failed] = register_packs(request, store=store, table=table).failed_packs
    return failed.error_code, failed.error


def test_a_dependency_left_behind_by_the_last_round_is_explained() -> None:
    code, error = failure(dependency_rounds=MAX_DEPENDENCY_ROUNDS, missing_dependency_count=2)
    assert code == "DEPENDENCY_NOT_FOUND"
    assert "app needs lib" in error and WHY in error and "with 2 still missing" in error


@pytest.mark.parametrize(
    "loop",
    [
        {},  # a stage request of its own: no loop ran
        {"dependency_rounds": MAX_DEPENDENCY_ROUNDS - 1, "missing_dependency_count": 1},  # rounds were left
        {"dependency_rounds": MAX_DEPENDENCY_ROUNDS, "missing_dependency_count": 0},  # nothing was missing
    ],
)
def test_otherwise_the_missing_dependency_is_reported_as_it_is(loop: dict[str, Any]) -> None:
    code, error = failure(**loop)
    assert code == "DEPENDENCY_NOT_FOUND" and "app needs lib" in error and WHY not in error
