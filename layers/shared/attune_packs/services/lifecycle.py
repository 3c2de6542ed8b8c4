"""Changing what is installed besides registering: remove a pack, roll it back to a version.

Both follow the registration's rule: readers follow the pointer ``CURRENT``, and the pointer only
changes in one conditional transaction, so a reader sees the pack as it was or as it is after,
never in between. Version records stay for audit; component items that nothing points at any
more are deleted after the pointer moved.

Called by the CLI (``attune-packs remove`` / ``rollback``) and by the HTTP API
(``DELETE /api/v1/packs/{ref}``, ``POST /api/v1/packs/{ref}/rollback``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import packs as stored
from attune_packs.data.operations import Operation, PackTable, Put, TransactionConditionFailed
from attune_packs.data.packs import PackHead, read_head
from attune_packs.domain.components import with_declared_triggers
from attune_packs.domain.semver import Version
from attune_packs.errors import (
    AttuneError,
    DependencyError,
    InvalidRequestError,
    ManifestError,
    NotFoundError,
    RegistrationConflictError,
    SourceGoneError,
    SystemPackProtectedError,
)
from attune_packs.models import RemovedPack, RolledBackPack
from attune_packs.s3_uri import parse_s3_uri
from attune_packs.services.catalog import check_pack_ref
from attune_packs.services.stages.register import (
    Clock,
    RegistryPolicy,
    check_dependencies,
    check_dependents,
    collect_garbage,
    component_counts,
    flip_pointer,
    is_stale,
    new_registration_id,
    registration_items,
    utc_now,
)
from attune_packs.services.stored_packs import load_pack


def _installed(table: PackTable, ref: str) -> PackHead:
    head = read_head(table, check_pack_ref(ref))
    if head.current is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    return head


def _dependents_error(ref: str, dependents: list[str]) -> DependencyError:
    return DependencyError(
        f"{ref} cannot be removed: installed packs depend on it ({', '.join(dependents)}); remove them first, "
        "or use force",
        error_code="PACK_HAS_DEPENDENTS",
        details={"dependents": dependents},
    )


def _system_pack_error(ref: str, current: dict[str, Any], what: str) -> SystemPackProtectedError:
    return SystemPackProtectedError(
        f"{ref} {current['version']} is a system pack: {what} it needs force (CLI --force, API force=true)",
        details={"pack_ref": ref, "installed_version": str(current["version"])},
    )


def _conflict(ref: str) -> RegistrationConflictError:
    return RegistrationConflictError(
        f"{ref} changed while it was being removed; nothing was removed. Try again.", error_code="CONFLICT"
    )


def _fence(table: PackTable, ref: str, current: dict[str, Any], now: datetime, by: str | None) -> int:
    """Bump the pointer's revision so no registration read before can flip; the new revision."""
    fenced = int(current["revision"]) + 1
    try:
        table.transact([stored.fence_pointer(ref, current["revision"], fenced, {"since": now.isoformat(), "by": by})])
    except TransactionConditionFailed as exc:
        raise _conflict(ref) from exc
    return fenced


def _removal(
    head: PackHead, fenced: int, dependents: list[str], now: datetime, requested_by: str | None
) -> tuple[list[Operation], list[dict[str, Any]]]:
    """The transaction that uninstalls the fenced pack, and the garbage markers it queues."""
    ref, current = head.ref, head.current
    assert current is not None
    removal = {
        "version": str(current["version"]),
        "revision": fenced,
        "removed_at": now.isoformat(),
        "removed_by": requested_by,
        "forced": bool(dependents),
        "dependents": dependents,
        "archive": current.get("archive"),
        "checksum": current.get("checksum"),
    }
    operations: list[Operation] = [stored.delete_pointer(ref, fenced), Put(stored.removal_record(ref, removal))]
    for dep_ref in sorted(current.get("dependencies") or {}):
        if dep_ref != ref:
            operations.append(stored.withdraw_dependent(dep_ref, ref))
    markers = [stored.garbage_marker(ref, entry, "pack removed", now) for entry in head.retained]
    operations.extend(Put(marker) for marker in markers)
    for entry in head.retained:
        operations.append(stored.mark_version_cleaned_up(ref, str(entry["version"]), now, removed=True))
    return operations, markers


