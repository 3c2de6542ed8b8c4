"""The packs aggregate: every key, item, condition and query of a pack in the single table.

Layout (partition ``PACK#<ref>``):

===================================== ====================================================================
``CURRENT``                           the pointer: the current version's record plus ``revision``, the
                                      ``registration_id`` whose components are current, and ``retained``
                                      (the registrations whose items are kept, most recently current
                                      first). ``GSI1PK=PACKS, GSI1SK=<ref>`` lists the installed packs.
``CURRENT#DEPENDENT#<other>``         written by ``<other>``'s registration: it depends on this pack
                                      (constraint)
``CURRENT#STAGED#<rid>``              a registration in flight (its items are written, its flip is not)
``CURRENT#GARBAGE#<rid>``             a registration no longer referenced, whose items are to delete
``CURRENT#REMOVED``                   the last removal (who, when, which version, the last revision)
``VERSION#<v>``                       one record per registered version: metadata, archive and checksum,
                                      environments, test result, validation, who / when / which
                                      installation
``COMPONENT#<v>#<rid>#<t>#<n>``       one item per component of one registration of version ``v``;
                                      ``GSI1PK=COMPONENT#<t>``, ``GSI1SK=<pack>.<name>#<v>#<rid>``; what
                                      readers filter on (type, name, ref, pack_ref, pack_version,
                                      registration_id) top-level, the rest one JSON ``document``
``COMPONENT#<v>#<rid>#~LISTING#<n>``  the same registration's components as a few JSON documents (part
                                      ``n`` of ``parts``, each under 300 KB): ``show`` of a pack with
                                      thousands of components reads a handful of items; deleted with
                                      the registration (same prefix)
===================================== ====================================================================

Installations, tokens and registry indices have partitions of their own (:mod:`.installations`,
:mod:`.tokens`, :mod:`.indices`).

Everything a pointer flip must consult sorts under ``CURRENT``, so one strongly consistent query
reads the pointer, the dependents, the registrations in flight and the garbage queue together.

Components are keyed by *registration* (``rid``), not only by version: two registrations of the
same pack never write the same item, so the loser of a race, a crashed attempt or a forced
re-registration of a version never touches the items that readers are following. Readers go
through ``CURRENT`` (version + rid) and therefore see one registration's components, never a mix.

The component index holds every registration's components (not only the current ones): moving
items in or out of the index at flip time would mean rewriting every component item, which cannot
be atomic with the flip (a pack can have thousands; a transaction holds 100) and would double the
write cost. Readers of the index keep the items of each pack's current registration (one batched
consistent read of the pointers per page) and fall back to the base table for a pack whose new
items the (eventually consistent) index does not show yet, so a listing shows each pack's old or
new components, never a mixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from attune_packs.data.operations import (
    Check,
    Condition,
    Delete,
    IndexPage,
    Key,
    PackTable,
    Put,
    Update,
    item_key,
)

PACKS_INDEX = "PACKS"
MANIFEST_FIELD = "manifest"  # the pack.yaml fields kept with a version (PackManifest.stored_fields)
MANIFEST_DOCUMENT_FIELD = "manifest_document"  # where its large fields are kept in S3, when they are
_CURRENT = "CURRENT"
_DEPENDENT_PREFIX = "CURRENT#DEPENDENT#"
_STAGED_PREFIX = "CURRENT#STAGED#"
_GARBAGE_PREFIX = "CURRENT#GARBAGE#"
_REMOVED = "CURRENT#REMOVED"
_VERSION_PREFIX = "VERSION#"
_COMPONENT_PREFIX = "COMPONENT#"
_KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK")
_HIDDEN = {*_KEY_ATTRIBUTES, "entity", "retained", "removing"}
# What a version record carries that belongs to one registration, not to the version.
_REGISTRATION_FIELDS = {*_KEY_ATTRIBUTES, "entity", "registration_id", "activated_at", "cleaned_up_at"}
_COMPONENT_TOP_LEVEL = {"type", "name", "ref", "pack_ref", "pack_version", "registration_id"}
_LISTING = "~LISTING#"  # sorts after every component type under a registration's prefix
_LISTING_PART_BYTES = 300 * 1024
AFTER_PACK = ".~"  # sorts after every "<pack>.<component name>" ('~' is above the name characters)


# -- keys --------------------------------------------------------------------------------------------


def partition(ref: str) -> str:
    """The partition of one pack."""
    return f"PACK#{ref}"


def _version_sk(version: str) -> str:
    return f"{_VERSION_PREFIX}{version}"


def _component_prefix(version: str, registration_id: str | None) -> str:
    """Sort-key prefix of one registration's components (items of packs registered before
    registrations had ids sit directly under the version)."""
    if registration_id:
        return f"{_COMPONENT_PREFIX}{version}#{registration_id}#"
    return f"{_COMPONENT_PREFIX}{version}#"


def _component_sk(version: str, registration_id: str | None, component_type: str, name: str) -> str:
    return f"{_component_prefix(version, registration_id)}{component_type}#{name}"


def _component_index_pk(component_type: str) -> str:
    return f"{_COMPONENT_PREFIX}{component_type}"


def public(item: dict[str, Any]) -> dict[str, Any]:
    """An item as callers see it: without its keys and the table's bookkeeping."""
    return {k: v for k, v in item.items() if k not in _HIDDEN}


