"""Register stage: record each pack and its components in the registry table.

Per pack (the table layout is described in :mod:`attune_packs.services.catalog`):

1. one consistent query reads the pointer ``CURRENT`` with its dependents, registrations in flight
   and garbage queue; the version rules apply (same content again: nothing to do; other content
   under the same version or a downgrade: only with ``force``), then dependencies, dependents'
   constraints, component references and the test result's policy;
2. a new registration id is drawn and its items (a ``STAGED`` marker and one item per component,
   large schemas moved to S3) are written in batches of 25; nothing points at them yet;
3. one transaction flips the pointer, conditional on the revision read in 1 (and on each
   dependency's revision), writes the version record, records this pack as a dependent of its
   dependencies and queues registrations that fall out of retention as garbage;
4. garbage (unreferenced registrations' items, and attempts that crashed before their flip) is
   deleted. Readers follow the pointer, so they see the old pack or the new pack, never a mixture;
   of two concurrent registrations exactly one wins and the other gets ``CONFLICT``.

A crash before 3 leaves the previous version current and whole; a retry writes under a new
registration id and completes. A crash after 3 leaves garbage that the next registration of the
pack deletes.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from attune_packs.adapters.dynamodb import (
    TRANSACTION_LIMIT,
    Check,
    Condition,
    Delete,
    Operation,
    PackTable,
    Put,
    TransactionConditionFailed,
    Update,
)
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.domain.components import Component, Reference, resolve_references, with_declared_triggers
from attune_packs.domain.manifest import Testing
from attune_packs.domain.semver import Constraint, Version
from attune_packs.errors import (
    AttuneError,
    BuildError,
    DependencyError,
    InternalError,
    ManifestError,
    RegistrationConflictError,
    TransientError,
)
from attune_packs.models import (
    COMPONENT_TYPES,
    BuildReference,
    BuiltEnvironment,
    FailedBuild,
    PackFailure,
    RegisteredPack,
    RegisterRequest,
    RegisterResponse,
    RegisterSummary,
)
from attune_packs.services.catalog import (
    CURRENT,
    DEPENDENT_PREFIX,
    GARBAGE_PREFIX,
    PACKS_INDEX,
    REMOVED,
    STAGED_PREFIX,
    PackHead,
    component_index_pk,
    component_index_sk,
    component_prefix,
    component_sk,
    installation_key,
    pack_key,
    public_json_size,
    read_head,
    version_sk,
)
from attune_packs.services.reports import read_verified
from attune_packs.services.stages.dependencies import install_order
from attune_packs.services.stages.per_pack import PackFailures
from attune_packs.services.stored_packs import StoredPack, load_pack

SCHEMA_PREFIX = "components/"
_BULK_FIELDS = ("parameters", "output_schema", "attributes")
_TEST_RESULT_BYTES = 16 * 1024
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RegistryPolicy:
    """How much history is kept and where large content goes."""

    keep_versions: int = 5  # registrations whose component items are kept (the current one included)
    # A registration still STAGED after this long is dead (a Lambda runs at most 15 minutes).
    staged_grace: timedelta = timedelta(minutes=30)
    # Component parameter / output schemas and attributes larger than this go to S3.
    offload_bytes: int = 32 * 1024
    max_item_bytes: int = 350 * 1024  # DynamoDB's limit is 400 KB, names included

    def __post_init__(self) -> None:
        if self.keep_versions < 1:
            raise ValueError("keep_versions must be at least 1 (the current version)")


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_registration_id() -> str:
    return uuid.uuid4().hex[:16]


# -- the batch -------------------------------------------------------------------------------------


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


def _stored_build(
    build: BuiltEnvironment | FailedBuild | BuildReference, store: ObjectStore
) -> BuiltEnvironment | FailedBuild:
    """A build answered by reference is read back from its report; one that cannot be read fails
    its pack (registering it without its environment would be wrong)."""
    if not isinstance(build, BuildReference):
        return build
    try:
        return BuiltEnvironment.model_validate(read_verified(store, build.report, build.sha256))
    except TransientError:
        raise
    except (AttuneError, ValueError) as exc:
        return FailedBuild(
            pack_ref=build.pack_ref,
            failed=True,
            error_type="BuildReportUnavailable",
            error=f"the build result of {build.pack_ref} at {build.report} cannot be read: {exc}",
        )


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
    sources: dict[str, str] = {}
    for path in dict.fromkeys(request.pack_paths):
        with failures.guard(path) as attempt:
            pack = load_pack(path, store, table, strict=not request.skip_validation)
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
    builds = {b.pack_ref: _stored_build(b, store) for b in request.build_results}
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
    pk = installation_key(run.installation_id)
    items: list[dict[str, Any]] = [
        {
            "PK": pk,
            "SK": f"PACK#{r.pack_ref}",
            "entity": "installation_pack",
            "installation_id": run.installation_id,
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
    for f in failed:
        sk = f"PACK#{f.pack_ref}" if f.pack_ref else f"SOURCE#{hashlib.sha256(f.source.encode()).hexdigest()[:16]}"
        if f.pack_ref and any(i["SK"] == sk for i in items):
            sk = f"{sk}#{hashlib.sha256(f.source.encode()).hexdigest()[:8]}"
        items.append(
            {
                "PK": pk,
                "SK": sk,
                "entity": "installation_pack",
                "installation_id": run.installation_id,
                "pack_ref": f.pack_ref,
                "source": f.source,
                "status": "failed",
                "error_code": f.error_code,
                "error": f.error[:2000],
                "retriable": f.retriable,
                "recorded_at": now,
            }
        )
    items.append(
        {
            "PK": pk,
            "SK": "SUMMARY",
            "entity": "installation",
            "installation_id": run.installation_id,
            "requested_by": run.request.requested_by,
            "options": {
                "skip_validation": run.request.skip_validation,
                "skip_tests": run.request.skip_tests,
                "force": run.request.force,
            },
            **summary.model_dump(mode="json"),
            "recorded_at": now,
        }
    )
    run.table.batch_put(items)


# -- one pack ----------------------------------------------------------------------------------------


def _environments(pack: StoredPack, build: BuiltEnvironment | FailedBuild | None) -> dict[str, Any]:
    if isinstance(build, FailedBuild):
        if build.error_type == InternalError.__name__:
            raise InternalError(
                f"the environment of {pack.contents.ref} could not be built (internal error in the build stage): "
                f"{build.error or 'no details reported'}",
                details={"exception_type": build.error_type, "stage": "build"},
            )
        raise BuildError(
            f"the environment of {pack.contents.ref} could not be built ({build.error_type}): "
            f"{build.error or 'no details reported'}"
        )
    if build is None:
        return {}
    return {kind: env.model_dump(mode="json") for kind, env in build.environments.items()}


def _needs_env(pack: StoredPack) -> bool:
    return pack.contents.requirements_txt is not None or pack.contents.package_json is not None


def component_counts(components: list[Component]) -> dict[str, int]:
    counts = {kind: 0 for kind in COMPONENT_TYPES}
    for component in components:
        counts[component.type] = counts.get(component.type, 0) + 1
    return counts


def _register_one(pack: StoredPack, build: BuiltEnvironment | FailedBuild | None, run: _Run) -> RegisteredPack:
    request, table = run.request, run.table
    manifest = pack.contents.manifest
    ref, version = manifest.ref, manifest.version
    environments = _environments(pack, build)
    components = with_declared_triggers(ref, pack.contents.components)
    counts = component_counts(components)
    head = read_head(table, ref)
    current = head.current
    previous = str(current["version"]) if current is not None else None
    if current is not None and previous == version and current.get("checksum") == pack.checksum:
        # Idempotent: this content is already current (reported as registered to the
        # installation that registered it, so a retried stage gives the same answer).
        run.components[ref] = components
        mine = bool(request.installation_id) and current.get("installation_id") == request.installation_id
        return RegisteredPack(
            pack_ref=ref,
            pack_id=f"{ref}@{version}",
            pack_version=version,
            storage_path=pack.uri,
            components_registered=counts,
            test_result=current.get("test_result"),
            validation_results=current.get("validation_results") or {"valid": True, "warnings": []},
            status="registered" if mine else "unchanged",
            previous_version=current.get("previous_version") if mine else None,
        )
    if current is not None and not request.force:
        if previous == version:
            raise RegistrationConflictError(
                f"{ref} {version} is already registered with different content ({current.get('checksum')}); "
                "bump the version or install with force",
                error_code="VERSION_CONTENT_MISMATCH",
            )
        if manifest.semver < Version.parse(str(previous)):
            raise RegistrationConflictError(
                f"{ref} {previous} is installed; refusing to downgrade to {version} without force",
                error_code="DOWNGRADE_REFUSED",
            )
    warnings: list[str] = []
    if not environments and _needs_env(pack):
        warnings.append("runtime environment not built (skipped): actions needing it will not run until it is")
    test_result, tests = gate_tests(
        build.test_result if isinstance(build, BuiltEnvironment) else None,
        manifest.testing,
        skip_tests=request.skip_tests,
        force=request.force,
        pack_ref=ref,
        warnings=warnings,
    )
    dependencies = check_dependencies(table, ref, manifest.dependencies)
    check_dependents(
        head,
        manifest.semver,
        force=request.force,
        batch={r: p.contents.manifest.dependencies for r, p in run.manifests.items()},
    )
    if request.skip_validation:
        warnings.append("component references were not checked (skip_validation)")
        references = "skipped"
    else:
        resolve_references(ref, components, manifest.dependencies, lambda refs: _existing(run, dependencies, refs))
        references = "passed"
    now = run.clock()
    record = {
        "ref": ref,
        "version": version,
        "name": manifest.name,
        "label": manifest.label or manifest.name,
        "description": manifest.description,
        "author": manifest.author,
        "email": manifest.email,
        "keywords": manifest.keywords,
        "dependencies": manifest.dependencies,
        "archive": pack.uri,
        "checksum": pack.checksum,
        "environments": environments,
        "test_result": test_result,
        "validation_results": {
            "valid": True,
            "strict": not request.skip_validation,
            "warnings": warnings,
            "checks": {
                "manifest": "passed",
                "components": "passed",
                "references": references,
                "dependencies": "passed",
                "tests": tests["decision"],
            },
            "tests": tests,
        },
        "component_counts": counts,
        "installation_id": run.installation_id,
        "registered_by": request.requested_by,
        "registered_at": now.isoformat(),
    }
    registration_id = new_registration_id()
    staged = stage_registration(
        table, run.store, ref, version, registration_id, components, run.policy, now, run.uploaded, run.installation_id
    )
    outcome = flip_pointer(
        table,
        head,
        record=record,
        registration_id=registration_id,
        dependencies=dependencies,
        policy=run.policy,
        now=now,
        staged_keys=staged,
    )
    warnings.extend(outcome.warnings)
    run.components[ref] = components
    return RegisteredPack(
        pack_ref=ref,
        pack_id=f"{ref}@{version}",
        pack_version=version,
        storage_path=pack.uri,
        components_registered=counts,
        test_result=test_result,
        validation_results=record["validation_results"],
        status="registered",
        previous_version=previous,
    )


# -- checks --------------------------------------------------------------------------------------------


def check_dependencies(table: PackTable, ref: str, dependencies: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The pointers of the pack's dependencies (one batched consistent read), each installed at a
    version its constraint allows."""
    if not dependencies:
        return {}
    pointers = table.batch_get([(pack_key(dep), CURRENT) for dep in dependencies])
    found: dict[str, dict[str, Any]] = {}
    for dep_ref, spec in dependencies.items():
        current = pointers.get((pack_key(dep_ref), CURRENT))
        constraint = Constraint.parse(spec)
        if current is None:
            raise DependencyError(
                f"{ref} needs {dep_ref} {constraint}, which is not installed and was not installed by this run",
                error_code="DEPENDENCY_NOT_FOUND",
            )
        if not constraint.allows(Version.parse(str(current["version"]))):
            raise DependencyError(
                f"{ref} needs {dep_ref} {constraint}, but {dep_ref} {current['version']} is installed",
                error_code="DEPENDENCY_CONFLICT",
            )
        found[dep_ref] = current
    return found


