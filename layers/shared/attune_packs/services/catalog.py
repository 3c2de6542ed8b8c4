"""The registry's read side: list packs, show one pack with its components and history."""

from __future__ import annotations

from typing import Any

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.errors import NotFoundError
from attune_packs.models import COMPONENT_TYPES

_HIDDEN = {"PK", "SK", "GSI1PK", "GSI1SK", "entity"}


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _HIDDEN}


def list_packs(table: PackTable) -> list[dict[str, Any]]:
    return [_public(item) for item in table.query_index("PACKS")]


def show_pack(table: PackTable, ref: str) -> dict[str, Any]:
    current = table.get_item(f"PACK#{ref}", "CURRENT")
    if current is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    version = str(current["version"])
    components: dict[str, list[dict[str, Any]]] = {kind: [] for kind in COMPONENT_TYPES}
    for item in table.query_prefix(f"PACK#{ref}", f"COMPONENT#{version}#"):
        components.setdefault(str(item["type"]), []).append(_public(item))
    history = [
        {
            "version": item["version"],
            "registered_at": item.get("registered_at"),
            "checksum": item.get("checksum"),
            "installation_id": item.get("installation_id"),
        }
        for item in table.query_prefix(f"PACK#{ref}", "VERSION#")
    ]
    return {**_public(current), "components": components, "history": history}
