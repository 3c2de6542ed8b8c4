"""Dependencies stage: what else has to be installed, in which order, and what cannot be."""

from __future__ import annotations

from dataclasses import dataclass

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.errors import AttuneError
from attune_packs.models import (
    AnalyzedPack,
    Conflict,
    DependenciesRequest,
    DependenciesResponse,
    Dependency,
    PackFailure,
    RuntimeRequirements,
)
from attune_packs.runtime import runtime_requirements
from attune_packs.semver import Constraint, Version
from attune_packs.services.packs import StoredPack, load_pack


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


def analyze_dependencies(request: DependenciesRequest, store: ObjectStore, table: PackTable) -> DependenciesResponse:
    batch, errors, conflicts = _load_batch(request, store, table)
    dependencies: list[Dependency] = []
    missing: dict[str, list[str]] = {}
    installed_cache: dict[str, dict | None] = {}
    for pack in batch.values():
        for dep_ref, spec in pack.stored.contents.manifest.dependencies.items():
            constraint = Constraint.parse(spec)
            if dep_ref == pack.ref:
                conflicts.append(
                    Conflict(
                        pack_ref=pack.ref,
                        error_code="DEPENDENCY_CYCLE",
                        message=f"{pack.ref} depends on itself",
                        chain=[pack.ref, pack.ref],
                    )
                )
                continue
            if dep_ref not in installed_cache:
                installed_cache[dep_ref] = table.get_item(f"PACK#{dep_ref}", "CURRENT")
            installed = installed_cache[dep_ref]
            installed_version = str(installed["version"]) if installed else None
            in_batch = batch.get(dep_ref)
            if in_batch is not None:
                satisfied = constraint.allows(in_batch.version)
                if not satisfied:
                    conflicts.append(
                        Conflict(
                            pack_ref=pack.ref,
                            error_code="DEPENDENCY_CONFLICT",
                            message=f"{pack.ref} requires {dep_ref} {constraint}, but this installation brings "
                            f"{dep_ref} {in_batch.version}",
                            chain=[f"{pack.ref} -> {dep_ref} {constraint}", f"batch: {dep_ref} {in_batch.version}"],
                        )
                    )
            elif installed_version is not None:
                satisfied = constraint.allows(Version.parse(installed_version))
                if not satisfied and request.force:
                    missing.setdefault(dep_ref, []).append(str(constraint))
                elif not satisfied:
                    conflicts.append(
                        Conflict(
                            pack_ref=pack.ref,
                            error_code="DEPENDENCY_CONFLICT",
                            message=f"{pack.ref} requires {dep_ref} {constraint}, but {dep_ref} "
                            f"{installed_version} is installed; install with force to change it",
                            chain=[
                                f"{pack.ref} -> {dep_ref} {constraint}",
                                f"installed: {dep_ref} {installed_version}",
                            ],
                        )
                    )
            else:
                satisfied = False
                missing.setdefault(dep_ref, []).append(str(constraint))
            dependencies.append(
                Dependency(
                    pack_ref=dep_ref,
                    version_spec=str(constraint),
                    required_by=pack.ref,
                    already_installed=installed_version is not None,
                    installed_version=installed_version,
                    satisfied=satisfied,
                    provided_by=in_batch.stored.uri if in_batch else None,
                )
            )
    order, cycle_conflicts = install_order(
        {ref: set(p.stored.contents.manifest.dependencies) for ref, p in batch.items()}
    )
    conflicts.extend(cycle_conflicts)
    blocked = {c.pack_ref for c in conflicts}
    analyzed = [
        AnalyzedPack(
            pack_ref=ref,
            pack_version=str(batch[ref].version),
            archive=batch[ref].stored.uri,
            needs_python=batch[ref].runtime.python is not None,
            needs_nodejs=batch[ref].runtime.nodejs is not None,
        )
        for ref in order
    ]
    build_items = [a for a in analyzed if (a.needs_python or a.needs_nodejs) and a.pack_ref not in blocked]
    missing_specs = [_missing_spec(ref, specs) for ref, specs in sorted(missing.items())]
    return DependenciesResponse(
        dependencies=dependencies,
        runtime_requirements={ref: batch[ref].runtime for ref in order},
        missing_dependencies=missing_specs,
        conflicts=conflicts,
        install_order=order,
        analyzed_packs=analyzed,
        build_items=build_items,
        errors=errors,
        missing_count=len(missing_specs),
        build_count=len(build_items),
    )


