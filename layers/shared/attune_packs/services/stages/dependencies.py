"""Dependencies stage: what else has to be installed, in which order, and what cannot be.

The packs of the request are the batch (fixed at their versions). The resolver
(:mod:`attune_packs.domain.resolver`) chooses an exact version for every pack they need that is neither
in the batch nor installed (or, with ``force``, an installed pack that has to change), from the
ordered registry indices. ``missing_dependencies`` pins them exactly (``ref@=X.Y.Z``) so the state
machine's download loop fetches what was chosen; the next round reads their real pack.yaml and
resolves again, until nothing is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data.operations import PackTable
from attune_packs.data.packs import read_pointer
from attune_packs.domain.registry_index import RegistryCatalog
from attune_packs.domain.resolver import (
    InstalledPack,
    PackNode,
    PlatformTarget,
    ResolverLimits,
    constraint_of,
    resolve,
)
from attune_packs.domain.resolver import Resolution as ResolutionResult
from attune_packs.domain.runtime import runtime_requirements
from attune_packs.domain.semver import Version
from attune_packs.errors import AttuneError, ConfigurationError, ManifestError, TransientError
from attune_packs.models import (
    AnalyzedPack,
    Conflict,
    DependenciesRequest,
    DependenciesResponse,
    Dependency,
    PackFailure,
    Resolution,
    RuntimeRequirements,
)
from attune_packs.services.managed_indices import enabled_index_urls
from attune_packs.services.registry_indices import IndexFailure, index_urls, load_indices
from attune_packs.services.stages.per_pack import PackFailures
from attune_packs.services.stored_packs import StoredPack, load_pack, stored_file_reader
from attune_packs.settings import Settings


@dataclass
class BatchPack:
    stored: StoredPack
    runtime: RuntimeRequirements

    @property
    def ref(self) -> str:
        return self.stored.contents.ref

    @property
    def version(self) -> Version:
        return self.stored.contents.manifest.semver

    def node(self) -> PackNode:
        manifest = self.stored.contents.manifest
        nodejs = self.runtime.nodejs.version if self.runtime.nodejs else manifest.nodejs_version
        return PackNode(
            ref=self.ref,
            version=self.version,
            dependencies=manifest.dependencies,
            platform_constraint=manifest.platform_version,
            python_constraint=manifest.python_constraint,
            nodejs_constraint=nodejs,
            source=self.stored.uri,
        )


@dataclass
class _Installed:
    """Installed packs (``CURRENT`` items), read once per ref."""

    table: PackTable
    cache: dict[str, InstalledPack | None] = field(default_factory=dict)

    def __call__(self, ref: str) -> InstalledPack | None:
        if ref not in self.cache:
            self.cache[ref] = self._read(ref)
        return self.cache[ref]

    def _read(self, ref: str) -> InstalledPack | None:
        item = read_pointer(self.table, ref)
        if item is None:
            return None
        try:
            version = Version.parse(str(item.get("version")))
        except ManifestError:
            return None  # not a version this installer wrote: nothing to keep or satisfy
        deps = item.get("dependencies")
        return InstalledPack(ref, version, {str(k): str(v) for k, v in deps.items()} if isinstance(deps, dict) else {})


@dataclass
class _Catalog:
    """The registry indices, loaded on first use (a batch whose dependencies are all installed or
    in the batch never reads an index). An index that cannot be read is an ``errors[]`` entry and
    resolution goes on without it; a transient failure propagates, for the state machine to retry."""

    load: Callable[[], RegistryCatalog]
    errors: list[PackFailure]
    loaded: RegistryCatalog | None = None

    def __call__(self) -> RegistryCatalog:
        if self.loaded is None:
            try:
                self.loaded = self.load()
                for url, error in self.loaded.unreadable:
                    self.errors.append(
                        PackFailure(
                            source=url,
                            error=f"registry index {url} could not be read, dependencies were resolved from the "
                            f"others (a pack it would have served fails to download): {error.message}",
                            error_code=error.error_code,
                            retriable=error.retriable,
                        )
                    )
            except TransientError:
                raise
            except AttuneError as exc:
                self.errors.append(
                    PackFailure(
                        source="registry",
                        error=f"the registry indices could not be read, so missing dependencies cannot be found: "
                        f"{exc.message}",
                        error_code=exc.error_code,
                        retriable=exc.retriable,
                        details=exc.details,
                    )
                )
                self.loaded = RegistryCatalog([])
        return self.loaded


def analyze_dependencies(
    request: DependenciesRequest, store: ObjectStore, table: PackTable, settings: Settings
) -> DependenciesResponse:
    """``settings`` names the registry indices and the platform the packs must run on."""
    batch, errors, conflicts = _load_batch(request, store, table)
    installed = _Installed(table)
    catalog = _Catalog(_index_loader(request, store, table, settings), errors)
    resolution = resolve(
        [pack.node() for pack in batch.values()],
        installed=installed,
        catalog=catalog,
        force=request.force,
        target=_target(request, settings),
        limits=ResolverLimits(),
        blocked={c.pack_ref: c for c in conflicts},
    )
    conflicts.extend(resolution.conflicts)
    blocked = resolution.blocked | {c.pack_ref for c in conflicts}
    dependencies = _dependency_list(batch, resolution, installed, blocked)
    chosen = sorted(resolution.chosen.values(), key=lambda c: c.ref)
    order = resolution.install_order
    ordered_batch = [ref for ref in order if ref in batch] + sorted(ref for ref in batch if ref not in order)
    analyzed = [
        AnalyzedPack(
            pack_ref=ref,
            pack_version=str(batch[ref].version),
            archive=batch[ref].stored.uri,
            needs_python=batch[ref].runtime.python is not None,
            needs_nodejs=batch[ref].runtime.nodejs is not None,
            has_tests=_declares_tests(batch[ref].stored),
            blocked=ref in blocked,
        )
        for ref in ordered_batch
    ]
    build_items = [a for a in analyzed if (a.needs_python or a.needs_nodejs or a.has_tests) and not a.blocked]
    registrable = [a.archive for a in analyzed if not a.blocked]
    missing = [f"{choice.ref}@={choice.version}" for choice in chosen]
    return DependenciesResponse(
        dependencies=dependencies,
        runtime_requirements={ref: batch[ref].runtime for ref in ordered_batch},
        missing_dependencies=missing,
        conflicts=conflicts,
        install_order=order,
        analyzed_packs=analyzed,
        build_items=build_items,
        errors=errors,
        missing_count=len(missing),
        build_count=len(build_items),
        registrable_paths=registrable,
        registrable_count=len(registrable),
        resolution=[
            Resolution(
                pack_ref=choice.ref,
                version=str(choice.version),
                index=choice.index,
                required_by=list(choice.required_by),
                installed_version=str(choice.installed_version) if choice.installed_version else None,
            )
            for choice in chosen
        ],
    )


def _declares_tests(stored: StoredPack) -> bool:
    testing = stored.contents.manifest.testing
    return testing is not None and testing.enabled and bool(testing.runners)


def _index_loader(
    request: DependenciesRequest, store: ObjectStore, table: PackTable, settings: Settings
) -> Callable[[], RegistryCatalog]:
    def load() -> RegistryCatalog:
        urls = index_urls(request.registry_url, settings, lambda: enabled_index_urls(table))
        failures: list[IndexFailure] = []
        loaded = load_indices(urls, store, settings, failures=failures)
        retriable = [f.error for f in failures if f.error.retriable]
        if retriable:
            raise retriable[0]  # the state machine retries the stage
        if failures and not loaded:
            raise failures[0].error  # nothing to resolve from: reported as one failure
        return RegistryCatalog(loaded, unreadable=[(f.url, f.error) for f in failures])

    return load


def _target(request: DependenciesRequest, settings: Settings) -> PlatformTarget:
    text = settings.platform_version
    try:
        version = Version.parse(text)
    except ManifestError as exc:
        raise ConfigurationError(f"PLATFORM_VERSION {text!r} is not a semantic version: {exc.message}") from exc
    return PlatformTarget(version, python=request.python_version, nodejs=request.nodejs_version)


def _dependency_list(
    batch: dict[str, BatchPack], resolution: ResolutionResult, installed: _Installed, blocked: set[str]
) -> list[Dependency]:
    """One entry per requirement of a batch pack or of a pack chosen from a registry."""
    edges: list[tuple[str, dict[str, str]]] = [
        (ref, dict(pack.stored.contents.manifest.dependencies)) for ref, pack in sorted(batch.items())
    ]
    edges += [(ref, dict(choice.entry.dependencies)) for ref, choice in sorted(resolution.chosen.items())]
    result = []
    for requirer, deps in edges:
        for dep_ref, spec in deps.items():
            constraint = constraint_of(spec)
            current = installed(dep_ref)
            in_batch = batch.get(dep_ref)
            present = in_batch.version if in_batch is not None and dep_ref not in blocked else None
            if present is None and current is not None:
                present = current.version
            resolved = resolution.chosen[dep_ref].version if dep_ref in resolution.chosen else present
            result.append(
                Dependency(
                    pack_ref=dep_ref,
                    version_spec=spec,
                    required_by=requirer,
                    already_installed=current is not None,
                    installed_version=str(current.version) if current is not None else None,
                    satisfied=present is not None and constraint.allows(present) and dep_ref not in resolution.chosen,
                    provided_by=in_batch.stored.uri if in_batch is not None else None,
                    resolved_version=str(resolved) if resolved is not None else None,
                )
            )
    return result


def _load_batch(
    request: DependenciesRequest, store: ObjectStore, table: PackTable
) -> tuple[dict[str, BatchPack], list[PackFailure], list[Conflict]]:
    batch: dict[str, BatchPack] = {}
    failures = PackFailures("dependencies")
    errors = failures.failed
    conflicts: list[Conflict] = []
    for path in dict.fromkeys(request.pack_paths):
        with failures.guard(path) as attempt:
            stored = load_pack(path, store, table, strict=not request.skip_validation)
            pack = BatchPack(stored, runtime_requirements(stored.contents, stored_file_reader(stored, store)))
        if attempt.failed:
            continue
        previous = batch.get(pack.ref)
        if previous is not None and previous.version != pack.version:
            conflicts.append(
                Conflict(
                    pack_ref=pack.ref,
                    error_code="DEPENDENCY_CONFLICT",
                    message=f"this installation brings two versions of {pack.ref}: {previous.version} and "
                    f"{pack.version}; install one of them",
                    chain=[previous.stored.uri, stored.uri],
                )
            )
            if pack.version < previous.version:
                continue
        batch[pack.ref] = pack
    return batch, errors, conflicts
