"""Register stage: record each pack and its components in the registry table.

Per pack (the table layout is described in :mod:`attune_packs.data.packs`), in four steps, one
module each:

1. :mod:`.plan`: one consistent query reads the pointer ``CURRENT`` with its dependents,
   registrations in flight and garbage queue; the version rules apply (by SemVer precedence: the
   same content again is a no-op; other content under an equal version or a downgrade: only with
   ``force``), then the environments (their artifacts' digests), dependencies, dependents'
   constraints, component references and the test result's policy (:mod:`.gate`);
2. :mod:`.write`: a new registration id is drawn and its items (one per component, large schemas
   moved to S3, and their listing) are made; when they do not fit in the flip's transaction
   (most packs do: up to about 95 items and 2 MiB), they are written first in batches of 25 with
   a ``STAGED`` marker, and nothing points at them;
3. :mod:`.flip`: one transaction flips the pointer, conditional on the revision read in 1 (and on
   each dependency's revision), writes the version record (and the registration's items when they
   fit), records this pack as a dependent of its dependencies and queues registrations that fall
   out of retention as garbage;
4. :mod:`.prune`: garbage (unreferenced registrations' items, and attempts that crashed before
   their flip) is deleted. Readers follow the pointer, so they see the old pack or the new pack,
   never a mixture; of two concurrent registrations exactly one wins and the other gets ``CONFLICT``.

A crash before 3 leaves the previous version current and whole; a retry writes under a new
registration id and completes. A crash after 3 leaves garbage that the next registration of the
pack deletes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import installations as stored_installations
from attune_packs.data.operations import PackTable
from attune_packs.data.packs import PackHead, read_head
from attune_packs.domain.components import Component, resolve_references, with_declared_triggers
from attune_packs.domain.install_order import install_order
from attune_packs.errors import DependencyError
from attune_packs.models import (
    MAX_DEPENDENCY_ROUNDS,
    BuiltEnvironment,
    FailedBuild,
    PackFailure,
    RegisteredPack,
    RegisterRequest,
    RegisterResponse,
    RegisterSummary,
)
from attune_packs.services.stages.per_pack import PackFailures
from attune_packs.services.stages.register.flip import flip_pointer
from attune_packs.services.stages.register.gate import gate_tests
from attune_packs.services.stages.register.plan import (
    check_build,
    check_dependencies,
    check_dependents,
    check_system_pack,
    component_counts,
    decide_version,
    environments,
    existing_references,
    needs_env,
    stored_build,
)
from attune_packs.services.stages.register.policy import Clock, RegistryPolicy, new_registration_id, utc_now
from attune_packs.services.stages.register.write import registration_items, stored_manifest
from attune_packs.services.stored_packs import StoredPack, load_pack


@dataclass
class _Run:
    """What one register_packs call shares between its packs."""

    table: PackTable
    store: ObjectStore
    request: RegisterRequest
    policy: RegistryPolicy
    clock: Clock
    installation_id: str
    components: dict[str, list[Component]] = field(default_factory=dict)  # registered in this run
    manifests: dict[str, StoredPack] = field(default_factory=dict)  # every pack of the batch
    uploaded: set[str] = field(default_factory=set)


def _load(run: _Run, failures: PackFailures) -> None:
    """Read every pack of the batch (each once); a pack that cannot be read is a failure."""
    failed = failures.failed
    sources: dict[str, str] = {}
    for path in dict.fromkeys(run.request.pack_paths):
        with failures.guard(path) as attempt:
            pack = load_pack(path, run.store, run.table, strict=not run.request.skip_validation)
        if attempt.failed:
            continue
        ref = pack.contents.ref
        if ref in run.manifests:
            failed.append(
                PackFailure(
                    source=path,
                    pack_ref=ref,
                    error=f"the batch holds pack {ref} twice ({sources[ref]} and {path}); only the first is "
                    "registered: register the other one on its own",
                    error_code="PACK_DUPLICATE_IN_BATCH",
                )
            )
            continue
        run.manifests[ref], sources[ref] = pack, path


def register_packs(
    request: RegisterRequest,
    *,
    store: ObjectStore,
    table: PackTable,
    policy: RegistryPolicy | None = None,
    clock: Clock = utc_now,
) -> RegisterResponse:
    """Register every pack of the batch, dependencies first. One pack's failure is an entry of
    ``failed_packs``; a transient fault (DynamoDB throttling after retries) propagates so the
    stage is retried as a whole: it is idempotent, packs already registered by this installation
    are reported as registered again."""
    started = time.monotonic()
    run = _Run(
        table,
        store,
        request,
        policy or RegistryPolicy(),
        clock,
        request.installation_id or f"register-{uuid.uuid4().hex}",
    )
    failures = PackFailures("register")
    failed = failures.failed
    _load(run, failures)
    builds = {b.pack_ref: stored_build(b, store) for b in request.build_results}
    order, cycles = install_order({ref: set(p.contents.manifest.dependencies) for ref, p in run.manifests.items()})
    for conflict in cycles:
        failed.append(
            PackFailure(
                source=run.manifests[conflict.pack_ref].uri,
                pack_ref=conflict.pack_ref,
                error=conflict.message,
                error_code=conflict.error_code,
            )
        )
    registered: list[RegisteredPack] = []
    for ref in order:
        pack = run.manifests[ref]
        with failures.guard(pack.uri, ref):
            registered.append(_register_one(pack, builds.get(ref), run))
    summary = RegisterSummary(
        total_packs=len(registered) + len(failed),
        success_count=len(registered),
        failure_count=len(failed),
        total_components=sum(sum(r.components_registered.values()) for r in registered),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    _record_installation(run, registered, failed, summary)
    return RegisterResponse(
        registered_packs=registered, failed_packs=failed, summary=summary, installation_id=run.installation_id
    )


def _record_installation(
    run: _Run, registered: list[RegisteredPack], failed: list[PackFailure], summary: RegisterSummary
) -> None:
    now = run.clock().isoformat()
    outcomes = [
        {
            "pack_ref": r.pack_ref,
            "pack_version": r.pack_version,
            "previous_version": r.previous_version,
            "status": r.status,
            "archive": r.storage_path,
            "components_registered": r.components_registered,
            "tests": (r.validation_results.get("tests") or {}).get("decision"),
            "warnings": r.validation_results.get("warnings", [])[:20],
            "recorded_at": now,
        }
        for r in registered
    ]
    failures = [
        {
            "pack_ref": f.pack_ref,
            "source": f.source,
            "status": "failed",
            "error_code": f.error_code,
            "error": f.error[:2000],
            "retriable": f.retriable,
            "recorded_at": now,
        }
        for f in failed
    ]
    items = stored_installations.pack_outcomes(run.installation_id, outcomes, failures)
    options = {
        "skip_validation": run.request.skip_validation,
        "skip_tests": run.request.skip_tests,
        "force": run.request.force,
    }
    fields = {"requested_by": run.request.requested_by, "options": options, **summary.model_dump(mode="json")}
    items.append(stored_installations.summary_item(run.installation_id, {**fields, "recorded_at": now}))
    run.table.batch_put(items)


def _with_loop_end(error: DependencyError, request: RegisterRequest) -> DependencyError:
    """A missing dependency says so when the installation's dependency loop ran out of rounds with
    dependencies still missing: the chain is longer than one installation follows."""
    if error.error_code != "DEPENDENCY_NOT_FOUND" or not request.missing_dependency_count:
        return error
    if request.dependency_rounds < MAX_DEPENDENCY_ROUNDS:
        return error
    return DependencyError(
        f"{error.message}: this installation stopped downloading dependencies after its {MAX_DEPENDENCY_ROUNDS} "
        f"rounds with {request.missing_dependency_count} still missing (a longer chain of dependencies than one "
        "installation follows): install the deepest dependencies first, then this pack again",
        error_code=error.error_code,
    )


# -- one pack ----------------------------------------------------------------------------------------


def _unchanged(pack: StoredPack, current: dict[str, Any], counts: dict[str, int], run: _Run) -> RegisteredPack:
    """This content is already current: reported as registered to the installation that
    registered it (so a retried stage gives the same answer), else as unchanged."""
    mine = bool(run.request.installation_id) and current.get("installation_id") == run.request.installation_id
    version = str(current["version"])
    return RegisteredPack(
        pack_ref=pack.contents.ref,
        pack_id=f"{pack.contents.ref}@{version}",
        pack_version=version,
        storage_path=pack.uri,
        components_registered=counts,
        test_result=current.get("test_result"),
        validation_results=current.get("validation_results") or {"valid": True, "warnings": []},
        status="registered" if mine else "unchanged",
        previous_version=current.get("previous_version") if mine else None,
    )


def _version_record(
    pack: StoredPack,
    run: _Run,
    head: PackHead,
    build: BuiltEnvironment | FailedBuild | None,
    components: list[Component],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Every check before writing; the version record to make current and the dependencies'
    pointers the flip is conditional on."""
    request, manifest, ref = run.request, pack.contents.manifest, pack.contents.ref
    envs = environments(pack, build, run.store)
    warnings: list[str] = []
    if not envs and needs_env(pack):
        warnings.append("runtime environment not built (skipped): actions needing it will not run until it is")
    test_result, tests = gate_tests(
        build.test_result if isinstance(build, BuiltEnvironment) else None,
        manifest.testing,
        skip_tests=request.skip_tests,
        force=request.force,
        pack_ref=ref,
        warnings=warnings,
    )
    try:
        dependencies = check_dependencies(run.table, ref, manifest.dependencies)
    except DependencyError as error:
        raise _with_loop_end(error, request) from None
    batch = {r: p.contents.manifest.dependencies for r, p in run.manifests.items()}
    check_dependents(head, manifest.semver, force=request.force, batch=batch)
    references = "skipped"
    if request.skip_validation:
        warnings.append("component references were not checked (skip_validation)")
    else:
        existing = existing_references(run.table, run.components, dependencies)
        resolve_references(ref, components, manifest.dependencies, existing)
        references = "passed"
    checks = {"manifest": "passed", "components": "passed", "references": references, "dependencies": "passed"}
    record = {
        "ref": ref,
        "version": manifest.version,
        "name": manifest.name,
        "label": manifest.label or manifest.name,
        "description": manifest.description,
        "author": manifest.author,
        "email": manifest.email,
        "keywords": manifest.keywords,
        "dependencies": manifest.dependencies,
        "archive": pack.uri,
        "checksum": pack.checksum,
        "environments": envs,
        "test_result": test_result,
        "validation_results": {
            "valid": True,
            "strict": not request.skip_validation,
            "warnings": warnings,
            "checks": {**checks, "tests": tests["decision"]},
            "tests": tests,
        },
        "component_counts": component_counts(components),
        "installation_id": run.installation_id,
        "registered_by": request.requested_by,
        "system": manifest.system,
        "enabled": manifest.enabled,
        **stored_manifest(manifest.stored_fields(), run.store, run.policy, run.uploaded),
    }
    return record, dependencies


