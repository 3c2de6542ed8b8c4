"""The tokens aggregate: ``TOKEN#<id>`` / ``TOKEN`` holds one API token's hash, scopes, expiry
and revocation; the index partition ``TOKENS`` lists them."""

from __future__ import annotations

from typing import Any

from attune_packs.data.operations import PackTable

_INDEX = "TOKENS"
_SK = "TOKEN"


def _partition(token_id: str) -> str:
    return f"TOKEN#{token_id}"


def token_item(token_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"PK": _partition(token_id), "SK": _SK, "entity": "token", "GSI1PK": _INDEX, "GSI1SK": token_id, **fields}


def save_token(table: PackTable, token_id: str, fields: dict[str, Any]) -> None:
    """Store (or replace) one token's record."""
    table.batch_put([token_item(token_id, fields)])


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in {"PK", "SK", "GSI1PK", "GSI1SK", "entity"}}


def read_token(table: PackTable, token_id: str) -> dict[str, Any] | None:
    """One token's record (without the table's keys), or None."""
    item = table.get_item(_partition(token_id), _SK)
    return _fields(item) if item is not None else None


def read_tokens(table: PackTable) -> list[dict[str, Any]]:
    """Every token's record (revoked and expired ones included)."""
    return [_fields(item) for item in table.query_index(_INDEX)]
