"""Install order and dependency cycles: the topological order, the registry versions that could be
ruled out of a cycle, and the conflicts of the cycles that remain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from attune_packs.domain.install_order import topological_order
from attune_packs.domain.resolver.model import Candidate, PackNode, Resolution
from attune_packs.domain.resolver.provider import Provider
from attune_packs.domain.semver import Version
from attune_packs.models import Conflict

# --- cycles --------------------------------------------------------------------------------------


def with_exclusion(
    excluded: Mapping[str, Mapping[Version, str]], option: tuple[str, Version, str]
) -> dict[str, dict[Version, str]]:
    ref, version, text = option
    updated = {key: dict(value) for key, value in excluded.items()}
    updated.setdefault(ref, {})[version] = text
    return updated


def cycle_choices(
    mapping: Mapping[str, Candidate],
    criteria: Mapping[str, Any],
    provider: Provider,
    roots: Sequence[PackNode],
) -> list[list[tuple[str, Version, str]]]:
    """For each cycle through a registry version, the registry versions on it that could be ruled
    out so the next attempt backtracks to others, best first: one whose pack has another version
    its requirers accept, then the one farthest from the batch (whose requirement closes the
    cycle). Cycles among batch packs only have none: they are conflicts."""
    graph = {ref: {dep for dep, _ in c.dependencies} for ref, c in mapping.items() if c.origin != "installed"}
    _, cycles = topological_order(graph)
    depth = {n.ref: 0 for n in roots if n.ref in mapping}
    frontier = list(depth)
    while frontier:
        following = []
        for ref in frontier:
            for dep in sorted(graph.get(ref, ())):
                if dep in graph and dep not in depth:
                    depth[dep] = depth[ref] + 1
                    following.append(dep)
        frontier = following
    points = []
    for cycle in cycles:
        movable = [ref for ref in cycle if mapping[ref].origin == "index"]
        if not movable:
            continue

        def alternatives(ref: str) -> int:
            wanted = [info.requirement for info in criteria[ref].information]
            return sum(
                1
                for option in provider.supply(ref)
                if option is not mapping[ref] and all(r.constraint.allows(option.version) for r in wanted)
            )

        ranked = sorted(movable, key=lambda ref: (alternatives(ref) > 0, depth.get(ref, 0), ref), reverse=True)
        text = " -> ".join(f"{ref} {mapping[ref].version}" for ref in [*cycle, cycle[0]])
        points.append([(ref, mapping[ref].version, text) for ref in ranked])
    return points


def cycle_conflicts(
    mapping: dict[str, Candidate], criteria: Mapping[str, Any], nodes: Mapping[str, PackNode], result: Resolution
) -> set[str]:
    graph = {ref: {dep for dep, _ in c.dependencies} for ref, c in mapping.items() if c.origin != "installed"}
    _, cycles = topological_order(graph)
    blamed: set[str] = set()
    for cycle in cycles:
        text = " -> ".join(f"{ref} {mapping[ref].version}" for ref in [*cycle, cycle[0]])
        culprits: set[str] = set()
        for ref in cycle:
            culprits |= _batch_ancestors(mapping[ref], criteria, nodes, result.blocked)
        for ref in sorted(culprits - blamed):
            on_it = ref in cycle
            message = (
                f"{ref} is on a dependency cycle: {text}; packs that depend on each other cannot be installed "
                "in any order: remove one of the dependencies"
                if on_it
                else f"{ref} depends on packs that form a dependency cycle: {text}; remove one of the dependencies"
            )
            result.conflicts.append(
                Conflict(
                    pack_ref=ref,
                    error_code="DEPENDENCY_CYCLE",
                    message=message,
                    chain=[*cycle, cycle[0]],
                )
            )
        blamed |= culprits
    return blamed


def _batch_ancestors(
    candidate: Candidate, criteria: Mapping[str, Any], nodes: Mapping[str, PackNode], blocked: set[str]
) -> set[str]:
    """The nearest batch packs up the requirement graph from ``candidate`` (itself if it is one)."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = [candidate]
    while stack:
        current = stack.pop()
        if current.ref in seen:
            continue
        seen.add(current.ref)
        if current.origin == "batch":
            found.add(current.ref)
            continue
        criterion = criteria.get(current.ref)
        if criterion is None:
            continue
        stack.extend(info.parent for info in criterion.information if info.parent is not None)
    return found - blocked
