"""Register stage: record each pack and its components in the registry table.

A pack version's items (version record, one item per component) are written first, in batches;
then the ``CURRENT`` pointer flips with a conditional write on its revision. Readers follow
``CURRENT`` to one version's items, so they see the old pack or the new pack, never a mixture,
and of two concurrent registrations exactly one wins.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.components import Component
from attune_packs.errors import AttuneError, BuildError, DependencyError, RegistrationConflictError
from attune_packs.models import (
    COMPONENT_TYPES,
    BuiltEnvironment,
    FailedBuild,
    PackFailure,
    RegisteredPack,
    RegisterRequest,
    RegisterResponse,
    RegisterSummary,
)
from attune_packs.semver import Constraint, Version
from attune_packs.services.dependencies import install_order
from attune_packs.services.packs import StoredPack, load_pack


def pack_key(ref: str) -> str:
    return f"PACK#{ref}"


def component_sk(version: str, component: Component) -> str:
    return f"COMPONENT#{version}#{component.type}#{component.name}"


def register_packs(request: RegisterRequest, *, store: ObjectStore, table: PackTable) -> RegisterResponse:
    started = time.monotonic()
    failed: list[PackFailure] = []
    loaded: dict[str, StoredPack] = {}
    for path in dict.fromkeys(request.pack_paths):
        try:
            pack = load_pack(path, store, table, strict=not request.skip_validation)
        except AttuneError as exc:
            failed.append(_failure(path, None, exc))
            continue
        loaded[pack.contents.ref] = pack
    builds: dict[str, BuiltEnvironment | FailedBuild] = {b.pack_ref: b for b in request.build_results}
    order, cycles = install_order({ref: set(p.contents.manifest.dependencies) for ref, p in loaded.items()})
    for conflict in cycles:
        failed.append(
            PackFailure(
                source=loaded[conflict.pack_ref].uri,
                pack_ref=conflict.pack_ref,
                error=conflict.message,
                error_code=conflict.error_code,
            )
        )
    registered: list[RegisteredPack] = []
    for ref in order:
        pack = loaded[ref]
        try:
            registered.append(_register_one(pack, builds.get(ref), request, table))
        except AttuneError as exc:
            failed.append(_failure(pack.uri, ref, exc))
    return RegisterResponse(
        registered_packs=registered,
        failed_packs=failed,
        summary=RegisterSummary(
            total_packs=len(registered) + len(failed),
            success_count=len(registered),
            failure_count=len(failed),
            total_components=sum(sum(r.components_registered.values()) for r in registered),
            duration_ms=int((time.monotonic() - started) * 1000),
        ),
    )


def _failure(source: str, ref: str | None, exc: AttuneError) -> PackFailure:
    return PackFailure(
        source=source,
        pack_ref=ref,
        error=exc.message,
        error_code=exc.error_code,
        retriable=exc.retriable,
        details=exc.details,
    )


def _check_dependencies(pack: StoredPack, table: PackTable) -> None:
    for dep_ref, spec in pack.contents.manifest.dependencies.items():
        current = table.get_item(pack_key(dep_ref), "CURRENT")
        constraint = Constraint.parse(spec)
        if current is None:
            raise DependencyError(
                f"{pack.contents.ref} needs {dep_ref} {constraint}, which is not installed and was not "
                "installed by this run",
                error_code="DEPENDENCY_NOT_FOUND",
            )
        if not constraint.allows(Version.parse(str(current["version"]))):
            raise DependencyError(
                f"{pack.contents.ref} needs {dep_ref} {constraint}, but {dep_ref} {current['version']} is installed",
                error_code="DEPENDENCY_CONFLICT",
            )


def _environments(pack: StoredPack, build: BuiltEnvironment | FailedBuild | None) -> dict[str, Any]:
    if isinstance(build, FailedBuild):
        raise BuildError(
            f"the environment of {pack.contents.ref} could not be built ({build.error_type}): "
            f"{build.error or 'no details reported'}"
        )
    if build is None:
        return {}
    return {kind: env.model_dump(mode="json") for kind, env in build.environments.items()}


def _register_one(
    pack: StoredPack, build: BuiltEnvironment | FailedBuild | None, request: RegisterRequest, table: PackTable
) -> RegisteredPack:
    manifest = pack.contents.manifest
    ref, version = manifest.ref, manifest.version
    environments = _environments(pack, build)
    _check_dependencies(pack, table)
    counts = {kind: 0 for kind in COMPONENT_TYPES}
    for component in pack.contents.components:
        counts[component.type] = counts.get(component.type, 0) + 1
    test_result = build.test_result if isinstance(build, BuiltEnvironment) else None
    validation = {
        "valid": True,
        "strict": not request.skip_validation,
        "warnings": []
        if environments or not _needs_env(pack)
        else ["runtime environment not built (skipped): actions needing it will not run until it is"],
    }
    result = RegisteredPack(
        pack_ref=ref,
        pack_id=f"{ref}@{version}",
        pack_version=version,
        storage_path=pack.uri,
        components_registered=counts,
        test_result=test_result,
        validation_results=validation,
        status="registered",
    )
    current = table.get_item(pack_key(ref), "CURRENT")
    if current is not None:
        current_version = Version.parse(str(current["version"]))
        if str(current_version) == version and current.get("checksum") == pack.checksum:
            return result.model_copy(update={"status": "unchanged"})
        if str(current_version) == version and not request.force:
            raise RegistrationConflictError(
                f"{ref} {version} is already registered with different content ({current.get('checksum')}); "
                "bump the version or install with force",
                error_code="VERSION_CONTENT_MISMATCH",
            )
        if manifest.semver < current_version and not request.force:
            raise RegistrationConflictError(
                f"{ref} {current_version} is installed; refusing to downgrade to {version} without force",
                error_code="DOWNGRADE_REFUSED",
            )
    now = datetime.now(UTC).isoformat()
    summary = {
        "ref": ref,
        "version": version,
        "name": manifest.name,
        "label": manifest.label or manifest.name,
        "description": manifest.description,
        "author": manifest.author,
        "dependencies": manifest.dependencies,
        "archive": pack.uri,
        "checksum": pack.checksum,
        "environments": environments,
        "test_result": test_result,
        "component_counts": counts,
        "installation_id": request.installation_id,
        "registered_at": now,
    }
    items: list[dict[str, Any]] = [
        {"PK": pack_key(ref), "SK": f"VERSION#{version}", "entity": "pack_version", **summary}
    ]
    for component in pack.contents.components:
        items.append(
            {
                "PK": pack_key(ref),
                "SK": component_sk(version, component),
                "entity": "component",
                "GSI1PK": f"COMPONENT#{component.type}",
                "GSI1SK": f"{component.ref}#{version}",
                "pack_ref": ref,
                "pack_version": version,
                **component.model_dump(mode="json"),
            }
        )
    table.batch_put(items)
    revision = int(current["revision"]) if current is not None else None
    table.put_if_revision(
        {
            "PK": pack_key(ref),
            "SK": "CURRENT",
            "entity": "pack",
            "GSI1PK": "PACKS",
            "GSI1SK": ref,
            "revision": (revision or 0) + 1,
            **summary,
        },
        revision,
    )
    return result


def _needs_env(pack: StoredPack) -> bool:
    return pack.contents.requirements_txt is not None or pack.contents.package_json is not None
