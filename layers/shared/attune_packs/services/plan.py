"""Install plan: everything an installation would decide, with no side effect.

Built from the stages themselves, not a second implementation of any of them:

1. the download stage fetches each source (to its staging key, verified, stored content-addressed);
2. the dependencies stage analyses the batch, and the download stage fetches what it says is missing,
   round after round, as the state machine's loop does (at most ``max_dependency_rounds``);
3. the build stage's :func:`plan_environments` gives each environment's hash and :func:`find_cached`
   whether it is stored (cache hit) or would be built;
4. the registration's component reading (:func:`with_declared_triggers` over the archive's
   components) is compared with what is registered now: the component diff of an upgrade.

Archives the plan's downloads stored that were not stored before are deleted at the end (the
staging keys are already gone), so a plan leaves ``archives/`` and ``envs/`` as it found them and
writes nothing to the table. Bounded: the request's ``timeout`` bounds all downloads together, at
most ``MAX_PACKS_PER_INSTALLATION`` packs, at most ``max_dependency_rounds`` rounds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.adapters.s3 import ObjectStore, parse_s3_uri
from attune_packs.domain.components import Component, with_declared_triggers
from attune_packs.domain.semver import Version
from attune_packs.errors import NotFoundError
from attune_packs.models import (
    BuildOptions,
    Conflict,
    DependenciesRequest,
    DependenciesResponse,
    DownloadedPack,
    DownloadRequest,
    InstallRequest,
    PackFailure,
)
from attune_packs.services import catalog
from attune_packs.services.registry_indices import StoredIndices, no_stored_indices
from attune_packs.services.stages.build_envs import PYTHON_PLATFORMS
from attune_packs.services.stages.build_plans import find_cached, plan_environments
from attune_packs.services.stages.dependencies import analyze_dependencies
from attune_packs.services.stages.download import download_packs
from attune_packs.services.stored_packs import StoredPack, load_pack
from attune_packs.settings import Settings

Visitor = Callable[[StoredPack, "PlannedPack"], None]
Action = Literal["install", "upgrade", "downgrade", "replace", "unchanged"]
_COMPARED = tuple(name for name in Component.model_fields if name not in {"source_file"})


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class PlannedEnvironment(_Out):
    kind: Literal["python", "nodejs"]
    env_hash: str
    version: str
    platform: str | None = None
    cached: bool = Field(description="True: stored under envs/<env_hash>/ (cache hit); False: would be built")


class ComponentChange(_Out):
    ref: str
    type: str
    fields: list[str] = Field(default_factory=list, description="changed: the fields that differ")


class ComponentDiff(_Out):
    added: list[ComponentChange] = Field(default_factory=list)
    removed: list[ComponentChange] = Field(default_factory=list)
    changed: list[ComponentChange] = Field(default_factory=list)
    unchanged_count: int = 0


class Requirement(_Out):
    required_by: str
    constraint: str


class PlannedPack(_Out):
    pack_ref: str
    pack_version: str
    action: Action
    installed_version: str | None = None
    source: str
    source_type: str
    git_commit: str | None = None
    checksum: str
    archive_size: int = 0
    requested: bool = Field(description="asked for; else brought in as a dependency (see required_by)")
    required_by: list[Requirement] = Field(default_factory=list)
    environments: list[PlannedEnvironment] = Field(default_factory=list)
    components: dict[str, int] = Field(default_factory=dict)
    diff: ComponentDiff | None = Field(default=None, description="against what is registered now")
    warnings: list[str] = Field(default_factory=list)


class InstallPlan(_Out):
    packs: list[PlannedPack] = Field(description="in install order, dependencies first")
    install_order: list[str]
    unchanged: list[str] = Field(
        description="already installed with the same content, or installed dependencies that satisfy their "
        "constraints: nothing to do"
    )
    conflicts: list[Conflict] = Field(default_factory=list, description="as the install would report them")
    failed: list[PackFailure] = Field(default_factory=list, description="sources that cannot be fetched or read")
    dependency_rounds: int = 0
    environments_to_build: int = 0
    cache_hits: int = 0
    ok: bool = Field(description="the install would register every pack of the plan")


class _Downloads:
    """What the plan's downloads fetched, and which archives they stored that were not there."""

    def __init__(self) -> None:
        self.packs: dict[str, DownloadedPack] = {}  # archive uri -> download
        self.created: set[str] = set()
        self.failed: list[PackFailure] = []

    def add(self, downloaded: list[DownloadedPack], failed: list[PackFailure]) -> None:
        for pack in downloaded:
            self.packs.setdefault(pack.archive, pack)
            if pack.stored:
                self.created.add(pack.archive)
        self.failed.extend(failed)

    def clean_up(self, store: ObjectStore) -> None:
        for uri in sorted(self.created):
            store.delete(parse_s3_uri(uri).key)


