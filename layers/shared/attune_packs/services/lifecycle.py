"""Changing what is installed besides registering: remove a pack, roll it back to a version.

Both follow the registration's rule: readers follow the pointer ``CURRENT``, and the pointer only
changes in one conditional transaction, so a reader sees the pack as it was or as it is after,
never in between. Version records stay for audit; component items that nothing points at any
more are deleted after the pointer moved.

Called by the CLI (``attune-packs remove`` / ``rollback``) and by the HTTP API
(``DELETE /api/v1/packs/{ref}``, ``POST /api/v1/packs/{ref}/rollback``).
"""

from __future__ import annotations

from typing import Any

from attune_packs.adapters.dynamodb import (
    Condition,
    Delete,
    Operation,
    PackTable,
    Put,
    TransactionConditionFailed,
    Update,
)
from attune_packs.adapters.s3 import ObjectStore, parse_s3_uri
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
)
from attune_packs.models import RemovedPack, RolledBackPack
from attune_packs.services.catalog import (
    CURRENT,
    DEPENDENT_PREFIX,
    REMOVED,
    VERSION_PREFIX,
    PackHead,
    check_pack_ref,
    pack_key,
    read_head,
    version_sk,
)
from attune_packs.services.stages.register import (
    Clock,
    RegistryPolicy,
    check_dependencies,
    check_dependents,
    collect_garbage,
    component_counts,
    flip_pointer,
    garbage_marker,
    is_stale,
    new_registration_id,
    stage_registration,
    utc_now,
)
from attune_packs.services.stored_packs import load_pack

_RECORD_KEYS = {"PK", "SK", "entity", "registration_id", "activated_at", "cleaned_up_at", "GSI1PK", "GSI1SK"}


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


def remove_pack(
    table: PackTable,
    ref: str,
    *,
    force: bool = False,
    requested_by: str | None = None,
    clock: Clock = utc_now,
) -> RemovedPack:
    """Remove an installed pack: refused while installed packs depend on it, unless ``force``.

    1. fence: bump the pointer's revision (conditional), so that from now on no registration of
       the pack, nor of a pack depending on it, can flip (each is conditional on the revision it read);
    2. read the dependents again, consistently: any registered before the fence are seen;
    3. one transaction deletes the pointer, records the removal, withdraws the pack from its
       dependencies' dependents and queues its registrations' items for deletion;
    4. the component items are deleted. The version records stay (``pack_history``)."""
    head = _installed(table, ref)
    current = head.current
    assert current is not None
    dependents = sorted(head.dependents)
    if dependents and not force:
        raise _dependents_error(ref, dependents)
    now = clock()
    pk = pack_key(ref)
    fenced = int(current["revision"]) + 1
    try:
        table.transact(
            [
                Update(
                    pk,
                    CURRENT,
                    set={"revision": fenced, "removing": {"since": now.isoformat(), "by": requested_by}},
                    condition=Condition(exists=True, equals={"revision": current["revision"]}),
                )
            ]
        )
    except TransactionConditionFailed as exc:
        raise RegistrationConflictError(
            f"{ref} changed while it was being removed; nothing was removed. Try again.", error_code="CONFLICT"
        ) from exc
    head = read_head(table, ref)
    current = head.current
    if current is None or int(current["revision"]) != fenced:
        raise RegistrationConflictError(
            f"{ref} changed while it was being removed; nothing was removed. Try again.", error_code="CONFLICT"
        )
    dependents = sorted(head.dependents)
    if dependents and not force:
        _unfence(table, ref, fenced)
        raise _dependents_error(ref, dependents)
    version = str(current["version"])
    operations: list[Operation] = [
        Delete(pk, CURRENT, Condition(exists=True, equals={"revision": fenced})),
        Put(
            {
                "PK": pk,
                "SK": REMOVED,
                "entity": "pack_removal",
                "ref": ref,
                "version": version,
                "revision": fenced,
                "removed_at": now.isoformat(),
                "removed_by": requested_by,
                "forced": bool(dependents),
                "dependents": dependents,
                "archive": current.get("archive"),
                "checksum": current.get("checksum"),
            }
        ),
    ]
    for dep_ref in sorted(current.get("dependencies") or {}):
        if dep_ref != ref:
            operations.append(Delete(pack_key(dep_ref), f"{DEPENDENT_PREFIX}{ref}"))
    markers = [garbage_marker(ref, entry, "pack removed", now) for entry in head.retained]
    operations.extend(Put(marker) for marker in markers)
    for entry in head.retained:
        operations.append(
            Update(
                pk,
                version_sk(str(entry["version"])),
                set={
                    "ref": ref,
                    "version": entry["version"],
                    "cleaned_up_at": now.isoformat(),
                    "removed_at": now.isoformat(),
                },
            )
        )
    try:
        table.transact(operations)
    except TransactionConditionFailed as exc:
        raise RegistrationConflictError(
            f"{ref} changed while it was being removed; nothing was removed. Try again.", error_code="CONFLICT"
        ) from exc
    # A registration still in flight fails its flip now (the pointer is gone) and discards its
    # own items; only dead ones are collected here.
    garbage = markers + head.garbage + [s for s in head.staged if is_stale(s, now, RegistryPolicy())]
    try:
        deleted = collect_garbage(table, ref, garbage)
    except AttuneError:
        deleted = 0  # the markers stay; the next registration of the pack deletes the items
    return RemovedPack(
        pack_ref=ref,
        removed_version=version,
        status="removed",
        forced=bool(dependents),
        dependents=dependents,
        components_removed=deleted,
        removed_at=now.isoformat(),
    )


