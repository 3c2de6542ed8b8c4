"""The registry's layout in the single table, and its read side.

Layout (partition ``PACK#<ref>``):

=============================== ==========================================================================
``CURRENT``                     the pointer: the current version's record plus ``revision``, the
                                ``registration_id`` whose components are current, and ``retained`` (the
                                registrations whose items are kept, most recently current first).
                                ``GSI1PK=PACKS, GSI1SK=<ref>`` lists the installed packs.
``CURRENT#DEPENDENT#<other>``   written by ``<other>``'s registration: it depends on this pack (constraint)
``CURRENT#STAGED#<rid>``        a registration in flight (its items are written, its flip is not done)
``CURRENT#GARBAGE#<rid>``       a registration no longer referenced, whose component items are to delete
``CURRENT#REMOVED``             the last removal (who, when, which version, the last revision)
``VERSION#<v>``                 one record per registered version: metadata, archive and checksum,
                                environments, test result, validation, who / when / which installation
``COMPONENT#<v>#<rid>#<t>#<n>`` one item per component of one registration of version ``v``;
                                ``GSI1PK=COMPONENT#<t>``, ``GSI1SK=<pack>.<name>#<v>#<rid>``
=============================== ==========================================================================

and ``INSTALL#<installation id>`` holds one item per pack of a registration batch plus ``SUMMARY``.

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
import re
from dataclasses import dataclass, field
from typing import Any

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.adapters.s3 import ObjectStore, parse_s3_uri
from attune_packs.domain.semver import Version
from attune_packs.errors import InvalidRequestError, NotFoundError
from attune_packs.models import COMPONENT_TYPES

PACKS_INDEX = "PACKS"
CURRENT = "CURRENT"
DEPENDENT_PREFIX = "CURRENT#DEPENDENT#"
STAGED_PREFIX = "CURRENT#STAGED#"
GARBAGE_PREFIX = "CURRENT#GARBAGE#"
REMOVED = "CURRENT#REMOVED"
VERSION_PREFIX = "VERSION#"
COMPONENT_PREFIX = "COMPONENT#"

_HIDDEN = {"PK", "SK", "GSI1PK", "GSI1SK", "entity", "retained", "removing"}
_PACK_REF = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,63}$")
_AFTER_PACK = ".~"  # sorts after every "<pack>.<component name>" ('~' is above the name characters)


# -- keys --------------------------------------------------------------------------------------------


def pack_key(ref: str) -> str:
    return f"PACK#{ref}"


def version_sk(version: str) -> str:
    return f"{VERSION_PREFIX}{version}"


def component_prefix(version: str, registration_id: str | None) -> str:
    """Sort-key prefix of one registration's components (items of packs registered before
    registrations had ids sit directly under the version)."""
    return f"{COMPONENT_PREFIX}{version}#{registration_id}#" if registration_id else f"{COMPONENT_PREFIX}{version}#"


def component_sk(version: str, registration_id: str, component_type: str, name: str) -> str:
    return f"{component_prefix(version, registration_id)}{component_type}#{name}"


def component_index_pk(component_type: str) -> str:
    return f"{COMPONENT_PREFIX}{component_type}"


def component_index_sk(ref: str, version: str, registration_id: str) -> str:
    return f"{ref}#{version}#{registration_id}"


def installation_key(installation_id: str) -> str:
    return f"INSTALL#{installation_id}"


def check_pack_ref(ref: str) -> str:
    if not isinstance(ref, str) or not _PACK_REF.fullmatch(ref):
        raise InvalidRequestError(
            f"{ref!r} is not a pack ref (lower-case letters, digits, '_' and '-')", error_code="PACK_REF_INVALID"
        )
    return ref


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
    head = PackHead(ref)
    for item in table.query_prefix(pack_key(ref), CURRENT):
        sk = str(item["SK"])
        if sk == CURRENT:
            head.current = item
        elif sk.startswith(DEPENDENT_PREFIX):
            head.dependents[sk.removeprefix(DEPENDENT_PREFIX)] = item
        elif sk.startswith(STAGED_PREFIX):
            head.staged.append(item)
        elif sk.startswith(GARBAGE_PREFIX):
            head.garbage.append(item)
        elif sk == REMOVED:
            head.removed = item
    return head


# -- reading -------------------------------------------------------------------------------------------


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _HIDDEN}


def list_packs(table: PackTable) -> list[dict[str, Any]]:
    """Every installed pack's current record, ordered by ref."""
    return sorted((_public(item) for item in table.query_index(PACKS_INDEX)), key=lambda p: str(p["ref"]))


