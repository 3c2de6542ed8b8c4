"""The resolution loop: bounded searches (resolvelib alone, then pruned, then batch packs one at a
time), blocking the batch packs a conflict comes from and ruling registry versions out of cycles."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from resolvelib import ResolutionImpossible, ResolutionTooDeep
from resolvelib.resolvers import Resolution as ResolvelibRun

from attune_packs.domain.install_order import topological_order
from attune_packs.domain.registry_index import RegistryCatalog
from attune_packs.domain.resolver.cycles import cycle_choices, cycle_conflicts, with_exclusion
from attune_packs.domain.resolver.explanation import add_conflicts, explain
from attune_packs.domain.resolver.model import (
    Candidate,
    Choice,
    InstalledPack,
    PackNode,
    PlatformTarget,
    Resolution,
    ResolverLimits,
    constraint_of,
)
from attune_packs.domain.resolver.platform import platform_problems
from attune_packs.domain.resolver.provider import Provider, Reporter, Thrashing, TooManyPacks
from attune_packs.domain.semver import Version
from attune_packs.models import Conflict

# Attempts spent trying another version to rule out of a dependency cycle.
MAX_CYCLE_BRANCHES = 16
_DEFAULT_LIMITS = ResolverLimits()


def connected_mapping(mapping: Mapping[str, Any], criteria: Mapping[str, Any]) -> dict[str, Any]:
    """The pins that some requirement chain from the roots still reaches, found iteratively.

    resolvelib's own result builder walks parents recursively without remembering where it has been,
    so pins left behind by backtracking that require each other in a cycle recurse until
    ``RecursionError``; a breadth-first walk from the roots cannot."""
    key_of = {id(candidate): key for key, candidate in mapping.items()}
    children: dict[str | None, list[str]] = {}
    for key, criterion in criteria.items():
        for parent in criterion.iter_parent():
            parent_key = None if parent is None else key_of.get(id(parent), "")
            if parent_key != "":
                children.setdefault(parent_key, []).append(key)
    reached: set[str] = set()
    frontier: list[str | None] = [None]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in reached:
                reached.add(child)
                frontier.append(child)
    return {key: candidate for key, candidate in mapping.items() if key in reached}


def resolve(
    batch: Sequence[PackNode],
    *,
    installed: Callable[[str], InstalledPack | None],
    catalog: Callable[[], RegistryCatalog],
    force: bool = False,
    target: PlatformTarget,
    limits: ResolverLimits = _DEFAULT_LIMITS,
    blocked: Mapping[str, Conflict] | None = None,
) -> Resolution:
    """Choose versions for everything ``batch`` needs. ``blocked`` are batch packs the caller
    already refused (their conflicts are the caller's to report); packs requiring them can use an
    installed version that fits, nothing else."""
    nodes = {node.ref: node for node in batch}
    result = Resolution(blocked=set(blocked or {}))
    for node in batch:
        if node.ref in result.blocked:
            continue
        if node.ref in node.dependencies:
            result.blocked.add(node.ref)
            result.conflicts.append(
                Conflict(
                    pack_ref=node.ref,
                    error_code="DEPENDENCY_CYCLE",
                    message=f"{node.ref} {node.version} depends on itself (its dependencies list {node.ref} "
                    f"{node.dependencies[node.ref]}): remove {node.ref} from its own dependencies",
                    chain=[node.ref, node.ref],
                )
            )
            continue
        problems = platform_problems(
            platform_constraint=node.platform_constraint,
            python_constraint=node.python_constraint,
            nodejs_constraint=node.nodejs_constraint,
            target=target,
        )
        if problems:
            result.blocked.add(node.ref)
            result.conflicts.append(
                Conflict(
                    pack_ref=node.ref,
                    error_code="PLATFORM_INCOMPATIBLE",
                    message=f"{node.ref} {node.version} cannot be installed: " + "; ".join(problems),
                    chain=[f"{node.ref} {node.version}"],
                )
            )
    Search(nodes, result, installed=installed, catalog=catalog, force=force, target=target, limits=limits).run()
    return result


Outcome = tuple[str, Any]  # ("ok" | "impossible" | "thrash" | "deep" | "many", details)


class Search:
    """The resolution loop. It searches in up to three modes, each bounded:

    * ``search``: resolvelib alone (the most precise explanations);
    * ``pruned``: when ``search`` backtracks far more than the packs involved, versions that can
      be in no solution are pruned first (:meth:`~attune_packs.domain.resolver.provider.Provider.prune`);
    * ``isolate``: when even that thrashes, batch packs join one at a time, and a pack that cannot
      join the ones already resolved is blocked alone.

    A conflict blocks the batch packs it comes from and the search goes on without them; a
    registry version that closes a dependency cycle is ruled out (which one is itself a choice the
    search backtracks over)."""

    def __init__(
        self,
        nodes: Mapping[str, PackNode],
        result: Resolution,
        *,
        installed: Callable[[str], InstalledPack | None],
        catalog: Callable[[], RegistryCatalog],
        force: bool,
        target: PlatformTarget,
        limits: ResolverLimits,
    ) -> None:
        self.nodes = nodes
        self.result = result
        self.installed = installed
        self.catalog = catalog
        self.force = force
        self.target = target
        self.limits = limits
        self.mode = "search"
        self.rounds_left = limits.max_rounds
        # Registry versions that closed a dependency cycle (ref -> version -> the cycle), and the
        # choices made: (exclusions before the choice, options left).
        self.excluded: dict[str, dict[Version, str]] = {}
        self.choices: list[tuple[dict[str, dict[Version, str]], list[tuple[str, Version, str]]]] = []
        self.branches = 0

    # one resolvelib run --------------------------------------------------------------------

    def _attempt(self, roots: Sequence[PackNode]) -> Outcome:
        result = self.result
        result.attempts += 1
        provider = Provider(
            self.nodes,
            result.blocked,
            self.installed,
            self.catalog,
            force=self.force,
            target=self.target,
            limits=self.limits,
            excluded=self.excluded,
        )
        budget = self.limits.search_thrash if self.mode == "search" else self.limits.pruned_thrash
        reporter = Reporter(provider.touched_count, budget)
        try:
            if self.mode != "search":
                provider.prune([n.ref for n in roots])
            requirements = [provider.requirement(n.ref, constraint_of(f"={n.version}"), None) for n in roots]
            state = ResolvelibRun(provider, reporter).resolve(requirements, max_rounds=max(self.rounds_left, 1))
        except ResolutionImpossible as exc:
            return "impossible", (list(exc.causes), provider, reporter)
        except Thrashing:
            return "thrash", None
        except ResolutionTooDeep:
            return "deep", None
        except TooManyPacks as exc:
            return "many", exc.count
        finally:
            result.rounds += reporter.rounds
            self.rounds_left -= reporter.rounds
        return "ok", (connected_mapping(state.mapping, state.criteria), state.criteria, provider)

    def _solve(self, roots: Sequence[PackNode]) -> Outcome:
        """Attempts until one resolves without registry-made cycles, or fails."""
        while True:
            kind, details = self._attempt(roots)
            if kind == "impossible":
                while self.choices and not self.choices[-1][1]:
                    self.choices.pop()
                if self.choices and self.branches < MAX_CYCLE_BRANCHES and self.rounds_left > 0:
                    # Ruling that version out of a cycle made things impossible: rule out another.
                    self.branches += 1
                    before, options = self.choices[-1]
                    self.excluded = with_exclusion(before, options.pop(0))
                    continue
                self._forget_cycles()
                return kind, details
            if kind != "ok":
                return kind, details
            mapping, criteria, provider = details
            points = cycle_choices(mapping, criteria, provider, [n for n in roots if n.ref in mapping])
            if not points:
                return kind, details
            for options in points:  # try again without registry versions that closed a cycle
                before = self.excluded
                self.excluded = with_exclusion(before, options.pop(0))
                self.choices.append((before, options))

    def _forget_cycles(self) -> None:
        self.excluded, self.choices = {}, []

    def _roots(self) -> list[PackNode]:
        return [node for ref, node in self.nodes.items() if ref not in self.result.blocked]

    # the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        result = self.result
        while True:
            roots = self._roots()
            kind, details = self._solve(roots)
            if kind == "ok":
                mapping, criteria, provider = details
                cycles = cycle_conflicts(mapping, criteria, self.nodes, result)
                if cycles:
                    result.blocked |= cycles
                    self._forget_cycles()
                    continue
                result.pruned = self.mode != "search"
                _finish(result, mapping, criteria, provider)
                return
            if kind == "impossible":
                result.blocked |= self._blame(details, roots)
                continue
            if kind == "thrash" and self.mode == "search":
                # Explanations are most precise without pruning, so that is the first try; a
                # search that backtracks this much hunts for combinations pruning rules out at once.
                self.mode = "pruned"
                continue
            if kind == "thrash":
                self.mode = "isolate"
                self._isolate(roots)
                return
            self._give_up(kind, details, roots)
            return

    def _blame(self, details: Any, roots: Sequence[PackNode]) -> set[str]:
        causes, provider, reporter = details
        result = self.result
        blamed = explain(causes, provider, reporter, self.nodes, result)
        if not blamed:  # never loop without progress: the causes reach no batch pack
            blamed = {n.ref for n in roots}
            described = sorted({c.requirement.describe() for c in causes})
            add_conflicts(
                result,
                blamed,
                "DEPENDENCY_CONFLICT",
                f"the dependencies of this installation cannot be satisfied together: {'; '.join(described)}",
                described,
                set(),
            )
        return blamed

    def _give_up(self, kind: str, details: Any, roots: Sequence[PackNode]) -> None:
        result = self.result
        if kind == "many":
            reason = (
                f"the dependencies involve more than {self.limits.max_packs} packs (the resolver's limit); "
                "install fewer packs at once"
            )
            _limit(result, roots, reason, count=details)
        else:
            _limit(result, roots, _rounds_message(self.limits))
        result.blocked |= {n.ref for n in roots}

    def _isolate(self, roots: Sequence[PackNode]) -> None:
        """Batch packs join one at a time; one that cannot join is blocked alone. A pass is
        repeated (without the packs blocked meanwhile) when a pack accepted early relied on a
        batch pack blocked later."""
        result = self.result
        pending = list(roots)
        while True:
            accepted: list[PackNode] = []
            last: Outcome = ("ok", ({}, {}, None))
            for node in pending:
                if node.ref in result.blocked:
                    continue
                kind, details = self._solve([*accepted, node])
                if kind == "ok":
                    mapping, criteria, provider = details
                    before = len(result.conflicts)
                    if cycle_conflicts(mapping, criteria, self.nodes, result):
                        self._keep_only(before, node)
                        self._forget_cycles()
                        continue
                    accepted.append(node)
                    last = kind, details
                elif kind == "impossible":
                    before = len(result.conflicts)
                    self._blame(details, [*accepted, node])
                    self._keep_only(before, node)
                elif kind == "thrash":
                    _limit(
                        result,
                        [node],
                        "it could not be resolved together with the other packs of this installation within the "
                        "resolver's budget; install it on its own",
                    )
                    result.blocked.add(node.ref)
                else:
                    self._give_up(kind, details, [n for n in pending if n.ref not in result.blocked])
                    return
            mapping, criteria, provider = last[1]
            if any(c.origin == "batch" and ref in result.blocked for ref, c in mapping.items()):
                pending = accepted
                continue
            result.pruned = True
            if provider is not None:
                _finish(result, mapping, criteria, provider)
            return

    def _keep_only(self, start: int, node: PackNode) -> None:
        """Keep, of the conflicts reported since ``start``, those of ``node`` (the pack trying to
        join); the packs already resolved stay. ``node`` is blocked."""
        result = self.result
        new = result.conflicts[start:]
        own = [c for c in new if c.pack_ref == node.ref]
        if not own and new:
            own = [new[0].model_copy(update={"pack_ref": node.ref})]
        result.conflicts[start:] = own
        result.blocked.add(node.ref)


def _rounds_message(limits: ResolverLimits) -> str:
    return (
        f"the resolver gave up after {limits.max_rounds} rounds of trying version combinations; "
        "pin the dependencies more tightly (exact versions of the packs you install)"
    )


def _limit(result: Resolution, roots: Sequence[PackNode], reason: str, count: int | None = None) -> None:
    for node in roots:
        if node.ref in result.blocked:
            continue
        result.conflicts.append(
            Conflict(
                pack_ref=node.ref,
                error_code="DEPENDENCY_LIMIT",
                message=f"{node.ref} {node.version} cannot be resolved: {reason}",
                chain=[f"{node.ref} {node.version}"] + ([f"{count} packs"] if count else []),
            )
        )


def _finish(result: Resolution, mapping: dict[str, Candidate], criteria: Mapping[str, Any], provider: Provider) -> None:
    graph: dict[str, set[str]] = {}
    for ref, candidate in mapping.items():
        if candidate.origin == "installed":
            result.kept_installed[ref] = candidate.version
            continue
        graph[ref] = {dep for dep, _ in candidate.dependencies}
        if candidate.origin != "index":
            continue
        assert candidate.index is not None and candidate.entry is not None
        parents = sorted({info.parent.label for info in criteria[ref].information if info.parent is not None})
        replaced = provider.installed(ref)
        result.chosen[ref] = Choice(
            ref=ref,
            version=candidate.version,
            index=candidate.index,
            entry=candidate.entry,
            required_by=tuple(parents),
            installed_version=replaced.version if replaced is not None else None,
        )
    order, _ = topological_order(graph)
    result.install_order = order
