"""The registry indices aggregate: every configured index location in one partition.

Every index record sits in the partition ``INDICES`` (sort key ``INDEX#<id>``): the download
function may query that partition (IAM condition ``dynamodb:LeadingKeys``) and nothing else of
the table.
"""

from __future__ import annotations

from typing import Any

from attune_packs.data.operations import PackTable

INDICES_PARTITION = "INDICES"  # named in template.yaml's IAM condition
_PREFIX = "INDEX#"


def save_index(table: PackTable, index_id: str, fields: dict[str, Any]) -> None:
    """Store (or replace) one index record."""
    table.batch_put([{"PK": INDICES_PARTITION, "SK": f"{_PREFIX}{index_id}", "entity": "pack_index", **fields}])


def read_index(table: PackTable, index_id: str) -> dict[str, Any] | None:
    return table.get_item(INDICES_PARTITION, f"{_PREFIX}{index_id}")


def read_indices(table: PackTable) -> list[dict[str, Any]]:
    """Every index record, soft-deleted ones included."""
    return table.query_prefix(INDICES_PARTITION, _PREFIX)
