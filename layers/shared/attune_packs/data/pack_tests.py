"""The pack test runs aggregate: re-runs of a pack's tests (``POST /packs/{ref}/test``), kept in
the pack's partition under ``TESTRUN#<started_at>#<run id>`` (sorted by start). Test results of
installations live in the version records (:mod:`attune_packs.data.packs`)."""

from __future__ import annotations

from typing import Any

from attune_packs.data.operations import PackTable
from attune_packs.data.packs import partition

_PREFIX = "TESTRUN#"


def _sort_key(started_at: str, run_id: str) -> str:
    return f"{_PREFIX}{started_at}#{run_id}"


def save_test_run(table: PackTable, ref: str, started_at: str, run_id: str, fields: dict[str, Any]) -> None:
    """Store (or replace) one test run of a pack."""
    item = {**fields, "PK": partition(ref), "SK": _sort_key(started_at, run_id), "entity": "pack_test_run"}
    item["run_key"] = [started_at, run_id]
    table.batch_put([item])


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in {"PK", "SK", "entity"}}


def read_test_runs(table: PackTable, ref: str) -> list[dict[str, Any]]:
    """Every stored test run of a pack, oldest first; ``run_key`` names it for save_test_run."""
    return [_fields(item) for item in table.query_prefix(partition(ref), _PREFIX)]
