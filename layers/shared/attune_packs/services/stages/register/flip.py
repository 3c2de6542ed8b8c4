"""Flip: make a registration current in one transaction, conditional on the revision read when
planning (and on each dependency's revision), writing its items in that same transaction when they
fit there (else they were staged first); then prune what fell out of use.

Readers follow the pointer, so they see the old pack or the new pack, never a mixture; of two
concurrent registrations exactly one wins and the other gets ``CONFLICT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from attune_packs.data import packs as stored
from attune_packs.data.operations import (
    TRANSACTION_LIMIT,
    Key,
    Operation,
    PackTable,
    Put,
    TransactionConditionFailed,
)
from attune_packs.data.packs import PackHead
from attune_packs.errors import AttuneError, DependencyError, ManifestError, RegistrationConflictError
from attune_packs.services.catalog import public_json_size
from attune_packs.services.stages.register.policy import RegistryPolicy
from attune_packs.services.stages.register.prune import collect_garbage, discard, is_stale, next_retained
from attune_packs.services.stages.register.write import Registration


@dataclass
class FlipOutcome:
    revision: int
    dropped: list[dict[str, Any]]
    warnings: list[str]
    components_deleted: int


def _pointer(
    head: PackHead,
    record: dict[str, Any],
    registration_id: str,
    retained: list[dict[str, Any]],
    now: datetime,
    policy: RegistryPolicy,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    current = head.current
    pointer = stored.pointer_item(
        head.ref,
        {
            **record,
            "revision": head.next_revision,
            "registration_id": registration_id,
            "retained": retained,
            "previous_version": str(current["version"]) if current else None,
            "activated_at": now.isoformat(),
            **(extra or {}),
        },
    )
    if public_json_size(pointer) > policy.max_item_bytes:
        raise ManifestError(
            f"pack {head.ref}: pack.yaml's metadata is too large to register ({public_json_size(pointer)} bytes)",
            error_code="PACK_METADATA_TOO_LARGE",
        )
    return pointer


def _dependency_operations(
    head: PackHead, record: dict[str, Any], dependencies: dict[str, dict[str, Any]], now: datetime, first: int
) -> tuple[list[Operation], dict[int, str]]:
    """Each dependency still at the revision read, this pack recorded as its dependent; withdrawn
    from the ones it no longer depends on. Returns the operations and which index checks which."""
    ref, version = head.ref, str(record["version"])
    constraints = record.get("dependencies") or {}
    operations: list[Operation] = []
    checks: dict[int, str] = {}
    for dep_ref, dep_current in sorted(dependencies.items()):
        if dep_ref == ref:
            continue
        checks[first + len(operations)] = dep_ref
        operations.append(stored.require_revision(dep_ref, dep_current["revision"]))
        operations.append(stored.put_dependent(dep_ref, ref, version, constraints.get(dep_ref, "*"), now))
    for dep_ref in sorted(set((head.current or {}).get("dependencies") or {}) - set(dependencies)):
        operations.append(stored.withdraw_dependent(dep_ref, ref))
    return operations, checks


def _retention_operations(
    ref: str, version: str, dropped: list[dict[str, Any]], now: datetime
) -> tuple[list[Operation], list[dict[str, Any]]]:
    queued = [stored.garbage_marker(ref, entry, "out of retention", now) for entry in dropped]
    operations: list[Operation] = []
    for entry, marker in zip(dropped, queued, strict=True):
        operations.append(Put(marker))
        if entry["version"] != version:
            operations.append(stored.mark_version_cleaned_up(ref, str(entry["version"]), now))
    return operations, queued


def flip_pointer(
    table: PackTable,
    head: PackHead,
    *,
    record: dict[str, Any],
    registration_id: str,
    dependencies: dict[str, dict[str, Any]],
    policy: RegistryPolicy,
    now: datetime,
    staged_keys: list[Key] | None = None,
    extra: dict[str, Any] | None = None,
    registration: Registration | None = None,
) -> FlipOutcome:
    """Make ``record`` (a version record) current in one transaction conditional on the revision
    in ``head`` and on each dependency's revision; then delete what is no longer referenced.

    The registration's items are either already staged (``staged_keys``) or given unwritten
    (``registration``): then they are written in the flip's own transaction when they fit there
    (``policy.inline_registration_bytes``, the transaction's room), all or nothing with the pointer
    and without a ``STAGED`` marker; otherwise they are staged first.

    On a lost race the registration's own staged items are deleted and ``CONFLICT`` is raised; if
    a dependency changed meanwhile, ``DEPENDENCY_CHANGED``."""
    ref, version = head.ref, str(record["version"])
    retained, dropped = next_retained(head, version, registration_id, policy.keep_versions, now)
    pointer = _pointer(head, record, registration_id, retained, now, policy, extra)
    operations: list[Operation] = [
        stored.put_pointer(pointer, if_revision=head.revision),
        Put(stored.version_item(ref, record, registration_id, now)),
    ]
    if head.removed is not None:
        operations.append(stored.delete_removal_record(ref))
    dependency_operations, dependency_checks = _dependency_operations(head, record, dependencies, now, len(operations))
    operations.extend(dependency_operations)
    retention_operations, queued = _retention_operations(ref, version, dropped, now)
    operations.extend(retention_operations)
    room = TRANSACTION_LIMIT - len(operations)
    inline = registration is not None and registration.fits(room, policy.inline_registration_bytes)
    if not inline:
        operations.append(stored.delete_staged_marker(ref, registration_id))
    if len(operations) > TRANSACTION_LIMIT:
        discard(table, staged_keys)
        raise DependencyError(
            f"pack {ref} has too many dependencies to register atomically ({len(dependencies)})",
            error_code="DEPENDENCY_LIMIT",
        )
    if registration is not None and inline:
        operations.extend(Put(item) for item in registration.items)
    elif registration is not None:
        staged_keys = registration.stage(table)
    try:
        table.transact(operations)
    except TransactionConditionFailed as exc:
        discard(table, staged_keys)
        changed = [dependency_checks[i] for i in exc.failed if i in dependency_checks]
        if changed and 0 not in exc.failed:
            raise DependencyError(
                f"{', '.join(changed)} changed while {ref} was being registered; nothing of this registration "
                "is visible. Register again to check the dependencies anew.",
                error_code="DEPENDENCY_CHANGED",
            ) from exc
        raise _conflict(table, ref, version) from exc
    # Any other failure leaves it unknown whether the flip happened (a crash, a lost answer): the
    # staged items stay; if the flip did not happen, its STAGED marker turns stale and they are
    # collected by a later registration of the pack.
    garbage = queued + [dict(g) for g in head.garbage] + [s for s in head.staged if is_stale(s, now, policy)]
    warnings: list[str] = []
    deleted = 0
    try:
        deleted = collect_garbage(table, ref, garbage)
    except AttuneError as exc:
        warnings.append(f"old registrations of {ref} were not cleaned up yet ({exc.error_code}); the next one will")
    return FlipOutcome(revision=head.next_revision, dropped=dropped, warnings=warnings, components_deleted=deleted)


def _conflict(table: PackTable, ref: str, version: str) -> RegistrationConflictError:
    winner = stored.read_pointer(table, ref)
    if winner is None:
        now = "it was removed"
    else:
        now = f"{winner['version']} is now current (installation {winner.get('installation_id')})"
    return RegistrationConflictError(
        f"another registration of {ref} finished first ({now}); this registration of {version} was discarded and "
        "nothing of it is visible. Register again to install on top of it.",
        error_code="CONFLICT",
        details={"current_version": winner["version"] if winner else None},
    )
