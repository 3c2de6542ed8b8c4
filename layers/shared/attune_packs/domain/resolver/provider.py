"""The resolvelib provider: the candidates of each pack (batch, installed, registry versions the
platform admits), the sound pruning that removes versions no solution can use, and the reporter
that counts rounds and remembers who required what."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from resolvelib import AbstractProvider, BaseReporter
from resolvelib.structs import RequirementInformation

from attune_packs.domain.registry_index import RegistryCatalog
from attune_packs.domain.resolver.model import (
    Candidate,
    InstalledPack,
    PackNode,
    PlatformTarget,
    Requirement,
    ResolverLimits,
    dependencies_of,
    spec_text,
)
from attune_packs.domain.resolver.platform import entry_platform_problems
from attune_packs.domain.semver import Constraint, Version


class Thrashing(Exception):
    """The search backtracks far more than the packs it involves: switch to pruned search."""


class TooManyPacks(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class Provider(AbstractProvider):  # type: ignore[type-arg]
    """Candidates: the batch version (fixed); else the installed version (fixed unless ``force``,
    then preferred); else registry versions, newest first, minus those the platform excludes."""

    def __init__(
        self,
        batch: Mapping[str, PackNode],
        blocked: set[str],
        installed: Callable[[str], InstalledPack | None],
        catalog: Callable[[], RegistryCatalog],
        *,
        force: bool,
        target: PlatformTarget,
        limits: ResolverLimits,
        excluded: Mapping[str, Mapping[Version, str]],
    ) -> None:
        self.batch = batch
        self.excluded = excluded
        self.blocked = blocked
        self.installed = installed
        self.catalog = catalog
        self.force = force
        self.target = target
        self.limits = limits
        self._supply: dict[str, list[Candidate]] = {}
        self._touched: set[str] = set()
        # Registry versions ruled out: (candidate, error code, reason).
        self.rejected: dict[str, list[tuple[Candidate, str, str]]] = {}
        self.offered: dict[str, tuple[str, list[Version]]] = {}
        self._satisfied: dict[tuple[int, int], bool] = {}

    # supply ---------------------------------------------------------------------------------

    def supply(self, ref: str) -> list[Candidate]:
        """The candidates of ``ref`` the resolution may use (after :meth:`prune`)."""
        if ref not in self._touched:
            if len(self._touched) >= self.limits.max_packs:
                raise TooManyPacks(len(self._touched) + 1)
            self._touched.add(ref)
        return self._candidates(ref)

    def _candidates(self, ref: str) -> list[Candidate]:
        found = self._supply.get(ref)
        if found is not None:
            return found
        candidates: list[Candidate] = []
        node = self.batch.get(ref)
        installed = self.installed(ref)
        if node is not None and ref not in self.blocked:
            candidates.append(Candidate(ref, node.version, "batch", dependencies_of(ref, node.dependencies)))
        else:
            if installed is not None:
                deps = {k: v for k, v in installed.dependencies.items() if k != ref}
                candidates.append(Candidate(ref, installed.version, "installed", dependencies_of(ref, deps)))
            if node is None and (installed is None or self.force):
                candidates.extend(self._index_candidates(ref, installed))
        self._supply[ref] = candidates
        return candidates

    def _index_candidates(self, ref: str, installed: InstalledPack | None) -> list[Candidate]:
        found = self.catalog().lookup(ref)
        if found is None:
            return []
        location, versions = found
        self.offered[ref] = (location, [v for v, _ in versions])
        candidates = []
        for version, entry in versions:
            if installed is not None and version == installed.version:
                continue  # the installed candidate already stands for it
            candidate = Candidate(ref, version, "index", dependencies_of(ref, entry.dependencies), location, entry)
            cycle = self.excluded.get(ref, {}).get(version)
            problems = entry_platform_problems(entry, self.target)
            if ref in entry.dependencies:
                reason = f"it depends on itself ({ref} {entry.dependencies[ref]})"
                self.rejected.setdefault(ref, []).append((candidate, "DEPENDENCY_CYCLE", reason))
            elif cycle is not None:
                reason = f"it closes the cycle {cycle}"
                self.rejected.setdefault(ref, []).append((candidate, "DEPENDENCY_CYCLE", reason))
            elif problems:
                self.rejected.setdefault(ref, []).append((candidate, "PLATFORM_INCOMPATIBLE", ", ".join(problems)))
            else:
                candidates.append(candidate)
        return candidates

    def prune(self, roots: Sequence[str]) -> None:
        """Remove candidates that cannot be part of any solution, before resolvelib searches.

        Sound pruning only: (1) the roots are certainly installed, and so is every pack that all
        remaining candidates of a certain pack require; its versions are narrowed to those one of
        those candidates accepts; (2) a candidate with a dependency that no remaining version meets
        is removed. Repeated to a fixpoint. Conflicts between fixed packs then show at once instead
        of after resolvelib has tried every combination of the versions between them. Only
        registry versions are removed: the batch and kept installed packs stay, so resolvelib meets
        the conflict where it can explain it (at the requirement that cannot be met)."""
        self._supply.update(_Pruning(self, roots).run())

    def _unmet_reason(self, dep: str, constraint: Constraint) -> str:
        """Why no version of ``dep`` meets ``constraint``, one level deep."""
        reason = f"its dependency {dep} {spec_text(constraint)} cannot be met"
        for candidate, _, why in self.rejected.get(dep, []):
            if constraint.allows(candidate.version):
                return f"{reason} ({candidate.label}: {why})"
        fixed = self._supply.get(dep) or []
        if len(fixed) == 1 and fixed[0].origin == "installed":
            return f"{reason}: {fixed[0].label} is installed (install with force to change it)"
        if len(fixed) == 1 and fixed[0].origin == "batch":
            return f"{reason}: this installation brings {fixed[0].label}"
        if not fixed and dep not in self.offered:
            return f"{reason}: {dep} is not in any registry index"
        return reason

    def _reject(self, candidate: Candidate, reason: str) -> None:
        self.rejected.setdefault(candidate.ref, []).append((candidate, "DEPENDENCY_CONFLICT", reason))

    def touched_count(self) -> int:
        return len(self._touched)

    def fixed(self, ref: str) -> bool:
        """Whether ``ref`` has at most one candidate whatever happens (batch, or installed unforced)."""
        return len(self.supply(ref)) <= 1

    def _ok(self, constraint: Constraint, candidate: Candidate) -> bool:
        key = (id(constraint), id(candidate))
        result = self._satisfied.get(key)
        if result is None:
            result = self._satisfied[key] = constraint.allows(candidate.version)
        return result

    # resolvelib interface -------------------------------------------------------------------

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.ref

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Requirement, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Requirement, Candidate]],
    ) -> tuple[int, int, str]:
        in_causes = any(cause.requirement.ref == identifier for cause in backtrack_causes)
        return (0 if in_causes else 1, len(self.supply(identifier)), identifier)

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[Requirement, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[Requirement, Candidate]],
    ) -> Iterable[str]:
        # Packs with a single possible version go first, one at a time: pinning them can never
        # be a choice the resolver has to undo, and it surfaces their requirements early.
        identifiers = list(identifiers)
        for identifier in identifiers:
            if self.fixed(identifier):
                return [identifier]
        return identifiers

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        wanted = list(requirements[identifier])
        excluded = {id(c) for c in incompatibilities[identifier]}
        return [c for c in self.supply(identifier) if id(c) not in excluded and all(id(c) in r.allowed for r in wanted)]

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        return id(candidate) in requirement.allowed

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        return [self.requirement(ref, constraint, candidate) for ref, constraint in candidate.dependencies]

    def requirement(self, ref: str, constraint: Constraint, parent: Candidate | None) -> Requirement:
        """A requirement knowing which candidates it allows (resolvelib asks that very often)."""
        allowed = {id(c) for c in self.supply(ref) if self._ok(constraint, c)}
        return Requirement(ref, constraint, parent, allowed)


class _Pruning:
    """One pruning pass of :meth:`Provider.prune` over the packs reachable from the roots."""

    def __init__(self, provider: Provider, roots: Sequence[str]) -> None:
        self.provider = provider
        self.domains = self._reachable(roots)
        self.dependents = self._dependents()
        self.removed: set[int] = set()
        self.certain: set[str] = set()
        self.to_certify = deque(sorted(roots))
        self.shrunk: deque[str] = deque(sorted(self.domains))  # rule (2) looks at every pack once to start

    def _reachable(self, roots: Sequence[str]) -> dict[str, list[Candidate]]:
        """The candidates of every pack the roots can reach (up to the pack limit)."""
        domains: dict[str, list[Candidate]] = {}
        queue, seen = list(roots), set(roots)
        while queue:
            ref = queue.pop()
            domains[ref] = list(self.provider._candidates(ref))
            for candidate in domains[ref]:
                for dep, _ in candidate.dependencies:
                    if dep not in seen and len(seen) < self.provider.limits.max_packs:
                        seen.add(dep)
                        queue.append(dep)
        return domains

    def _dependents(self) -> dict[str, list[tuple[Candidate, Constraint]]]:
        """Who depends on each ref (only refs whose versions are known can rule a candidate out)."""
        dependents: dict[str, list[tuple[Candidate, Constraint]]] = {}
        for candidates in self.domains.values():
            for candidate in candidates:
                for dep, constraint in candidate.dependencies:
                    if dep in self.domains:
                        dependents.setdefault(dep, []).append((candidate, constraint))
        return dependents

    def run(self) -> dict[str, list[Candidate]]:
        """Apply both rules to a fixpoint; the candidates that remain, by ref."""
        while self.to_certify or self.shrunk:
            if self.shrunk:
                self._drop_unmet(self.shrunk.popleft())
                continue
            ref = self.to_certify.popleft()
            if ref not in self.certain:
                self.certain.add(ref)
                self._narrow_from(ref)
        return {ref: self._remaining(ref) for ref in self.domains}

    def _remaining(self, ref: str) -> list[Candidate]:
        return [c for c in self.domains[ref] if id(c) not in self.removed]

    def _remove(self, candidate: Candidate, reason: str) -> None:
        self.removed.add(id(candidate))
        self.provider._reject(candidate, reason)

    def _drop_unmet(self, dep: str) -> None:
        """Rule (2) after the versions of ``dep`` shrank: candidates needing a version of ``dep``
        that is no longer there are removed."""
        options = self._remaining(dep)
        removed, ok = self.removed, self.provider._ok  # hot loop: local names
        for candidate, constraint in self.dependents.get(dep, ()):
            if id(candidate) in removed or candidate.origin != "index":
                continue
            if not any(ok(constraint, o) for o in options):
                self._remove(candidate, self.provider._unmet_reason(dep, constraint))
                self.shrunk.append(candidate.ref)
        if dep in self.certain:
            self._narrow_from(dep)

    def _narrow_from(self, ref: str) -> None:
        """Rule (1) for a certain ``ref``: the packs all its versions require are certain too,
        and only versions one of its versions accepts remain."""
        candidates = self._remaining(ref)
        if not candidates:
            return
        shared = set.intersection(*({dep for dep, _ in c.dependencies} for c in candidates))
        removed, ok = self.removed, self.provider._ok  # hot loop: local names
        for dep in sorted(shared & self.domains.keys()):
            wanted = [(c, constraint) for c in candidates for d, constraint in c.dependencies if d == dep]
            before = len(removed)
            for option in self.domains[dep]:
                if id(option) in removed or option.origin != "index":
                    continue
                if not any(ok(constraint, option) for _, constraint in wanted):
                    self._remove(option, f"{wanted[0][0].label} requires {dep} {spec_text(wanted[0][1])}")
            if len(removed) > before:
                self.shrunk.append(dep)
            self.to_certify.append(dep)


class Reporter(BaseReporter):  # type: ignore[type-arg]
    """Counts rounds and remembers who required each pack (for explanations). With ``touched``,
    gives up (:class:`Thrashing`) once the rounds far exceed the packs involved: a search without
    conflicts needs about one round per pack."""

    def __init__(self, touched: Callable[[], int] | None = None, budget: tuple[int, float] = (0, 0.0)) -> None:
        self.rounds = 0
        self.touched = touched
        self.budget = budget
        self.required_by: dict[str, list[Requirement]] = {}

    def starting_round(self, index: int) -> None:
        self.rounds += 1
        if self.touched is not None and self.rounds > self.budget[0] + self.budget[1] * self.touched():
            raise Thrashing

    def adding_requirement(self, requirement: Requirement, parent: Candidate | None) -> None:
        self.required_by.setdefault(requirement.ref, []).append(requirement)