def remove_pack(
    table: PackTable,
    ref: str,
    *,
    force: bool = False,
    requested_by: str | None = None,
    clock: Clock = utc_now,
) -> RemovedPack:
    """Remove an installed pack: refused while installed packs depend on it, or when it is a
    system pack (``system: true``, ``SYSTEM_PACK_PROTECTED``), unless ``force``.

    1. fence: bump the pointer's revision (conditional), so that from now on no registration of
       the pack, nor of a pack depending on it, can flip (each is conditional on the revision it read);
    2. read the dependents again, consistently: any registered before the fence are seen;
    3. one transaction deletes the pointer, records the removal, withdraws the pack from its
       dependencies' dependents and queues its registrations' items for deletion;
    4. the component items are deleted. The version records stay (``pack_history``)."""
    head = _installed(table, ref)
    assert head.current is not None
    if stored.is_system_pack(head.current) and not force:
        raise _system_pack_error(ref, head.current, "removing")
    dependents = sorted(head.dependents)
    if dependents and not force:
        raise _dependents_error(ref, dependents)
    now = clock()
    fenced = _fence(table, ref, head.current, now, requested_by)
    head = read_head(table, ref)
    current = head.current
    if current is None or int(current["revision"]) != fenced:
        raise _conflict(ref)
    if stored.is_system_pack(current) and not force:  # registered as a system pack meanwhile
        _unfence(table, ref, fenced)
        raise _system_pack_error(ref, current, "removing")
    dependents = sorted(head.dependents)
    if dependents and not force:
        _unfence(table, ref, fenced)
        raise _dependents_error(ref, dependents)
    operations, markers = _removal(head, fenced, dependents, now, requested_by)
    try:
        table.transact(operations)
    except TransactionConditionFailed as exc:
        raise _conflict(ref) from exc
    # A registration still in flight fails its flip now (the pointer is gone) and discards its
    # own items; only dead ones are collected here.
    garbage = markers + head.garbage + [s for s in head.staged if is_stale(s, now, RegistryPolicy())]
    try:
        deleted = collect_garbage(table, ref, garbage)
    except AttuneError:
        deleted = 0  # the markers stay; the next registration of the pack deletes the items
    return RemovedPack(
        pack_ref=ref,
        removed_version=str(current["version"]),
        status="removed",
        forced=bool(dependents),
        dependents=dependents,
        components_removed=deleted,
        removed_at=now.isoformat(),
    )


def _unfence(table: PackTable, ref: str, fenced: int) -> None:
    try:
        table.transact([stored.unfence_pointer(ref, fenced)])
    except TransactionConditionFailed:
        pass  # someone else changed it since: their write replaced the fence


def _target_record(table: PackTable, head: PackHead, version: str | None) -> dict[str, Any]:
    current = head.current
    assert current is not None
    if version is not None:
        try:
            Version.parse(version)
        except ManifestError as exc:
            raise InvalidRequestError(exc.message, error_code="PACK_VERSION_INVALID") from exc
        record = stored.read_version(table, head.ref, version)
        if record is None:
            raise NotFoundError(
                f"{head.ref} {version} was never registered; install it instead", error_code="VERSION_NOT_FOUND"
            )
        return record
    # The previous version: the most recently current one other than the current version.
    candidates = [
        item
        for item in stored.read_versions(table, head.ref)
        if str(item["version"]) != str(current["version"]) and not item.get("removed_at")
    ]
    if not candidates:
        raise NotFoundError(f"{head.ref} has no previous version to roll back to", error_code="NO_PREVIOUS_VERSION")
    return max(candidates, key=lambda i: str(i.get("activated_at") or i.get("registered_at") or ""))


def _missing_artifacts(store: ObjectStore, record: dict[str, Any]) -> list[str]:
    wanted = [str(record["archive"])] + [
        str(env["artifact"]) for env in (record.get("environments") or {}).values() if env.get("artifact")
    ]
    missing = []
    for uri in wanted:
        location = parse_s3_uri(uri)
        if location.bucket != store.bucket or store.head(location) is None:
            missing.append(uri)
    return missing