def version_body(record: dict[str, Any]) -> dict[str, Any]:
    """A version record without what belongs to one registration of it (to make it current again)."""
    return {k: v for k, v in record.items() if k not in _REGISTRATION_FIELDS}


def attribute_names(item: dict[str, Any]) -> list[str]:
    """The attributes of an item other than its primary key."""
    return [k for k in item if k not in ("PK", "SK")]


# -- the pointer and what sorts with it -----------------------------------------------------------------


@dataclass
class PackHead:
    """``CURRENT`` and its companions, read together with one consistent query."""

    ref: str
    current: dict[str, Any] | None = None
    dependents: dict[str, dict[str, Any]] = field(default_factory=dict)
    staged: list[dict[str, Any]] = field(default_factory=list)
    garbage: list[dict[str, Any]] = field(default_factory=list)
    removed: dict[str, Any] | None = None

    @property
    def revision(self) -> int | None:
        return int(self.current["revision"]) if self.current is not None else None

    @property
    def next_revision(self) -> int:
        """Revisions never restart, even after a removal: an old revision number can never match
        a newer pointer (no ABA between a removal and a re-registration)."""
        if self.current is not None:
            return int(self.current["revision"]) + 1
        return int(self.removed["revision"]) + 1 if self.removed else 1

    @property
    def retained(self) -> list[dict[str, Any]]:
        """Registrations whose items are kept, most recently current first."""
        if self.current is None:
            return []
        if self.current.get("retained"):
            return [dict(entry) for entry in self.current["retained"]]
        # A pointer written before retention was recorded: only its own registration is known.
        return [{"version": str(self.current["version"]), "registration_id": self.current.get("registration_id")}]


def read_head(table: PackTable, ref: str) -> PackHead:
    """The pointer, dependents, registrations in flight, garbage queue and last removal of a pack."""
    head = PackHead(ref)
    for item in table.query_prefix(partition(ref), _CURRENT):
        sk = str(item["SK"])
        if sk == _CURRENT:
            head.current = item
        elif sk.startswith(_DEPENDENT_PREFIX):
            head.dependents[sk.removeprefix(_DEPENDENT_PREFIX)] = item
        elif sk.startswith(_STAGED_PREFIX):
            head.staged.append(item)
        elif sk.startswith(_GARBAGE_PREFIX):
            head.garbage.append(item)
        elif sk == _REMOVED:
            head.removed = item
    return head


# -- reads -------------------------------------------------------------------------------------------


def read_pointer(table: PackTable, ref: str) -> dict[str, Any] | None:
    """The current version's pointer of a pack (consistent), or None when it is not installed."""
    return table.get_item(partition(ref), _CURRENT)