def check_dependents(
    head: PackHead, version: Version, *, force: bool, batch: dict[str, dict[str, str]] | None = None
) -> None:
    """Installed packs that depend on this one must accept ``version`` (unless forced). A dependent
    being registered in the same batch is judged by its new constraint."""
    problems = []
    for dependent, item in sorted(head.dependents.items()):
        spec = item.get("constraint", "*")
        if batch is not None and dependent in batch:
            if head.ref not in batch[dependent]:
                continue  # its new version no longer depends on this pack
            spec = batch[dependent][head.ref]
        if not Constraint.parse(str(spec)).allows(version):
            problems.append({"dependent": dependent, "version": item.get("version"), "constraint": str(spec)})
    if problems and not force:
        listed = ", ".join(f"{p['dependent']} {p['version']} needs {p['constraint']}" for p in problems)
        raise DependencyError(
            f"{head.ref} {version} would break installed packs that depend on it ({listed}); "
            "upgrade them in the same installation, or use force",
            error_code="DEPENDENT_CONFLICT",
            details=problems,
        )


def _existing(run: _Run, dependencies: dict[str, dict[str, Any]], refs: list[Reference]) -> set[tuple[str, str]]:
    """Which referenced components exist in the pack's dependencies: registered earlier in this
    run (known without a read) or installed before (one batched read of their current items)."""
    found: set[tuple[str, str]] = set()
    keys: dict[tuple[str, str], Reference] = {}
    for reference in refs:
        batch = run.components.get(reference.pack)
        if batch is not None:
            if any(c.type == reference.kind and c.ref == reference.ref for c in batch):
                found.add((reference.kind, reference.ref))
            continue
        current = dependencies.get(reference.pack)
        if current is None:
            continue
        prefix = component_prefix(str(current["version"]), current.get("registration_id"))
        keys[(pack_key(reference.pack), f"{prefix}{reference.kind}#{reference.name}")] = reference
    if keys:
        for key, item in run.table.batch_get(list(keys)).items():
            reference = keys[key]
            if item.get("registration_id") == dependencies[reference.pack].get("registration_id"):
                found.add((reference.kind, reference.ref))
    return found