def _register_again(
    table: PackTable,
    store: ObjectStore,
    ref: str,
    record: dict[str, Any],
    policy: RegistryPolicy,
    now: datetime,
    installation_id: str | None,
) -> tuple[str, dict[str, int], list[tuple[str, str]]]:
    """Stage a version whose items were cleaned up again from its archive: the new registration
    id, the component counts and the staged keys."""
    target = str(record["version"])
    strict = bool((record.get("validation_results") or {}).get("strict", True))
    pack = load_pack(str(record["archive"]), store, table, strict=strict)
    if pack.contents.manifest.version != target or pack.contents.ref != ref:
        raise SourceGoneError(f"{record['archive']} no longer holds {ref} {target}", error_code="ROLLBACK_UNAVAILABLE")
    components = with_declared_triggers(ref, pack.contents.components)
    registration_id = new_registration_id()
    registration = registration_items(
        store, ref, target, registration_id, components, policy, now, installation_id=installation_id
    )
    staged = registration.stage(table)
    return registration_id, component_counts(components), staged


def _rollback_checks(
    table: PackTable, store: ObjectStore, head: PackHead, record: dict[str, Any], *, force: bool
) -> dict[str, dict[str, Any]]:
    """The target's artifacts must still be stored, its dependencies installed at versions it
    accepts and its dependents accept it (unless ``force``); its dependencies' pointers."""
    ref, target = head.ref, str(record["version"])
    missing = _missing_artifacts(store, record)
    if missing:
        raise SourceGoneError(
            f"{ref} {target} cannot be restored: {', '.join(missing)} no longer exist(s); install it again instead",
            error_code="ROLLBACK_UNAVAILABLE",
            details={"missing": missing},
        )
    dependencies = record.get("dependencies") or {}
    if force:
        return stored.read_pointers(table, dependencies)
    pointers = check_dependencies(table, ref, dependencies)
    check_dependents(head, Version.parse(target), force=False)
    return pointers


def rollback_pack(
    table: PackTable,
    store: ObjectStore,
    ref: str,
    version: str | None = None,
    *,
    force: bool = False,
    requested_by: str | None = None,
    installation_id: str | None = None,
    policy: RegistryPolicy | None = None,
    clock: Clock = utc_now,
) -> RolledBackPack:
    """Make a previously registered version current again (``version``, or the one current
    before the current one). Its archive and built environments must still be in S3. Its
    dependencies must be installed at versions it accepts, and the packs that depend on it must
    accept it (unless ``force``). When its component items are still kept (within
    ``keep_versions``) this is a pointer flip; otherwise its components are registered again from
    its archive first."""
    policy = policy or RegistryPolicy()
    head = _installed(table, ref)
    current = head.current
    assert current is not None
    record = _target_record(table, head, version)
    target = str(record["version"])
    if target == str(current["version"]):
        return RolledBackPack(
            pack_ref=ref,
            from_version=target,
            to_version=target,
            status="unchanged",
            rebuilt_from_archive=False,
            storage_path=str(current["archive"]),
            components_registered=dict(current.get("component_counts") or {}),
        )
    if stored.is_system_pack(current) and not force:
        raise _system_pack_error(ref, current, f"replacing it by {target}")
    pointers = _rollback_checks(table, store, head, record, force=force)
    now = clock()
    kept = {(e["version"], e.get("registration_id")) for e in head.retained}
    registration_id = record.get("registration_id")
    rebuilt = (target, registration_id) not in kept or not registration_id
    counts = dict(record.get("component_counts") or {})
    staged = None
    if rebuilt:
        registration_id, counts, staged = _register_again(table, store, ref, record, policy, now, installation_id)
    body = stored.version_body(record)
    body.update(
        component_counts=counts,
        installation_id=installation_id or body.get("installation_id"),
        rolled_back_at=now.isoformat(),
        rolled_back_by=requested_by,
    )
    flip_pointer(
        table,
        head,
        record=body,
        registration_id=str(registration_id),
        dependencies={dep: pointer for dep, pointer in pointers.items() if dep != ref},
        policy=policy,
        now=now,
        staged_keys=staged,
        extra={"rolled_back_from": str(current["version"])},
    )
    return RolledBackPack(
        pack_ref=ref,
        from_version=str(current["version"]),
        to_version=target,
        status="rolled_back",
        rebuilt_from_archive=rebuilt,
        storage_path=str(record["archive"]),
        components_registered=counts,
    )
