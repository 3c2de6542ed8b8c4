"""The registry's read side: installed packs, their components, versions and installations.

The table's layout, and every key and query used here, belong to :mod:`attune_packs.data.packs`
(and :mod:`attune_packs.data.installations`); this module speaks in their terms: the pointer of a
pack, the components of its current registration, its version records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import installations as stored_installations
from attune_packs.data import packs as stored
from attune_packs.data.operations import PackTable
from attune_packs.data.packs import PackHead, public, read_head
from attune_packs.domain.semver import Version
from attune_packs.errors import InvalidRequestError, NotFoundError
from attune_packs.models import COMPONENT_TYPES
from attune_packs.s3_uri import parse_s3_uri

__all__ = ["PackHead", "check_pack_ref", "read_head"]

_PACK_REF = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,63}$")


def check_pack_ref(ref: str) -> str:
    if not isinstance(ref, str) or not _PACK_REF.fullmatch(ref):
        raise InvalidRequestError(
            f"{ref!r} is not a pack ref (lower-case letters, digits, '_' and '-')", error_code="PACK_REF_INVALID"
        )
    return ref


# -- reading -------------------------------------------------------------------------------------------


def list_packs(table: PackTable) -> list[dict[str, Any]]:
    """Every installed pack's current record, ordered by ref."""
    return sorted((public(item) for item in stored.list_pointers(table)), key=lambda p: str(p["ref"]))


def list_packs_page(table: PackTable, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """One page of installed packs ordered by ref; pass ``next_cursor`` back for the next page."""
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit must be between 1 and 1000")
    after = check_pack_ref(cursor) if cursor else None
    page = stored.pointers_page(table, after=after, limit=limit)
    packs = [public(item) for item in page.items]
    more = page.next_start is not None and bool(packs)
    return {"packs": packs, "next_cursor": str(packs[-1]["ref"]) if more else None}


def show_pack(table: PackTable, ref: str, *, store: ObjectStore | None = None) -> dict[str, Any]:
    """The installed pack: its current record (with ``manifest``, every pack.yaml field kept, and
    ``system`` / ``enabled``), components by type, version history, dependents. With ``store``,
    component schemas and pack.yaml's large fields kept in S3 are read back in place (one read a
    component: the API's page of a pack uses :func:`with_manifest_read_back` alone)."""
    check_pack_ref(ref)
    head = read_head(table, ref)
    if head.current is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    components: dict[str, list[dict[str, Any]]] = {kind: [] for kind in COMPONENT_TYPES}
    for item in stored.read_components(table, ref, head.current):  # as callers see them already
        shown = _resolve_schema(item, store) if store is not None else item
        components.setdefault(str(item["type"]), []).append(shown)
    current = public(head.current)
    if store is not None:
        current = with_manifest_read_back(current, lambda: store)
    return {
        **current,
        "components": components,
        "history": _history(table, ref, head),
        "dependents": sorted(head.dependents),
    }


def _history(table: PackTable, ref: str, head: PackHead) -> list[dict[str, Any]]:
    retained = {(e["version"], e.get("registration_id")) for e in head.retained}
    current = head.current or {}
    entries = []
    for item in stored.read_versions(table, ref):
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
        "last_removal": public(head.removed) if head.removed else None,
    }


def with_manifest_read_back(record: dict[str, Any], store: Callable[[], ObjectStore]) -> dict[str, Any]:
    """``record`` (a pack's, as :func:`show_pack` answers it) with pack.yaml's large fields, kept in
    S3 at registration, read back into ``manifest`` in place of their reference (one read; ``store``
    is only made then)."""
    document = record.get(stored.MANIFEST_DOCUMENT_FIELD)
    if not isinstance(document, dict):
        return record
    body = store().get_json(parse_s3_uri(str(document["ref"])))
    manifest = stored.manifest_fields(record)
    manifest.update({k: body.get(k) for k in document.get("fields") or []})
    resolved = {k: v for k, v in record.items() if k != stored.MANIFEST_DOCUMENT_FIELD}
    resolved[stored.MANIFEST_FIELD] = manifest
    return resolved


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
    current = stored.read_pointer(table, pack)
    if current is None:
        raise NotFoundError(f"pack {pack!r} is not installed")
    counts = current.get("component_counts") or {}
    kinds = [component_type] if component_type else [k for k in COMPONENT_TYPES if counts.get(k)]
    version = str(current["version"])
    found = stored.read_component_by_name(table, pack, current, kinds, name)
    if not found:
        what = f"{component_type[:-1]} " if component_type else ""
        raise NotFoundError(f"pack {pack} {version} has no {what}{name!r}")
    if len(found) > 1:
        raise InvalidRequestError(
            f"{ref} names components of several types ({', '.join(sorted(str(i['type']) for i in found))}); "
            "give the type",
            error_code="COMPONENT_AMBIGUOUS",
        )
    component = public(found[0])
    return _resolve_schema(component, store) if store is not None else component