def _unfence(table: PackTable, ref: str, fenced: int) -> None:
    try:
        table.transact(
            [
                Update(
                    pack_key(ref),
                    CURRENT,
                    set={"revision": fenced + 1},
                    remove=("removing",),
                    condition=Condition(exists=True, equals={"revision": fenced}),
                )
            ]
        )
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
        record = table.get_item(pack_key(head.ref), version_sk(version))
        if record is None:
            raise NotFoundError(
                f"{head.ref} {version} was never registered; install it instead", error_code="VERSION_NOT_FOUND"
            )
        return record
    # The previous version: the most recently current one other than the current version.
    candidates = [
        item
        for item in table.query_prefix(pack_key(head.ref), VERSION_PREFIX)
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
    missing = _missing_artifacts(store, record)
    if missing:
        raise SourceGoneError(
            f"{ref} {target} cannot be restored: {', '.join(missing)} no longer exist(s); install it again instead",
            error_code="ROLLBACK_UNAVAILABLE",
            details={"missing": missing},
        )
    dependencies = record.get("dependencies") or {}
    if force:
        installed = table.batch_get([(pack_key(dep), CURRENT) for dep in dependencies]) if dependencies else {}
        pointers = {
            dep: installed[(pack_key(dep), CURRENT)] for dep in dependencies if (pack_key(dep), CURRENT) in installed
        }
    else:
        pointers = check_dependencies(table, ref, dependencies)
        check_dependents(head, Version.parse(target), force=False)
    now = clock()
    kept = {(e["version"], e.get("registration_id")) for e in head.retained}
    registration_id = record.get("registration_id")
    rebuilt = (target, registration_id) not in kept or not registration_id
    counts = dict(record.get("component_counts") or {})
    staged = None
    if rebuilt:
        strict = bool((record.get("validation_results") or {}).get("strict", True))
        pack = load_pack(str(record["archive"]), store, table, strict=strict)
        if pack.contents.manifest.version != target or pack.contents.ref != ref:
            raise SourceGoneError(
                f"{record['archive']} no longer holds {ref} {target}", error_code="ROLLBACK_UNAVAILABLE"
            )
        components = with_declared_triggers(ref, pack.contents.components)
        counts = component_counts(components)
        registration_id = new_registration_id()
        staged = stage_registration(
            table, store, ref, target, registration_id, components, policy, now, installation_id=installation_id
        )
    body = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
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