# -- tests ---------------------------------------------------------------------------------------------


def gate_tests(
    result: dict[str, Any] | None,
    testing: Testing | None,
    *,
    skip_tests: bool,
    force: bool,
    pack_ref: str,
    warnings: list[str],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Judge the pack's test result by its policy (``result.policy``, else pack.yaml's
    ``testing``): below ``min_pass_rate`` with ``on_failure: block`` the pack fails with
    ``TESTS_FAILED`` unless forced or tests are skipped; ``warn`` adds a warning; ``ignore``
    registers. Returns the result as stored (compacted) and the verdict."""
    stored = compact_test_result(result) if result is not None else None
    policy = (result or {}).get("policy") if isinstance((result or {}).get("policy"), dict) else None
    min_rate = _rate((policy or {}).get("min_pass_rate", testing.min_pass_rate if testing else 1.0), default=1.0)
    on_failure = (policy or {}).get("on_failure", testing.on_failure if testing else "block")
    if on_failure not in {"block", "warn", "ignore"}:
        on_failure = "block"
    status = str(result.get("status")) if result is not None else "not_run"
    verdict: dict[str, Any] = {
        "status": status,
        "pass_rate": None,
        "min_pass_rate": min_rate,
        "on_failure": on_failure,
        "report": (result or {}).get("report"),
    }
    if skip_tests:
        return stored, {**verdict, "decision": "skipped_by_request"}
    if result is None:
        if testing is not None and testing.enabled and testing.runners:
            warnings.append(f"{pack_ref} declares tests but no test result was reported; they did not run")
        return None, {**verdict, "decision": "not_run"}
    if status == "skipped":
        return stored, {**verdict, "decision": "skipped"}
    rate = _pass_rate(result)
    verdict["pass_rate"] = rate
    if rate >= min_rate:
        return stored, {**verdict, "decision": "passed"}
    shortfall = (
        f"tests of {pack_ref} passed {rate:.0%} (status {status}; {result.get('passed', '?')} of "
        f"{result.get('total_tests', '?')}), below the required {min_rate:.0%}"
        + (f"; report: {verdict['report']}" if verdict["report"] else "")
    )
    if on_failure == "ignore":
        return stored, {**verdict, "decision": "ignored"}
    if on_failure == "warn":
        warnings.append(shortfall)
        return stored, {**verdict, "decision": "warned"}
    if force:
        warnings.append(f"{shortfall}; registered anyway (force)")
        return stored, {**verdict, "decision": "forced"}
    raise BuildError(
        f"{shortfall}; fix the tests, or install with skip_tests or force", error_code="TESTS_FAILED", details=verdict
    )


def _rate(value: Any, *, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(1.0, max(0.0, float(value)))


def _pass_rate(result: dict[str, Any]) -> float:
    if result.get("status") == "error":
        return 0.0  # the tests could not run: nothing is known to pass
    rate = result.get("pass_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return min(1.0, max(0.0, float(rate)))
    total, passed = result.get("total_tests"), result.get("passed")
    if isinstance(total, int) and isinstance(passed, int) and total > 0:
        return passed / total
    return 1.0 if result.get("status") == "passed" else 0.0


def compact_test_result(result: dict[str, Any]) -> dict[str, Any]:
    """The test result as stored and returned: the counts, the policy and the report location; the
    per-suite detail is cut when large (it lives in the report)."""
    compact = dict(result)
    if public_json_size(compact) <= _TEST_RESULT_BYTES:
        return compact
    suites = compact.get("suites") if isinstance(compact.get("suites"), list) else []
    compact["suites"] = [
        {k: v for k, v in suite.items() if isinstance(v, str | int | float | bool) or v is None}
        for suite in suites
        if isinstance(suite, dict)
    ]
    while compact["suites"] and public_json_size(compact) > _TEST_RESULT_BYTES:
        compact["suites"] = compact["suites"][: len(compact["suites"]) // 2]
    compact["suites_truncated"] = True
    if public_json_size(compact) > _TEST_RESULT_BYTES:
        compact = {k: v for k, v in compact.items() if isinstance(v, str | int | float | bool) or v is None}
        compact["suites_truncated"] = True
    return compact


# -- writing a registration -----------------------------------------------------------------------------


def _offload(
    component: dict[str, Any], store: ObjectStore, policy: RegistryPolicy, uploaded: set[str]
) -> dict[str, Any]:
    """Move a component's large schemas to S3 (content-addressed) and reference them."""
    bulk = {k: component[k] for k in _BULK_FIELDS if component.get(k)}
    body = json.dumps(bulk, sort_keys=True, separators=(",", ":"), default=str).encode()
    if len(body) <= policy.offload_bytes:
        return component
    digest = hashlib.sha256(body).hexdigest()
    key = f"{SCHEMA_PREFIX}{digest}.json"
    if key not in uploaded:
        store.put_bytes(key, body, "application/json")
        uploaded.add(key)
    slim = {k: v for k, v in component.items() if k not in _BULK_FIELDS}
    return {
        **slim,
        "parameter_names": sorted(component.get("parameters") or {})[:500],
        "schema_ref": f"s3://{store.bucket}/{key}",
        "schema_sha256": digest,
        "schema_bytes": len(body),
    }


