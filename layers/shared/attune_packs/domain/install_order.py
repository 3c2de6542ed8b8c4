"""The order packs are installed in: dependencies first, and the cycles that have no order.

Pure and small on purpose: the register stage orders its batch with it and imports nothing of the
resolver (a handler's cold start pays for what it imports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attune_packs.models import Conflict


def install_order(graph: dict[str, set[str]]) -> tuple[list[str], list[Conflict]]:
    """Dependencies first (only edges inside ``graph`` count); ties broken by ref. Packs on a
    cycle (a self-dependency included) and packs depending on them are reported, not ordered."""
    order, cycles = topological_order(graph)
    conflicts: list[Conflict] = []
    on_cycle: set[str] = set()
    for cycle in cycles:
        text = " -> ".join([*cycle, cycle[0]])
        on_cycle.update(cycle)
        for member in cycle:
            conflicts.append(
                Conflict(
                    pack_ref=member,
                    error_code="DEPENDENCY_CYCLE",
                    message=f"dependency cycle: {text}",
                    chain=[*cycle, cycle[0]],
                )
            )
    for ref in sorted(set(graph) - set(order) - on_cycle):
        conflicts.append(
            Conflict(
                pack_ref=ref,
                error_code="DEPENDENCY_CYCLE",
                message=f"{ref} depends on packs that are on a dependency cycle",
                chain=[ref, *sorted(d for d in graph[ref] if d in graph)],
            )
        )
    return order, conflicts


def topological_order(graph: Mapping[str, Iterable[str]]) -> tuple[list[str], list[list[str]]]:
    """Dependencies first (only edges inside ``graph`` count; a self-edge is a cycle); ties broken
    by ref. Returns the order of the packs not on or behind a cycle, and the cycles found."""
    inside = {ref: sorted({d for d in deps if d in graph}) for ref, deps in graph.items()}
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
    cycles: list[list[str]] = []
    on_cycle: set[str] = set()
    for ref in sorted(remaining):
        if ref in on_cycle:
            continue
        cycle = _find_cycle(ref, inside, remaining)
        if cycle and not on_cycle & set(cycle):
            on_cycle.update(cycle)
            cycles.append(cycle)
    return order, cycles


def _find_cycle(start: str, graph: Mapping[str, list[str]], remaining: set[str]) -> list[str]:
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
    cycle = path[position[node] :]
    # Start the cycle at its smallest ref so the same cycle always reads the same.
    first = cycle.index(min(cycle))
    return cycle[first:] + cycle[:first]