def read_pointers(table: PackTable, refs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The pointers of the installed packs among ``refs`` (one batched consistent read)."""
    wanted = list(dict.fromkeys(refs))
    if not wanted:
        return {}
    found = table.batch_get([(partition(ref), _CURRENT) for ref in wanted])
    return {ref: found[(partition(ref), _CURRENT)] for ref in wanted if (partition(ref), _CURRENT) in found}


def read_version(table: PackTable, ref: str, version: str) -> dict[str, Any] | None:
    """The record of one registered version of a pack."""
    return table.get_item(partition(ref), _version_sk(version))


def read_versions(table: PackTable, ref: str) -> list[dict[str, Any]]:
    """The records of every registered version of a pack."""
    return table.query_prefix(partition(ref), _VERSION_PREFIX)


def _read_component_items(
    table: PackTable, ref: str, pointer: dict[str, Any], component_type: str = ""
) -> list[dict[str, Any]]:
    rid = pointer.get("registration_id")
    prefix = _component_prefix(str(pointer["version"]), rid)
    items = table.query_prefix(partition(ref), prefix + (f"{component_type}#" if component_type else ""))
    # Legacy pointers (no registration id) share their prefix with later registrations of the
    # same version: keep only the items without an id.
    return [
        component_fields(i)
        for i in items
        if i.get("registration_id") == rid and i.get("entity", "component") == "component"
    ]


def _read_listing(table: PackTable, ref: str, pointer: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The registration's components from its listing documents; None when it has none (written
    before listings existed) or they are not all there."""
    rid = pointer.get("registration_id")
    if not rid:
        return None
    parts = table.query_prefix(partition(ref), _component_prefix(str(pointer["version"]), rid) + _LISTING)
    parts = [p for p in parts if p.get("registration_id") == rid]
    if not parts or len(parts) != int(parts[0].get("parts", 0)):
        return None
    return [component for part in parts for component in json.loads(str(part["components"]))]


def read_components(
    table: PackTable, ref: str, pointer: dict[str, Any], component_type: str = ""
) -> list[dict[str, Any]]:
    """The components of the registration ``pointer`` names (of one type, or all), as callers
    see them (:func:`public`): from its listing (a few items), else item by item."""
    listed = _read_listing(table, ref, pointer)
    if listed is not None:
        return [c for c in listed if not component_type or c.get("type") == component_type]
    return [public(item) for item in _read_component_items(table, ref, pointer, component_type)]


def read_named_components(
    table: PackTable, pointers: dict[str, dict[str, Any]], wanted: Sequence[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which of the components ``(pack, type, name)`` the current registrations in ``pointers``
    hold (one batched consistent read)."""
    keys: dict[Key, tuple[str, str, str]] = {}
    for pack, kind, name in wanted:
        pointer = pointers.get(pack)
        if pointer is not None:
            sk = _component_sk(str(pointer["version"]), pointer.get("registration_id"), kind, name)
            keys[(partition(pack), sk)] = (pack, kind, name)
    if not keys:
        return set()
    found = table.batch_get(list(keys))
    return {
        keys[key]
        for key, item in found.items()
        if item.get("registration_id") == pointers[keys[key][0]].get("registration_id")
    }


def read_component_by_name(
    table: PackTable, pack: str, pointer: dict[str, Any], kinds: Sequence[str], name: str
) -> list[dict[str, Any]]:
    """The components named ``name`` of any of ``kinds`` in the registration ``pointer`` names
    (one batched consistent read)."""
    rid = pointer.get("registration_id")
    keys = [(partition(pack), _component_sk(str(pointer["version"]), rid, kind, name)) for kind in kinds]
    return [component_fields(item) for item in table.batch_get(keys).values() if item.get("registration_id") == rid]


def registration_component_keys(table: PackTable, ref: str, version: str, registration_id: str | None) -> list[Key]:
    """The keys of one registration's component items (to delete them)."""
    items = table.query_prefix(
        partition(ref), _component_prefix(version, registration_id), attributes=["registration_id"]
    )
    return [item_key(item) for item in items if item.get("registration_id") == registration_id]


def is_component_key(key: Key) -> bool:
    """Whether a key is a component's (not a listing document's)."""
    return _LISTING not in key[1]


def list_pointers(table: PackTable) -> list[dict[str, Any]]:
    """The pointers of every installed pack (the packs index)."""
    return table.query_index(PACKS_INDEX)


def pointers_page(table: PackTable, *, after: str | None, limit: int) -> IndexPage:
    """One page of installed packs' pointers ordered by ref, after the ref ``after``."""
    return table.query_index_page(PACKS_INDEX, after=after, limit=limit)


def component_index_page(
    table: PackTable, component_type: str, *, after_pack: str | None, limit: int, start: dict[str, str] | None
) -> IndexPage:
    """One page of the component index of one type (every stored registration's components,
    ordered by ref), from after the pack ``after_pack`` or where ``start`` says."""
    after = after_pack + AFTER_PACK if after_pack else None
    page = table.query_index_page(_component_index_pk(component_type), after=after, limit=limit, start=start)
    return IndexPage(items=[component_fields(item) for item in page.items], next_start=page.next_start)


def component_registrations(table: PackTable, component_type: str, component_ref: str) -> list[dict[str, Any]]:
    """Every stored registration of one component (``pack.name``), through the index."""
    return [component_fields(i) for i in table.query_index(_component_index_pk(component_type), f"{component_ref}#")]


# -- items -------------------------------------------------------------------------------------------


def staged_marker(
    ref: str, version: str, registration_id: str, installation_id: str | None, now: datetime
) -> dict[str, Any]:
    """The marker of a registration in flight, written before its items."""
    return {
        "PK": partition(ref),
        "SK": f"{_STAGED_PREFIX}{registration_id}",
        "entity": "staged_registration",
        "version": version,
        "registration_id": registration_id,
        "installation_id": installation_id,
        "started_at": now.isoformat(),
    }


def component_item(
    ref: str,
    version: str,
    registration_id: str,
    component_type: str,
    name: str,
    component_ref: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """One component of one registration, in the component index of its type. What readers
    filter on stays top-level; the rest is one JSON ``document`` (one attribute instead of dozens
    of nested ones: cheaper to write, to size and to copy)."""
    document = {k: v for k, v in fields.items() if k not in _COMPONENT_TOP_LEVEL and v is not None}
    return {
        "PK": partition(ref),
        "SK": _component_sk(version, registration_id, component_type, name),
        "entity": "component",
        "GSI1PK": _component_index_pk(component_type),
        "GSI1SK": f"{component_ref}#{version}#{registration_id}",
        "pack_ref": ref,
        "pack_version": version,
        "registration_id": registration_id,
        "type": component_type,
        "name": name,
        "ref": component_ref,
        "document": json.dumps(document, separators=(",", ":"), sort_keys=True, default=str),
    }


def component_fields(item: dict[str, Any]) -> dict[str, Any]:
    """A component item with its document unpacked (items written before documents existed carry
    their fields top-level: returned as they are)."""
    if "document" not in item:
        return item
    unpacked = {k: v for k, v in item.items() if k != "document"}
    unpacked.update(json.loads(str(item["document"])))
    return unpacked


def listing_items(
    ref: str, version: str, registration_id: str, components: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A registration's components (as :func:`public` shows them) in JSON documents under 300 KB."""
    chunks: list[list[str]] = [[]]
    size = 0
    # As the items read back: in sort-key order, without empty (None) attributes.
    for component in sorted(components, key=lambda c: f"{c['type']}#{c['name']}"):
        shown = {k: v for k, v in public(component_fields(component)).items() if v is not None}
        encoded = json.dumps(shown, separators=(",", ":"), sort_keys=True, default=str)
        if chunks[-1] and size + len(encoded) > _LISTING_PART_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(encoded)
        size += len(encoded) + 1
    prefix = _component_prefix(version, registration_id) + _LISTING
    return [
        {
            "PK": partition(ref),
            "SK": f"{prefix}{n:05}",
            "entity": "component_listing",
            "registration_id": registration_id,
            "version": version,
            "part": n,
            "parts": len(chunks),
            "components": "[" + ",".join(chunk) + "]",
        }
        for n, chunk in enumerate(chunks)
    ]


def is_system_pack(record: dict[str, Any] | None) -> bool:
    """Whether a pointer or version record is of a system pack (pack.yaml's ``system: true``)."""
    return record is not None and record.get("system") is True


def manifest_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The pack.yaml fields a pointer or version record keeps (``manifest``); empty for records
    registered before they were kept."""
    kept = record.get(MANIFEST_FIELD)
    return dict(kept) if isinstance(kept, dict) else {}


def pointer_item(ref: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The pointer ``CURRENT`` of a pack, listed in the packs index."""
    return {**fields, "PK": partition(ref), "SK": _CURRENT, "entity": "pack", "GSI1PK": PACKS_INDEX, "GSI1SK": ref}


def version_item(ref: str, record: dict[str, Any], registration_id: str, now: datetime) -> dict[str, Any]:
    """The record of one registered version."""
    return {
        **record,
        "PK": partition(ref),
        "SK": _version_sk(str(record["version"])),
        "entity": "pack_version",
        "registration_id": registration_id,
        "activated_at": now.isoformat(),
    }


def garbage_marker(ref: str, entry: dict[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    """Queue a registration (``entry``: version, registration_id) whose items are to delete."""
    rid = entry.get("registration_id")
    return {
        "PK": partition(ref),
        "SK": f"{_GARBAGE_PREFIX}{rid or 'legacy-' + str(entry['version'])}",
        "entity": "garbage",
        "version": entry["version"],
        "registration_id": rid,
        "reason": reason,
        "queued_at": now.isoformat(),
    }


def marker_key(marker: dict[str, Any]) -> Key | None:
    """The key of a stored marker (staged or garbage), None for an entry that is not an item."""
    return item_key(marker) if "PK" in marker and "SK" in marker else None


def removal_record(ref: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The record of a pack's last removal (who, when, which version, the last revision)."""
    return {**fields, "PK": partition(ref), "SK": _REMOVED, "entity": "pack_removal", "ref": ref}


def dependent_item(dependency: str, ref: str, version: str, constraint: str, now: datetime) -> dict[str, Any]:
    """Recorded under ``dependency``: the pack ``ref`` depends on it with ``constraint``."""
    return {
        "PK": partition(dependency),
        "SK": f"{_DEPENDENT_PREFIX}{ref}",
        "entity": "dependent",
        "dependent": ref,
        "version": version,
        "constraint": constraint,
        "recorded_at": now.isoformat(),
    }


# -- operations of a transaction -------------------------------------------------------------------


def put_pointer(pointer: dict[str, Any], *, if_revision: int | None) -> Put:
    """Write the pointer if its revision is still ``if_revision`` (None: if there is no pointer)."""
    guard = Condition(exists=True, equals={"revision": if_revision}) if if_revision is not None else None
    return Put(pointer, guard or Condition(exists=False))


def require_revision(ref: str, revision: Any) -> Check:
    """The pack's pointer must still be at ``revision``."""
    return Check(partition(ref), _CURRENT, Condition(exists=True, equals={"revision": revision}))


def delete_staged_marker(ref: str, registration_id: str) -> Delete:
    return Delete(partition(ref), f"{_STAGED_PREFIX}{registration_id}")


def delete_removal_record(ref: str) -> Delete:
    return Delete(partition(ref), _REMOVED)


def put_dependent(dependency: str, ref: str, version: str, constraint: str, now: datetime) -> Put:
    return Put(dependent_item(dependency, ref, version, constraint, now))


def withdraw_dependent(dependency: str, ref: str) -> Delete:
    """``ref`` no longer depends on ``dependency``."""
    return Delete(partition(dependency), f"{_DEPENDENT_PREFIX}{ref}")


def mark_version_cleaned_up(ref: str, version: str, now: datetime, *, removed: bool = False) -> Update:
    """Note on a version record that its items are gone. Unconditional (a missing record must not
    turn into a conflict); ref and version make even a record recreated this way readable."""
    fields: dict[str, Any] = {"ref": ref, "version": version, "cleaned_up_at": now.isoformat()}
    if removed:
        fields["removed_at"] = now.isoformat()
    return Update(partition(ref), _version_sk(version), set=fields)


def fence_pointer(ref: str, revision: Any, fenced: int, removing: dict[str, Any]) -> Update:
    """Bump the pointer's revision (from ``revision`` to ``fenced``) so no flip read before can land."""
    return Update(
        partition(ref),
        _CURRENT,
        set={"revision": fenced, "removing": removing},
        condition=Condition(exists=True, equals={"revision": revision}),
    )


def unfence_pointer(ref: str, fenced: int) -> Update:
    """Lift a fence (the removal did not happen), moving the revision on once more."""
    return Update(
        partition(ref),
        _CURRENT,
        set={"revision": fenced + 1},
        remove=("removing",),
        condition=Condition(exists=True, equals={"revision": fenced}),
    )


def delete_pointer(ref: str, revision: int) -> Delete:
    """Uninstall: delete the pointer if it is still at ``revision``."""
    return Delete(partition(ref), _CURRENT, Condition(exists=True, equals={"revision": revision}))
