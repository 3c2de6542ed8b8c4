"""The installations aggregate: what one registration batch did to each pack.

Partition ``INSTALL#<installation id>``: one item per pack (``PACK#<ref>``; a source that never
became a pack: ``SOURCE#<hash of the source>``) and ``SUMMARY``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from attune_packs.data.operations import PackTable
from attune_packs.data.packs import public

_SUMMARY = "SUMMARY"


def _partition(installation_id: str) -> str:
    return f"INSTALL#{installation_id}"


def _source_tag(source: str, length: int) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:length]


def pack_outcomes(
    installation_id: str, registered: list[dict[str, Any]], failed: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The items of one batch's outcome per pack: ``registered`` (each with ``pack_ref``) and
    ``failed`` (each with ``source`` and maybe ``pack_ref``; a pack that also registered from
    another source gets an item of its own)."""
    pk = _partition(installation_id)
    items = [
        {
            "PK": pk,
            "SK": f"PACK#{r['pack_ref']}",
            "entity": "installation_pack",
            "installation_id": installation_id,
            **r,
        }
        for r in registered
    ]
    taken = {item["SK"] for item in items}
    for f in failed:
        source = str(f["source"])
        sk = f"PACK#{f['pack_ref']}" if f.get("pack_ref") else f"SOURCE#{_source_tag(source, 16)}"
        if sk in taken:
            sk = f"{sk}#{_source_tag(source, 8)}"
        taken.add(sk)
        items.append({"PK": pk, "SK": sk, "entity": "installation_pack", "installation_id": installation_id, **f})
    return items


def summary_item(installation_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "PK": _partition(installation_id),
        "SK": _SUMMARY,
        "entity": "installation",
        "installation_id": installation_id,
        **fields,
    }


def read_installation(table: PackTable, installation_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The summary (None if the batch did not finish) and the per-pack outcomes of one
    installation; both empty/None when nothing was recorded."""
    items = table.query_prefix(_partition(installation_id), "")
    summary = next((i for i in items if i["SK"] == _SUMMARY), None)
    return (public(summary) if summary else None), [public(i) for i in items if i["SK"] != _SUMMARY]