def _missing_spec(ref: str, specs: list[str]) -> str:
    specific = sorted({s for s in specs if s != "*"})
    return f"{ref}@{','.join(specific)}" if specific else ref


def _load_batch(
    request: DependenciesRequest, store: ObjectStore, table: PackTable
) -> tuple[dict[str, BatchPack], list[PackFailure], list[Conflict]]:
    batch: dict[str, BatchPack] = {}
    errors: list[PackFailure] = []
    conflicts: list[Conflict] = []
    for path in dict.fromkeys(request.pack_paths):
        try:
            stored = load_pack(path, store, table, strict=not request.skip_validation)
            pack = BatchPack(stored, runtime_requirements(stored.contents))
        except AttuneError as exc:
            errors.append(
                PackFailure(
                    source=path,
                    error=exc.message,
                    error_code=exc.error_code,
                    retriable=exc.retriable,
                    details=exc.details,
                )
            )
            continue
        previous = batch.get(pack.ref)
        if previous is not None and previous.version != pack.version:
            conflicts.append(
                Conflict(
                    pack_ref=pack.ref,
                    error_code="DEPENDENCY_CONFLICT",
                    message=f"this installation brings two versions of {pack.ref}: {previous.version} and "
                    f"{pack.version}; keeping {max(previous.version, pack.version)}",
                    chain=[previous.stored.uri, stored.uri],
                )
            )
            if pack.version < previous.version:
                continue
        batch[pack.ref] = pack
    return batch, errors, conflicts


def install_order(graph: dict[str, set[str]]) -> tuple[list[str], list[Conflict]]:
    """Dependencies first (only edges inside ``graph`` count); ties broken by ref. Packs on a
    cycle are reported, not ordered."""
    inside = {ref: sorted(d for d in deps if d in graph and d != ref) for ref, deps in graph.items()}
    order: list[str] = []
    done: set[str] = set()
    remaining = set(inside)
    while True:
        ready = sorted(r for r in remaining if all(d in done for d in inside[r]))
        if not ready:
            break
        for ref in ready:
            order.append(ref)
            done.add(ref)
            remaining.discard(ref)
    conflicts = []
    reported: set[str] = set()
    for ref in sorted(remaining):
        if ref in reported:
            continue
        cycle = _find_cycle(ref, inside, remaining)
        if cycle:
            reported.update(cycle)
            text = " -> ".join([*cycle, cycle[0]])
            for member in cycle:
                conflicts.append(
                    Conflict(
                        pack_ref=member,
                        error_code="DEPENDENCY_CYCLE",
                        message=f"dependency cycle: {text}",
                        chain=[*cycle, cycle[0]],
                    )
                )
    for ref in sorted(remaining - reported):
        conflicts.append(
            Conflict(
                pack_ref=ref,
                error_code="DEPENDENCY_CYCLE",
                message=f"{ref} depends on packs that are on a dependency cycle",
                chain=[ref, *inside[ref]],
            )
        )
    return order, conflicts


def _find_cycle(start: str, graph: dict[str, list[str]], remaining: set[str]) -> list[str]:
    path: list[str] = []
    position: dict[str, int] = {}
    node = start
    while node not in position:
        position[node] = len(path)
        path.append(node)
        nexts = [d for d in graph[node] if d in remaining]
        if not nexts:
            return []
        node = nexts[0]
    return path[position[node] :]
