"""Plan: everything decided before a registration writes anything. The version rules (SemVer
precedence: the same content again is a no-op; other content under an equal version, or a
downgrade, only with ``force``), the environments and their artifact digests, the dependencies
and dependents, component references, and the version record the flip will make current."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import packs as stored
from attune_packs.data.operations import PackTable
from attune_packs.data.packs import PackHead
from attune_packs.domain.components import Component, Reference
from attune_packs.domain.runtime import pack_requirements
from attune_packs.domain.semver import Constraint, Version
from attune_packs.errors import (
    AttuneError,
    BuildError,
    DependencyError,
    InternalError,
    ManifestError,
    RegistrationConflictError,
    SystemPackProtectedError,
    TransientError,
)
from attune_packs.models import COMPONENT_TYPES, BuildReference, BuiltEnvironment, FailedBuild
from attune_packs.s3_uri import parse_s3_uri
from attune_packs.services.reports import read_verified
from attune_packs.services.stored_packs import StoredPack

_HASH_CHUNK = 2**20


def same_version(a: str, b: str) -> bool:
    """Equal by SemVer precedence (build metadata ignored); strings that are not versions
    (records older than the rules) compare as text."""
    try:
        return Version.parse(a) == Version.parse(b)
    except ManifestError:
        return a == b


@dataclass(frozen=True)
class VersionDecision:
    unchanged: bool  # this content is already current: nothing to write
    previous: str | None


def decide_version(
    ref: str, version: Version, checksum: str, current: dict[str, Any] | None, *, force: bool
) -> VersionDecision:
    """The version rules against the current pointer (versions compared by SemVer precedence)."""
    if current is None:
        return VersionDecision(unchanged=False, previous=None)
    previous = str(current["version"])
    equal = same_version(previous, str(version))
    if equal and current.get("checksum") == checksum:
        return VersionDecision(unchanged=True, previous=previous)
    if not force and equal:
        raise RegistrationConflictError(
            f"{ref} {version} is already registered as {previous} (equal by precedence: build metadata does not "
            f"make a new version) with different content ({current.get('checksum')}); bump the version or "
            "install with force",
            error_code="VERSION_CONTENT_MISMATCH",
        )
    if not force and version < Version.parse(previous):
        raise RegistrationConflictError(
            f"{ref} {previous} is installed; refusing to downgrade to {version} without force",
            error_code="DOWNGRADE_REFUSED",
        )
    return VersionDecision(unchanged=False, previous=previous)


# -- environments ----------------------------------------------------------------------------------------


def stored_build(
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


def _sha256_of(store: ObjectStore, uri: str) -> str | None:
    location = parse_s3_uri(uri)
    if location.bucket != store.bucket:
        return None
    digest = hashlib.sha256()
    with store.open(location) as body:
        while chunk := body.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_artifacts(ref: str, build: BuiltEnvironment, store: ObjectStore) -> None:
    """Each environment artifact's bytes must have the sha256 its build recorded (when the build
    result records one: ``artifact_sha256``)."""
    for kind, env in build.environments.items():
        expected = getattr(env, "artifact_sha256", None)
        if not expected:
            continue
        try:
            actual = _sha256_of(store, env.artifact)
        except TransientError:
            raise
        except AttuneError as exc:
            raise BuildError(
                f"the {kind} environment of {ref} ({env.artifact}) cannot be read: {exc.message}",
                error_code="ENVIRONMENT_ARTIFACT_MISMATCH",
            ) from exc
        if actual != expected:
            raise BuildError(
                f"the {kind} environment of {ref} at {env.artifact} is not what its build produced "
                f"(sha256 {actual}, the build recorded {expected}); build it again",
                error_code="ENVIRONMENT_ARTIFACT_MISMATCH",
            )


def check_build(pack: StoredPack, build: BuiltEnvironment | FailedBuild | None) -> None:
    """A pack whose environment failed to build is not registered."""
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


def environments(pack: StoredPack, build: BuiltEnvironment | FailedBuild | None, store: ObjectStore) -> dict[str, Any]:
    """The environments to record, checked against what the build stored."""
    check_build(pack, build)
    if build is None or isinstance(build, FailedBuild):
        return {}
    check_artifacts(pack.contents.ref, build, store)
    return {kind: env.model_dump(mode="json") for kind, env in build.environments.items()}


def check_system_pack(head: PackHead, checksum: str, *, force: bool) -> None:
    """An installed system pack is replaced (another version, or other content) only with force;
    the same archive again is no replacement."""
    current = head.current
    if current is None or force or not stored.is_system_pack(current) or current.get("checksum") == checksum:
        return
    raise SystemPackProtectedError(
        f"{head.ref} {current['version']} is a system pack: replacing it needs force (install with --force, "
        "or force: true)",
        details={"pack_ref": head.ref, "installed_version": str(current["version"])},
    )


def needs_env(pack: StoredPack) -> bool:
    """Whether the pack needs a built environment: Python requirements (``requirements.txt`` or
    pack.yaml's ``meta.python_dependencies``, as the build reads them) or a ``package.json``."""
    if pack.contents.package_json is not None:
        return True
    try:
        return pack_requirements(pack.contents) is not None
    except AttuneError:
        return True  # it declares requirements, only not valid ones: still no environment for them


def component_counts(components: list[Component]) -> dict[str, int]:
    counts = {kind: 0 for kind in COMPONENT_TYPES}
    for component in components:
        counts[component.type] = counts.get(component.type, 0) + 1
    return counts


# -- dependencies, dependents, references ----------------------------------------------------------------


def check_dependencies(table: PackTable, ref: str, dependencies: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The pointers of the pack's dependencies (one batched consistent read), each installed at a
    version its constraint allows."""
    if not dependencies:
        return {}
    pointers = stored.read_pointers(table, dependencies)
    for dep_ref, spec in dependencies.items():
        current = pointers.get(dep_ref)
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
    return {dep_ref: pointers[dep_ref] for dep_ref in dependencies}


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


def existing_references(
    table: PackTable, registered: dict[str, list[Component]], dependencies: dict[str, dict[str, Any]]
) -> Callable[[list[Reference]], set[tuple[str, str]]]:
    """Which referenced components exist in the pack's dependencies: registered earlier in this
    run (``registered``, known without a read) or installed before (one batched read)."""

    def existing(refs: list[Reference]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        wanted: list[tuple[str, str, str]] = []
        for reference in refs:
            batch = registered.get(reference.pack)
            if batch is not None:
                if any(c.type == reference.kind and c.ref == reference.ref for c in batch):
                    found.add((reference.kind, reference.ref))
            elif reference.pack in dependencies:
                wanted.append((reference.pack, reference.kind, reference.name))
        for pack, kind, name in stored.read_named_components(table, dependencies, wanted):
            found.add((kind, f"{pack}.{name}"))
        return found

    return existing