def list_packs_page(table: PackTable, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """One page of installed packs ordered by ref; pass ``next_cursor`` back for the next page."""
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit must be between 1 and 1000")
    after = check_pack_ref(cursor) if cursor else None
    page = table.query_index_page(PACKS_INDEX, after=after, limit=limit)
    packs = [_public(item) for item in page.items]
    more = page.next_start is not None and bool(packs)
    return {"packs": packs, "next_cursor": str(packs[-1]["ref"]) if more else None}


def _components_of(table: PackTable, ref: str, current: dict[str, Any], component_type: str = "") -> list[dict]:
    prefix = component_prefix(str(current["version"]), current.get("registration_id"))
    items = table.query_prefix(pack_key(ref), prefix + (f"{component_type}#" if component_type else ""))
    # Legacy pointers (no registration id) share their prefix with later registrations of the
    # same version: keep only the items without an id.
    return [i for i in items if i.get("registration_id") == current.get("registration_id")]


def show_pack(table: PackTable, ref: str, *, store: ObjectStore | None = None) -> dict[str, Any]:
    """The installed pack: its current record, components by type, version history, dependents.
    With ``store``, component schemas kept in S3 are read back into ``parameters`` etc."""
    check_pack_ref(ref)
    head = read_head(table, ref)
    if head.current is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    components: dict[str, list[dict[str, Any]]] = {kind: [] for kind in COMPONENT_TYPES}
    for item in _components_of(table, ref, head.current):
        public = _resolve_schema(_public(item), store) if store is not None else _public(item)
        components.setdefault(str(item["type"]), []).append(public)
    return {
        **_public(head.current),
        "components": components,
        "history": _history(table, ref, head),
        "dependents": sorted(head.dependents),
    }


def _history(table: PackTable, ref: str, head: PackHead) -> list[dict[str, Any]]:
    retained = {(e["version"], e.get("registration_id")) for e in head.retained}
    current = head.current or {}
    entries = []
    for item in table.query_prefix(pack_key(ref), VERSION_PREFIX):
        key = (str(item["version"]), item.get("registration_id"))
        if current and key == (str(current["version"]), current.get("registration_id")):
            state = "current"
        elif key in retained:
            state = "available"  # its items are kept: a rollback is a pointer flip
        else:
            state = "cleaned_up"  # a rollback registers it again from its archive
        entries.append(
            {
                "version": item["version"],
                "state": state,
                "registered_at": item.get("registered_at"),
                "activated_at": item.get("activated_at"),
                "checksum": item.get("checksum"),
                "archive": item.get("archive"),
                "installation_id": item.get("installation_id"),
                "registered_by": item.get("registered_by"),
                "tests": (item.get("validation_results") or {}).get("tests", {}).get("decision"),
                "component_counts": item.get("component_counts"),
            }
        )
    return sorted(entries, key=lambda e: (str(e.get("registered_at") or ""), str(e["version"])))


def pack_history(table: PackTable, ref: str) -> dict[str, Any]:
    """Every registered version of a pack, installed or removed (the audit trail)."""
    check_pack_ref(ref)
    head = read_head(table, ref)
    versions = _history(table, ref, head)
    if not versions and head.removed is None:
        raise NotFoundError(f"pack {ref!r} was never registered")
    return {
        "ref": ref,
        "installed": head.current is not None,
        "current_version": head.current["version"] if head.current else None,
        "revision": head.revision,
        "versions": versions,
        "dependents": sorted(head.dependents),
        "last_removal": _public(head.removed) if head.removed else None,
    }


def _resolve_schema(component: dict[str, Any], store: ObjectStore) -> dict[str, Any]:
    reference = component.get("schema_ref")
    if not reference:
        return component
    document = store.get_json(parse_s3_uri(str(reference)))
    return {**component, **{k: v for k, v in document.items() if k in {"parameters", "output_schema", "attributes"}}}


def get_component(
    table: PackTable, ref: str, *, component_type: str | None = None, store: ObjectStore | None = None
) -> dict[str, Any]:
    """One component of an installed pack by its full ref ``pack.name`` (strongly consistent:
    the pointer, then one batched read of the candidate items)."""
    pack, dot, name = ref.partition(".")
    if not dot or not name:
        raise InvalidRequestError(f"{ref!r} is not a component ref 'pack.name'", error_code="COMPONENT_REF_INVALID")
    check_pack_ref(pack)
    if component_type is not None and component_type not in COMPONENT_TYPES:
        raise InvalidRequestError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    current = table.get_item(pack_key(pack), CURRENT)
    if current is None:
        raise NotFoundError(f"pack {pack!r} is not installed")
    counts = current.get("component_counts") or {}
    kinds = [component_type] if component_type else [k for k in COMPONENT_TYPES if counts.get(k)]
    version, rid = str(current["version"]), current.get("registration_id")
    keys = [(pack_key(pack), f"{component_prefix(version, rid)}{kind}#{name}") for kind in kinds]
    found = [item for key, item in table.batch_get(keys).items() if item.get("registration_id") == rid]
    if not found:
        what = f"{component_type[:-1]} " if component_type else ""
        raise NotFoundError(f"pack {pack} {version} has no {what}{name!r}")
    if len(found) > 1:
        raise InvalidRequestError(
            f"{ref} names components of several types ({', '.join(sorted(str(i['type']) for i in found))}); "
            "give the type",
            error_code="COMPONENT_AMBIGUOUS",
        )
    component = _public(found[0])
    return _resolve_schema(component, store) if store is not None else component


def component_versions(table: PackTable, ref: str, component_type: str) -> list[dict[str, Any]]:
    """Every registration of a component still stored, through the index, newest version first,
    marking the current one (what a pack's upgrade history did to one action, say)."""
    if component_type not in COMPONENT_TYPES:
        raise InvalidRequestError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    pack = ref.partition(".")[0]
    items = table.query_index(component_index_pk(component_type), f"{ref}#")
    current = table.get_item(pack_key(check_pack_ref(pack)), CURRENT) if items else None
    rows = [
        {
            "ref": item["ref"],
            "version": item["pack_version"],
            "registration_id": item.get("registration_id"),
            "current": current is not None
            and item.get("registration_id") == current.get("registration_id")
            and item["pack_version"] == current["version"],
        }
        for item in items
    ]
    return sorted(rows, key=lambda r: Version.parse(str(r["version"])), reverse=True)


def list_components(
    table: PackTable, component_type: str, *, limit: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    """The current components of one type across installed packs, ordered by ref, a page of whole
    packs at a time (at least ``limit`` components unless the end is reached); pass
    ``next_cursor`` back for the next page."""
    if component_type not in COMPONENT_TYPES:
        raise InvalidRequestError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit must be between 1 and 1000")
    after = check_pack_ref(cursor) + _AFTER_PACK if cursor else None
    groups: dict[str, list[dict[str, Any]]] = {}
    start: dict[str, str] | None = None
    while True:
        page = table.query_index_page(
            component_index_pk(component_type), after=after, limit=max(limit, 100), start=start
        )
        for item in page.items:
            groups.setdefault(str(item["pack_ref"]), []).append(item)
        start = page.next_start
        # The last pack seen may continue on the next page: only packs seen whole are answered.
        complete = list(groups) if start is None else list(groups)[:-1]
        if start is None or sum(len(groups[p]) for p in complete) >= limit:
            break
    pointers = table.batch_get([(pack_key(p), CURRENT) for p in complete])
    components: list[dict[str, Any]] = []
    for pack in complete:
        current = pointers.get((pack_key(pack), CURRENT))
        if current is None:
            continue  # removed (or never completed): none of its items are current
        rid, version = current.get("registration_id"), str(current["version"])
        mine = [i for i in groups[pack] if i.get("registration_id") == rid and str(i["pack_version"]) == version]
        expected = int((current.get("component_counts") or {}).get(component_type, 0))
        if len(mine) != expected:
            # The index has not caught up with this pack's last flip: read its components from the table.
            mine = _components_of(table, pack, current, component_type)
        components.extend(_public(i) for i in mine)
    more = start is not None or len(groups) > len(complete)
    return {
        "type": component_type,
        "components": sorted(components, key=lambda c: str(c["ref"])),
        "next_cursor": complete[-1] if more and complete else None,
    }


def installation_record(table: PackTable, installation_id: str) -> dict[str, Any]:
    """What one registration batch did to each pack (``INSTALL#<id>``)."""
    items = table.query_prefix(installation_key(installation_id), "")
    if not items:
        raise NotFoundError(f"no registration was recorded for installation {installation_id!r}")
    summary = next((i for i in items if i["SK"] == "SUMMARY"), None)
    return {
        "installation_id": installation_id,
        "summary": _public(summary) if summary else None,
        "packs": [_public(i) for i in items if i["SK"] != "SUMMARY"],
    }


def public_json_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB would roughly count it (names + values), from its JSON form."""
    return len(json.dumps(item, default=str, separators=(",", ":")).encode())