def _register_one(pack: StoredPack, build: BuiltEnvironment | FailedBuild | None, run: _Run) -> RegisteredPack:
    ref, manifest = pack.contents.ref, pack.contents.manifest
    check_build(pack, build)
    components = with_declared_triggers(ref, pack.contents.components)
    head = read_head(run.table, ref)
    check_system_pack(head, pack.checksum, force=run.request.force)
    decision = decide_version(ref, manifest.semver, pack.checksum, head.current, force=run.request.force)
    if decision.unchanged:
        assert head.current is not None
        run.components[ref] = components
        return _unchanged(pack, head.current, component_counts(components), run)
    record, dependencies = _version_record(pack, run, head, build, components)
    now = run.clock()
    record["registered_at"] = now.isoformat()
    registration_id = new_registration_id()
    registration = registration_items(
        run.store,
        ref,
        manifest.version,
        registration_id,
        components,
        run.policy,
        now,
        run.uploaded,
        run.installation_id,
    )
    outcome = flip_pointer(
        run.table,
        head,
        record=record,
        registration_id=registration_id,
        dependencies=dependencies,
        policy=run.policy,
        now=now,
        registration=registration,
    )
    record["validation_results"]["warnings"].extend(outcome.warnings)
    run.components[ref] = components
    return RegisteredPack(
        pack_ref=ref,
        pack_id=f"{ref}@{manifest.version}",
        pack_version=manifest.version,
        storage_path=pack.uri,
        components_registered=record["component_counts"],
        test_result=record["test_result"],
        validation_results=record["validation_results"],
        status="registered",
        previous_version=decision.previous,
    )
