"""Prune: delete what no pointer references any more (registrations out of retention, attempts
that crashed before their flip), and decide which registrations stay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attune_packs.data import packs as stored
from attune_packs.data.operations import Key, PackTable
from attune_packs.data.packs import PackHead
from attune_packs.services.stages.register.policy import RegistryPolicy


def next_retained(
    head: PackHead, version: str, registration_id: str, keep: int, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The registrations kept after making (version, registration_id) current, and those dropped."""
    old = head.retained
    entry = {"version": version, "registration_id": registration_id, "activated_at": now.isoformat()}
    ordered = [entry] + [e for e in old if e["version"] != version]
    dropped = [e for e in old if e["version"] == version and e.get("registration_id") != registration_id]
    return ordered[:keep], dropped + ordered[keep:]


def is_stale(staged: dict[str, Any], now: datetime, policy: RegistryPolicy) -> bool:
    """Whether a STAGED registration is older than any registration can run (so it is dead)."""
    try:
        started = datetime.fromisoformat(str(staged.get("started_at")))
    except ValueError:
        return True
    return now - started > policy.staged_grace


def collect_garbage(table: PackTable, ref: str, entries: list[dict[str, Any]]) -> int:
    """Delete the component items of registrations nobody points at, then their markers."""
    keys: list[Key] = []
    markers: list[Key] = []
    seen: set[tuple[str, str | None]] = set()
    for entry in entries:
        rid = entry.get("registration_id")
        version = str(entry["version"])
        marker = stored.marker_key(entry)
        if marker is not None:
            markers.append(marker)
        if (version, rid) in seen:
            continue
        seen.add((version, rid))
        keys.extend(stored.registration_component_keys(table, ref, version, rid))
    table.batch_delete([*keys, *markers])
    return sum(1 for key in keys if stored.is_component_key(key))


def discard(table: PackTable, keys: list[Key] | None) -> None:
    """Delete a registration that will never be current (its marker, first of ``keys``, last, so
    a failure here leaves the marker for the garbage collector)."""
    from attune_packs.errors import AttuneError

    if not keys:
        return
    try:
        table.batch_delete([*keys[1:], keys[0]])
    except AttuneError:
        pass  # the STAGED marker remains: the next registration of the pack collects it