def component_versions(table: PackTable, ref: str, component_type: str) -> list[dict[str, Any]]:
    """Every registration of a component still stored, through the index, newest version first,
    marking the current one (what a pack's upgrade history did to one action, say)."""
    if component_type not in COMPONENT_TYPES:
        raise InvalidRequestError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    pack = ref.partition(".")[0]
    items = stored.component_registrations(table, component_type, ref)
    current = stored.read_pointer(table, check_pack_ref(pack)) if items else None
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


def _current_components(
    table: PackTable,
    pack: str,
    pointer: dict[str, Any] | None,
    indexed: list[dict[str, Any]] | None,
    component_type: str,
) -> list[dict[str, Any]]:
    """The current components of one type of a pack, from the index items seen (``indexed``) when
    they are all there, else from the table (a pack continuing on the next index page, or one
    whose new items the eventually consistent index does not show yet)."""
    if pointer is None:
        return []  # removed (or never completed): none of its items are current
    rid, version = pointer.get("registration_id"), str(pointer["version"])
    expected = int((pointer.get("component_counts") or {}).get(component_type, 0))
    if indexed is not None:
        mine = [i for i in indexed if i.get("registration_id") == rid and str(i["pack_version"]) == version]
        if len(mine) == expected:
            return [public(item) for item in mine]
    return stored.read_components(table, pack, pointer, component_type)  # as callers see them already


def list_components(
    table: PackTable, component_type: str, *, limit: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    """The current components of one type across installed packs, by pack and then by ref, at most
    ``limit`` a page; pass ``next_cursor`` back for the next page. A cursor is the last component
    ref returned (``pack.name``: the next page resumes inside that pack) or a pack ref (it resumes
    after that pack). A pack the index page cuts is read from the table (one query of its current
    registration), not through more index pages."""
    if component_type not in COMPONENT_TYPES:
        raise InvalidRequestError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit must be between 1 and 1000")
    after, after_ref = _component_cursor(cursor)
    found: list[dict[str, Any]] = []
    if after_ref is not None and after is not None:  # resume inside the pack the last page cut
        pointer = stored.read_pointers(table, [after]).get(after)
        rest = _current_components(table, after, pointer, None, component_type)
        found = [c for c in _by_ref(rest) if str(c["ref"]) > after_ref]
    more, packs_left = True, False
    while more and len(found) < limit:
        page = stored.component_index_page(table, component_type, after_pack=after, limit=max(limit, 100), start=None)
        groups: dict[str, list[dict[str, Any]]] = {}
        for item in page.items:
            groups.setdefault(str(item["pack_ref"]), []).append(item)
        more = page.next_start is not None and bool(groups)
        pointers = stored.read_pointers(table, groups)
        packs = list(groups)
        cut = packs[-1] if more else None
        for number, pack in enumerate(packs, start=1):
            indexed = None if pack == cut else groups[pack]
            found.extend(_by_ref(_current_components(table, pack, pointers.get(pack), indexed, component_type)))
            after = pack
            if len(found) >= limit:
                packs_left = number < len(packs)
                break
    if len(found) > limit:  # the page ends inside a pack: the next one resumes after its last component
        return {"type": component_type, "components": found[:limit], "next_cursor": str(found[limit - 1]["ref"])}
    if more and not packs_left:  # a cut pack was read whole from the table: is there any pack after it?
        more = bool(stored.component_index_page(table, component_type, after_pack=after, limit=1, start=None).items)
    return {"type": component_type, "components": found, "next_cursor": after if more or packs_left else None}


def _component_cursor(cursor: str | None) -> tuple[str | None, str | None]:
    """(the pack to resume in or after, the component ref to resume after, if inside the pack)."""
    if not cursor:
        return None, None
    pack, dot, _ = cursor.partition(".")
    check_pack_ref(pack)
    return pack, (cursor if dot else None)


def _by_ref(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(components, key=lambda c: str(c["ref"]))


def installation_record(table: PackTable, installation_id: str) -> dict[str, Any]:
    """What one registration batch did to each pack."""
    summary, packs = stored_installations.read_installation(table, installation_id)
    if summary is None and not packs:
        raise NotFoundError(f"no registration was recorded for installation {installation_id!r}")
    return {"installation_id": installation_id, "summary": summary, "packs": packs}


def public_json_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB would roughly count it (names + values), from its JSON form."""
    return len(json.dumps(item, default=str, separators=(",", ":")).encode())