def plan_install(
    request: InstallRequest,
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
    *,
    stored_indices: StoredIndices = no_stored_indices,
    visit: Visitor | None = None,
) -> InstallPlan:
    """What installing ``request`` would do. ``visit`` sees each planned pack with its stored
    archive before the archives the plan stored are deleted (the lock reads requirement files)."""
    downloads = _Downloads()
    try:
        deps, rounds = _resolve(request, store, table, settings, stored_indices, downloads)
        return _assemble(request, deps, rounds, downloads, store, table, settings, visit)
    finally:
        downloads.clean_up(store)


def _resolve(
    request: InstallRequest,
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
    stored_indices: StoredIndices,
    downloads: _Downloads,
) -> tuple[DependenciesResponse | None, int]:
    """The download stage, then the dependencies stage and its download loop."""
    # Sources as they are now: a lock's pins are compared with the plan afterwards, not enforced in it.
    common = request.download_request().model_copy(update={"locked": None})
    first = download_packs(common, store, settings, stored_indices=stored_indices)
    downloads.add(first.downloaded_packs, first.failed_packs)
    paths = first.pack_paths
    if not paths:
        return None, 0
    rounds = 0
    while True:
        deps = analyze_dependencies(
            DependenciesRequest(
                pack_paths=paths,
                skip_validation=request.skip_validation,
                force=request.force,
                registry_url=request.registry_url,
                python_version=request.python_version,
                nodejs_version=request.nodejs_version,
            ),
            store,
            table,
            settings,
        )
        if request.skip_dependencies or not deps.missing_dependencies or rounds >= settings.max_dependency_rounds:
            return deps, rounds
        more = download_packs(
            DownloadRequest.model_validate(
                common.model_dump() | {"packs": deps.missing_dependencies, "known_pack_paths": paths}
            ),
            store,
            settings,
            stored_indices=stored_indices,
        )
        downloads.add(more.downloaded_packs, more.failed_packs)
        if not more.downloaded_packs:
            return deps, rounds
        paths = more.pack_paths
        rounds += 1


def _assemble(
    request: InstallRequest,
    deps: DependenciesResponse | None,
    rounds: int,
    downloads: _Downloads,
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
    visit: Visitor | None,
) -> InstallPlan:
    failed = list(downloads.failed)
    if deps is None:
        return InstallPlan(packs=[], install_order=[], unchanged=[], failed=failed, ok=False)
    failed.extend(deps.errors)
    requirements = _requirements(deps)
    options = BuildOptions(
        python_version=request.python_version,
        nodejs_version=request.nodejs_version,
        skip_python=request.skip_python or request.skip_env_build,
        skip_nodejs=request.skip_nodejs or request.skip_env_build,
    )
    packs: list[PlannedPack] = []
    for analyzed in deps.analyzed_packs:
        if analyzed.blocked:
            continue
        download = downloads.packs.get(analyzed.archive)
        stored = load_pack(analyzed.archive, store, table, strict=not request.skip_validation)
        planned = _plan_pack(stored, download, options, store, table, settings)
        planned.requested = download is not None and download.source in request.packs
        planned.required_by = requirements.get(planned.pack_ref, [])
        packs.append(planned)
        if visit is not None:
            visit(stored, planned)
    unresolved = [f"{m}" for m in deps.missing_dependencies]
    for missing in unresolved:
        failed.append(
            PackFailure(
                source=missing,
                error=f"{missing} is still missing after {rounds} dependency rounds",
                error_code="DEPENDENCY_MISSING",
            )
        )
    to_build = [e for p in packs if p.action != "unchanged" for e in p.environments if not e.cached]
    hits = [e for p in packs if p.action != "unchanged" for e in p.environments if e.cached]
    return InstallPlan(
        packs=packs,
        install_order=[p.pack_ref for p in packs],
        unchanged=sorted(
            {p.pack_ref for p in packs if p.action == "unchanged"}
            | {d.pack_ref for d in deps.dependencies if d.satisfied and d.already_installed and d.provided_by is None}
        ),
        conflicts=deps.conflicts,
        failed=failed,
        dependency_rounds=rounds,
        environments_to_build=len(to_build),
        cache_hits=len(hits),
        ok=not deps.conflicts and not failed,
    )