def stage_registration(
    table: PackTable,
    store: ObjectStore,
    ref: str,
    version: str,
    registration_id: str,
    components: list[Component],
    policy: RegistryPolicy,
    now: datetime,
    uploaded: set[str] | None = None,
    installation_id: str | None = None,
) -> list[tuple[str, str]]:
    """Write a registration's items (its STAGED marker first, then one item per component) in
    batches. Nothing points at them until :func:`flip_pointer`. Returns their keys."""
    uploaded = uploaded if uploaded is not None else set()
    pk = pack_key(ref)
    items: list[dict[str, Any]] = [
        {
            "PK": pk,
            "SK": f"{STAGED_PREFIX}{registration_id}",
            "entity": "staged_registration",
            "version": version,
            "registration_id": registration_id,
            "installation_id": installation_id,
            "started_at": now.isoformat(),
        }
    ]
    for component in components:
        item = {
            "PK": pk,
            "SK": component_sk(version, registration_id, component.type, component.name),
            "entity": "component",
            "GSI1PK": component_index_pk(component.type),
            "GSI1SK": component_index_sk(component.ref, version, registration_id),
            "pack_ref": ref,
            "pack_version": version,
            "registration_id": registration_id,
            **component.model_dump(mode="json"),
        }
        item = _offload(item, store, policy, uploaded)
        if public_json_size(item) > policy.max_item_bytes:
            largest = max((k for k in item if k not in {"PK", "SK"}), key=lambda k: public_json_size({k: item[k]}))
            raise ManifestError(
                f"{component.source_file}: {largest}: the component's metadata is too large to register "
                f"({public_json_size(item)} bytes after moving its schemas to S3)",
                error_code="COMPONENT_TOO_LARGE",
                details=[{"file": component.source_file, "field": largest, "problem": "too large"}],
            )
        items.append(item)
    table.batch_put(items)
    return [(item["PK"], item["SK"]) for item in items]