def _requirements(deps: DependenciesResponse) -> dict[str, list[Requirement]]:
    """Who requires each pack, with which constraint."""
    found: dict[str, list[Requirement]] = {}
    for dependency in deps.dependencies:
        found.setdefault(dependency.pack_ref, []).append(
            Requirement(required_by=dependency.required_by, constraint=dependency.version_spec)
        )
    return found


def _plan_pack(
    stored: StoredPack,
    download: DownloadedPack | None,
    options: BuildOptions,
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
) -> PlannedPack:
    manifest = stored.contents.manifest
    ref = manifest.ref
    components = with_declared_triggers(ref, stored.contents.components)
    current = catalog.read_head(table, ref).current
    action = _action(current, manifest.version, stored.checksum)
    environments = _registered_environments(current) if action == "unchanged" else []
    for env in plan_environments(stored, options, settings.target_architecture) if action != "unchanged" else []:
        environments.append(
            PlannedEnvironment(
                kind=env.kind,  # type: ignore[arg-type]
                env_hash=env.env_hash,
                version=env.version,
                platform=PYTHON_PLATFORMS.get(settings.target_architecture) if env.kind == "python" else None,
                cached=find_cached(store, env) is not None,
            )
        )
    counts: dict[str, int] = {}
    for component in components:
        counts[component.type] = counts.get(component.type, 0) + 1
    return PlannedPack(
        pack_ref=ref,
        pack_version=manifest.version,
        action=action,
        installed_version=str(current["version"]) if current is not None else None,
        source=download.source if download is not None else stored.uri,
        source_type=download.source_type if download is not None else "s3",
        git_commit=download.git_commit if download is not None else None,
        checksum=stored.checksum,
        archive_size=download.size_bytes if download is not None else 0,
        requested=False,
        environments=environments,
        components=counts,
        diff=_diff(table, store, ref, components) if action not in ("install", "unchanged") else None,
        warnings=list(download.warnings) if download is not None else [],
    )


def _registered_environments(current: dict[str, Any] | None) -> list[PlannedEnvironment]:
    """An unchanged pack keeps the environments it is registered with: nothing to build."""
    found = []
    for kind, env in sorted(((current or {}).get("environments") or {}).items()):
        if kind in ("python", "nodejs") and isinstance(env, dict) and env.get("env_hash"):
            version = env.get("python_version") if kind == "python" else env.get("nodejs_version")
            found.append(
                PlannedEnvironment(kind=kind, env_hash=str(env["env_hash"]), version=str(version or ""), cached=True)
            )
    return found


def _action(current: dict[str, Any] | None, version: str, checksum: str) -> Action:
    if current is None:
        return "install"
    installed = str(current["version"])
    if installed == version:
        return "unchanged" if current.get("checksum") == checksum else "replace"
    return "upgrade" if Version.parse(version) > Version.parse(installed) else "downgrade"


def _diff(table: PackTable, store: ObjectStore, ref: str, components: list[Component]) -> ComponentDiff:
    """The new version's components against the registered ones, by ref and type."""
    try:
        shown = catalog.show_pack(table, ref, store=store)
    except NotFoundError:
        shown = {"components": {}}
    before = {
        (str(item["type"]), str(item["ref"])): _digest(item) for items in shown["components"].values() for item in items
    }
    after = {(c.type, c.ref): c.model_dump(mode="json") for c in components}
    diff = ComponentDiff()
    for key in sorted(after.keys() - before.keys()):
        diff.added.append(ComponentChange(type=key[0], ref=key[1]))
    for key in sorted(before.keys() - after.keys()):
        diff.removed.append(ComponentChange(type=key[0], ref=key[1]))
    for key in sorted(after.keys() & before.keys()):
        new = _digest(after[key])
        fields = sorted(name for name in _COMPARED if new.get(name) != before[key].get(name))
        if fields:
            diff.changed.append(ComponentChange(type=key[0], ref=key[1], fields=fields))
        else:
            diff.unchanged_count += 1
    return diff


def _digest(item: dict[str, Any]) -> dict[str, str]:
    """Per compared field, a digest of its canonical JSON (a missing field counts as its default)."""
    defaults = {name: field.get_default(call_default_factory=True) for name, field in Component.model_fields.items()}
    return {
        name: hashlib.sha256(
            json.dumps(item.get(name, defaults.get(name)), sort_keys=True, default=str).encode()
        ).hexdigest()
        for name in _COMPARED
    }