@dataclass
class FlipOutcome:
    revision: int
    dropped: list[dict[str, Any]]
    warnings: list[str]
    components_deleted: int


def next_retained(
    head: PackHead, version: str, registration_id: str, keep: int, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The registrations kept after making (version, registration_id) current, and those dropped."""
    old = head.retained
    entry = {"version": version, "registration_id": registration_id, "activated_at": now.isoformat()}
    ordered = [entry] + [e for e in old if e["version"] != version]
    dropped = [e for e in old if e["version"] == version and e.get("registration_id") != registration_id]
    return ordered[:keep], dropped + ordered[keep:]


def garbage_marker(ref: str, entry: dict[str, Any], reason: str, now: datetime) -> dict[str, Any]:
    rid = entry.get("registration_id")
    return {
        "PK": pack_key(ref),
        "SK": f"{GARBAGE_PREFIX}{rid or 'legacy-' + str(entry['version'])}",
        "entity": "garbage",
        "version": entry["version"],
        "registration_id": rid,
        "reason": reason,
        "queued_at": now.isoformat(),
    }


def flip_pointer(
    table: PackTable,
    head: PackHead,
    *,
    record: dict[str, Any],
    registration_id: str,
    dependencies: dict[str, dict[str, Any]],
    policy: RegistryPolicy,
    now: datetime,
    staged_keys: list[tuple[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> FlipOutcome:
    """Make ``record`` (a version record) current in one transaction conditional on the revision
    in ``head`` and on each dependency's revision; then delete what is no longer referenced.

    On a lost race the registration's own staged items are deleted and ``CONFLICT`` is raised; if
    a dependency changed meanwhile, ``DEPENDENCY_CHANGED``."""
    ref, version = head.ref, str(record["version"])
    pk = pack_key(ref)
    current = head.current
    retained, dropped = next_retained(head, version, registration_id, policy.keep_versions, now)
    revision = head.next_revision
    pointer = {
        **record,
        "PK": pk,
        "SK": CURRENT,
        "entity": "pack",
        "GSI1PK": PACKS_INDEX,
        "GSI1SK": ref,
        "revision": revision,
        "registration_id": registration_id,
        "retained": retained,
        "previous_version": str(current["version"]) if current else None,
        "activated_at": now.isoformat(),
        **(extra or {}),
    }
    if public_json_size(pointer) > policy.max_item_bytes:
        raise ManifestError(
            f"pack {ref}: pack.yaml's metadata is too large to register ({public_json_size(pointer)} bytes)",
            error_code="PACK_METADATA_TOO_LARGE",
        )
    guard = Condition(exists=True, equals={"revision": head.revision}) if current else Condition(exists=False)
    operations: list[Operation] = [
        Put(pointer, guard),
        Put(
            {
                **record,
                "PK": pk,
                "SK": version_sk(version),
                "entity": "pack_version",
                "registration_id": registration_id,
                "activated_at": now.isoformat(),
            }
        ),
        Delete(pk, f"{STAGED_PREFIX}{registration_id}"),
    ]
    if head.removed is not None:
        operations.append(Delete(pk, REMOVED))
    dependency_checks: dict[int, str] = {}
    constraints = record.get("dependencies") or {}
    for dep_ref, dep_current in sorted(dependencies.items()):
        if dep_ref == ref:
            continue
        dependency_checks[len(operations)] = dep_ref
        operations.append(
            Check(pack_key(dep_ref), CURRENT, Condition(exists=True, equals={"revision": dep_current["revision"]}))
        )
        operations.append(
            Put(
                {
                    "PK": pack_key(dep_ref),
                    "SK": f"{DEPENDENT_PREFIX}{ref}",
                    "entity": "dependent",
                    "dependent": ref,
                    "version": version,
                    "constraint": constraints.get(dep_ref, "*"),
                    "recorded_at": now.isoformat(),
                }
            )
        )
    for dep_ref in sorted(set((current or {}).get("dependencies") or {}) - set(dependencies)):
        operations.append(Delete(pack_key(dep_ref), f"{DEPENDENT_PREFIX}{ref}"))
    queued = [garbage_marker(ref, entry, "out of retention", now) for entry in dropped]
    for entry, marker in zip(dropped, queued, strict=True):
        operations.append(Put(marker))
        if entry["version"] != version:
            # Unconditional (a missing record must not turn into a conflict); ref and version make
            # even a record recreated this way readable.
            operations.append(
                Update(
                    pk,
                    version_sk(str(entry["version"])),
                    set={"ref": ref, "version": entry["version"], "cleaned_up_at": now.isoformat()},
                )
            )
    if len(operations) > TRANSACTION_LIMIT:
        _discard(table, staged_keys)
        raise DependencyError(
            f"pack {ref} has too many dependencies to register atomically ({len(dependencies)})",
            error_code="DEPENDENCY_LIMIT",
        )
    try:
        table.transact(operations)
    except TransactionConditionFailed as exc:
        _discard(table, staged_keys)
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
    garbage = queued + [dict(g) for g in head.garbage]
    garbage += [s for s in head.staged if is_stale(s, now, policy)]
    warnings: list[str] = []
    deleted = 0
    try:
        deleted = collect_garbage(table, ref, garbage)
    except AttuneError as exc:
        warnings.append(f"old registrations of {ref} were not cleaned up yet ({exc.error_code}); the next one will")
    return FlipOutcome(revision=revision, dropped=dropped, warnings=warnings, components_deleted=deleted)


def _conflict(table: PackTable, ref: str, version: str) -> RegistrationConflictError:
    winner = table.get_item(pack_key(ref), CURRENT)
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


def _discard(table: PackTable, keys: list[tuple[str, str]] | None) -> None:
    """Delete a registration that will never be current (its marker last, so a failure here
    leaves the marker for the garbage collector)."""
    if not keys:
        return
    try:
        table.batch_delete([*keys[1:], keys[0]])
    except AttuneError:
        pass  # the STAGED marker remains: the next registration of the pack collects it


def is_stale(staged: dict[str, Any], now: datetime, policy: RegistryPolicy) -> bool:
    """Whether a STAGED registration is older than any registration can run (so it is dead)."""
    try:
        started = datetime.fromisoformat(str(staged.get("started_at")))
    except ValueError:
        return True
    return now - started > policy.staged_grace


def collect_garbage(table: PackTable, ref: str, entries: list[dict[str, Any]]) -> int:
    """Delete the component items of registrations nobody points at, then their markers."""
    pk = pack_key(ref)
    keys: list[tuple[str, str]] = []
    markers: list[tuple[str, str]] = []
    seen: set[tuple[str, str | None]] = set()
    for entry in entries:
        rid = entry.get("registration_id")
        version = str(entry["version"])
        if "SK" in entry:
            markers.append((pk, str(entry["SK"])))
        if (version, rid) in seen:
            continue
        seen.add((version, rid))
        for item in table.query_prefix(pk, component_prefix(version, rid), attributes=["registration_id"]):
            if item.get("registration_id") == rid:
                keys.append((pk, str(item["SK"])))
    table.batch_delete([*keys, *markers])
    return len(keys)
