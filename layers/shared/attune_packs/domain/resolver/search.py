"""Version resolution for pack dependencies, with backtracking (``resolvelib``, the resolver pip uses).

What the resolver is given:

* the **batch**: packs this installation brings (their archives are stored); each is fixed at its
  version and is a root of the resolution;
* the **installed** packs (the registry table's ``CURRENT`` items: ``version`` and
  ``dependencies``), looked up by ref; they are kept as they are, unless ``force`` allows
  upgrading or changing them to a registry version;
* the **registry catalog**: the ordered indices, the first listing a ref winning; an entry's
  optional ``dependencies`` let the resolver look ahead before anything is downloaded;
* the **platform**: the Attune / StackStorm version packs are installed into, and the Python and
  Node.js versions environments are built for.

What it answers (:class:`Resolution`): the version chosen for every pack that has to be fetched
and the index entry it comes from, an install order (dependencies first) over the batch and the
chosen packs, and the conflicts, each with the chain of requirements leading to it and a message
a person can act on. A conflict blocks the batch packs it comes from (the nearest batch packs up
the requirement chain); the resolution is then run again without them, so one impossible pack
never stops the others. Cycles are conflicts too (install order needs dependencies first), but a
registry version that closes one is first ruled out in favour of another version.

Every search is bounded (see :class:`_Search`): resolvelib alone first; if it backtracks far more
than the packs involved, again after pruning versions that can be in no solution; if even that
thrashes, batch packs join one at a time. ``ResolverLimits`` caps packs and rounds overall
(``DEPENDENCY_LIMIT``).

Pure: no AWS, no network. The caller passes look-up functions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PythonVersion
from resolvelib import AbstractProvider, BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver
from resolvelib.structs import RequirementInformation

from attune_packs.domain.registry_index import IndexEntry, RegistryCatalog
from attune_packs.domain.semver import Constraint, Version, cached_constraint
from attune_packs.errors import ManifestError
from attune_packs.models import Conflict

__all__ = [
    "Choice",
    "InstalledPack",
    "PackNode",
    "PlatformTarget",
    "Resolution",
    "ResolverLimits",
    "platform_problems",
    "resolve",
    "topological_order",
]

Origin = Literal["batch", "installed", "index"]
# Attempts spent trying another version to rule out of a dependency cycle.
MAX_CYCLE_BRANCHES = 16


def constraint_of(text: str) -> Constraint:
    """Parsed constraints are shared: equal texts give the same object (cheap to compare and cache)."""
    return cached_constraint(text)


# --- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformTarget:
    """What packs are installed into. ``python`` is MAJOR.MINOR, ``nodejs`` a major version."""

    version: Version
    python: str = "3.12"
    nodejs: str = "20"


@dataclass(frozen=True)
class ResolverLimits:
    max_packs: int = 1000  # distinct packs a resolution may involve
    max_rounds: int = 20_000  # resolvelib rounds (one pin or backtrack each), over all attempts
    # A search is abandoned for the next mode (see _Search) after ``rounds + factor * packs
    # involved`` rounds: a search without conflicts needs about one round per pack.
    search_thrash: tuple[int, float] = (50, 1.25)
    pruned_thrash: tuple[int, float] = (100, 2.0)


@dataclass(frozen=True)
class PackNode:
    """A pack whose version and dependencies are known (a batch pack)."""

    ref: str
    version: Version
    dependencies: Mapping[str, str] = field(default_factory=dict)
    platform_constraint: str | None = None  # attune_version / stackstorm_version
    python_constraint: str | None = None
    nodejs_constraint: str | None = None
    source: str | None = None  # the archive it was read from


@dataclass(frozen=True)
class InstalledPack:
    ref: str
    version: Version
    dependencies: Mapping[str, str] = field(default_factory=dict)


# --- outputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A pack to fetch: the version chosen and the index entry it comes from."""

    ref: str
    version: Version
    index: str
    entry: IndexEntry
    required_by: tuple[str, ...]
    installed_version: Version | None = None  # set when force replaces an installed version


@dataclass
class Resolution:
    chosen: dict[str, Choice] = field(default_factory=dict)
    kept_installed: dict[str, Version] = field(default_factory=dict)
    install_order: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    rounds: int = 0
    attempts: int = 0
    pruned: bool = False  # the search needed pruning (conflicts are then explained one level deep)

    def version_of(self, ref: str, batch: Mapping[str, PackNode]) -> Version | None:
        if ref in self.chosen:
            return self.chosen[ref].version
        if ref in batch and ref not in self.blocked:
            return batch[ref].version
        return self.kept_installed.get(ref)


# --- platform ------------------------------------------------------------------------------------


def _python_allows(spec: str, python: str) -> bool:
    """Whether a declared Python constraint (``3``, ``2 || 3``, ``>=3.10``, PEP 440 ``~=3.10``)
    admits some release of the MAJOR.MINOR ``python``."""
    try:
        return Constraint.parse(spec).intersects(Constraint.parse(python))
    except ManifestError:
        pass
    try:
        return SpecifierSet(spec).contains(PythonVersion(python), prereleases=True) or SpecifierSet(spec).contains(
            PythonVersion(f"{python}.0"), prereleases=True
        )
    except (InvalidSpecifier, InvalidVersion):
        return False


def _runtime_allows(spec: str, version: str) -> bool:
    try:
        return Constraint.parse(spec).intersects(Constraint.parse(version))
    except ManifestError:
        return False


def platform_problems(
    *,
    platform_constraint: str | None,
    python_constraint: str | None,
    nodejs_constraint: str | None,
    target: PlatformTarget,
) -> list[str]:
    """Why a pack cannot run on ``target`` (empty when it can)."""
    problems = []
    if platform_constraint:
        try:
            allowed = Constraint.parse(platform_constraint).allows(target.version)
        except ManifestError:
            allowed = False
        if not allowed:
            problems.append(
                f"it requires Attune/StackStorm {platform_constraint}, but this installer targets {target.version}"
            )
    if python_constraint and not _python_allows(python_constraint, target.python):
        problems.append(
            f"it declares Python {python_constraint}, but environments are built for Python {target.python}"
        )
    if nodejs_constraint and not _runtime_allows(nodejs_constraint, target.nodejs):
        problems.append(
            f"it declares Node.js {nodejs_constraint}, but environments are built for Node.js {target.nodejs}"
        )
    return problems


def _entry_platform(entry: IndexEntry, target: PlatformTarget) -> list[str]:
    """Platform problems of an index entry, from the pack.yaml fields an index may copy."""
    extra: dict[str, Any] = entry.model_extra or {}
    platform = extra.get("attune_version") or extra.get("stackstorm_version")
    python_versions = extra.get("python_versions")
    runtime = extra.get("runtime_deps") if isinstance(extra.get("runtime_deps"), dict) else {}
    python = runtime.get("python")
    if python is None and isinstance(python_versions, list) and python_versions:
        python = " || ".join(str(v) for v in python_versions)
    nodejs = runtime.get("nodejs") or runtime.get("node")
    return platform_problems(
        platform_constraint=str(platform) if platform is not None else None,
        python_constraint=str(python) if python is not None else None,
        nodejs_constraint=str(nodejs) if nodejs is not None else None,
        target=target,
    )


# --- resolvelib model ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Candidate:
    ref: str
    version: Version
    origin: Origin
    dependencies: tuple[tuple[str, Constraint], ...]
    index: str | None = None
    entry: IndexEntry | None = None

    @property
    def label(self) -> str:
        return f"{self.ref} {self.version}"

    def __repr__(self) -> str:
        return f"<{self.label} ({self.origin})>"


@dataclass(eq=False)
class _Requirement:
    ref: str
    constraint: Constraint
    parent: _Candidate | None  # None: a root (a batch pack requiring itself at its version)
    allowed: set[int] = field(default_factory=set)  # ids of the candidates of ref it allows

    def describe(self) -> str:
        if self.parent is None:
            return f"this installation brings {self.ref} {self.constraint}"
        return f"{self.parent.label} requires {self.ref} {_spec(self.constraint)}"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _spec(constraint: Constraint) -> str:
    text = str(constraint)
    return "(any version)" if text == "*" else text


class _Thrashing(Exception):
    """The search backtracks far more than the packs it involves: switch to pruned search."""


class _TooManyPacks(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _dependencies(ref: str, raw: Mapping[str, str]) -> tuple[tuple[str, Constraint], ...]:
    deps = []
    for dep_ref, spec in raw.items():
        try:
            deps.append((str(dep_ref), constraint_of(str(spec))))
        except ManifestError:
            # Recorded dependencies were validated when they were written; an unreadable one is
            # not enforced here (registration checks installed dependencies again).
            continue
    return tuple(sorted(deps, key=lambda d: d[0]))


class _Provider(AbstractProvider):  # type: ignore[type-arg]
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
        self._supply: dict[str, list[_Candidate]] = {}
        self._touched: set[str] = set()
        # Registry versions ruled out: (candidate, error code, reason).
        self.rejected: dict[str, list[tuple[_Candidate, str, str]]] = {}
        self.offered: dict[str, tuple[str, list[Version]]] = {}
        self._satisfied: dict[tuple[int, int], bool] = {}

    # supply ---------------------------------------------------------------------------------

    def supply(self, ref: str) -> list[_Candidate]:
        """The candidates of ``ref`` the resolution may use (after :meth:`prune`)."""
        if ref not in self._touched:
            if len(self._touched) >= self.limits.max_packs:
                raise _TooManyPacks(len(self._touched) + 1)
            self._touched.add(ref)
        return self._candidates(ref)

    def _candidates(self, ref: str) -> list[_Candidate]:
        found = self._supply.get(ref)
        if found is not None:
            return found
        candidates: list[_Candidate] = []
        node = self.batch.get(ref)
        installed = self.installed(ref)
        if node is not None and ref not in self.blocked:
            candidates.append(_Candidate(ref, node.version, "batch", _dependencies(ref, node.dependencies)))
        else:
            if installed is not None:
                deps = {k: v for k, v in installed.dependencies.items() if k != ref}
                candidates.append(_Candidate(ref, installed.version, "installed", _dependencies(ref, deps)))
            if node is None and (installed is None or self.force):
                candidates.extend(self._index_candidates(ref, installed))
        self._supply[ref] = candidates
        return candidates

    def _index_candidates(self, ref: str, installed: InstalledPack | None) -> list[_Candidate]:
        found = self.catalog().lookup(ref)
        if found is None:
            return []
        location, versions = found
        self.offered[ref] = (location, [v for v, _ in versions])
        candidates = []
        for version, entry in versions:
            if installed is not None and version == installed.version:
                continue  # the installed candidate already stands for it
            candidate = _Candidate(ref, version, "index", _dependencies(ref, entry.dependencies), location, entry)
            cycle = self.excluded.get(ref, {}).get(version)
            problems = _entry_platform(entry, self.target)
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
        domains: dict[str, list[_Candidate]] = {}
        queue, seen = list(roots), set(roots)
        while queue:
            ref = queue.pop()
            domains[ref] = list(self._candidates(ref))
            for candidate in domains[ref]:
                for dep, _ in candidate.dependencies:
                    if dep not in seen and len(seen) < self.limits.max_packs:
                        seen.add(dep)
                        queue.append(dep)
        # Who depends on each ref (only refs whose versions are known can rule a candidate out).
        dependents: dict[str, list[tuple[_Candidate, Constraint]]] = {}
        for candidates in domains.values():
            for candidate in candidates:
                for dep, constraint in candidate.dependencies:
                    if dep in domains:
                        dependents.setdefault(dep, []).append((candidate, constraint))
        removed: set[int] = set()
        certain: set[str] = set()
        to_certify = deque(sorted(roots))
        shrunk: deque[str] = deque(sorted(domains))  # rule (2) looks at every pack once to start

        def remove(candidate: _Candidate, reason: str) -> None:
            removed.add(id(candidate))
            self._reject(candidate, reason)

        def narrow_from(ref: str) -> None:
            """Rule (1) for a certain ``ref``: the packs all its versions require are certain too,
            and only versions one of its versions accepts remain."""
            candidates = [c for c in domains[ref] if id(c) not in removed]
            if not candidates:
                return
            shared = set.intersection(*({dep for dep, _ in c.dependencies} for c in candidates))
            for dep in sorted(shared & domains.keys()):
                wanted = [(c, constraint) for c in candidates for d, constraint in c.dependencies if d == dep]
                before = len(removed)
                for option in domains[dep]:
                    if id(option) in removed or option.origin != "index":
                        continue
                    if not any(self._ok(constraint, option) for _, constraint in wanted):
                        remove(option, f"{wanted[0][0].label} requires {dep} {_spec(wanted[0][1])}")
                if len(removed) > before:
                    shrunk.append(dep)
                to_certify.append(dep)

        while to_certify or shrunk:
            if shrunk:
                dep = shrunk.popleft()
                options = [o for o in domains[dep] if id(o) not in removed]
                # Rule (2): candidates needing a version of dep that is no longer there.
                for candidate, constraint in dependents.get(dep, ()):
                    if id(candidate) in removed or candidate.origin != "index":
                        continue
                    if not any(self._ok(constraint, o) for o in options):
                        remove(candidate, self._unmet_reason(dep, constraint))
                        shrunk.append(candidate.ref)
                if dep in certain:
                    narrow_from(dep)
                continue
            ref = to_certify.popleft()
            if ref not in certain:
                certain.add(ref)
                narrow_from(ref)
        for ref, candidates in domains.items():
            self._supply[ref] = [c for c in candidates if id(c) not in removed]

    def _unmet_reason(self, dep: str, constraint: Constraint) -> str:
        """Why no version of ``dep`` meets ``constraint``, one level deep."""
        reason = f"its dependency {dep} {_spec(constraint)} cannot be met"
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

    def _reject(self, candidate: _Candidate, reason: str) -> None:
        self.rejected.setdefault(candidate.ref, []).append((candidate, "DEPENDENCY_CONFLICT", reason))

    def touched_count(self) -> int:
        return len(self._touched)

    def fixed(self, ref: str) -> bool:
        """Whether ``ref`` has at most one candidate whatever happens (batch, or installed unforced)."""
        return len(self.supply(ref)) <= 1

    def _ok(self, constraint: Constraint, candidate: _Candidate) -> bool:
        key = (id(constraint), id(candidate))
        result = self._satisfied.get(key)
        if result is None:
            result = self._satisfied[key] = constraint.allows(candidate.version)
        return result

    # resolvelib interface -------------------------------------------------------------------

    def identify(self, requirement_or_candidate: _Requirement | _Candidate) -> str:
        return requirement_or_candidate.ref

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Candidate],
        candidates: Mapping[str, Iterator[_Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[_Requirement, _Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[_Requirement, _Candidate]],
    ) -> tuple[int, int, str]:
        in_causes = any(cause.requirement.ref == identifier for cause in backtrack_causes)
        return (0 if in_causes else 1, len(self.supply(identifier)), identifier)

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, _Candidate],
        candidates: Mapping[str, Iterator[_Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[_Requirement, _Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[_Requirement, _Candidate]],
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
        requirements: Mapping[str, Iterator[_Requirement]],
        incompatibilities: Mapping[str, Iterator[_Candidate]],
    ) -> list[_Candidate]:
        wanted = list(requirements[identifier])
        excluded = {id(c) for c in incompatibilities[identifier]}
        return [
            c
            for c in self.supply(identifier)
            if id(c) not in excluded and all(id(c) in r.allowed for r in wanted)
        ]

    def is_satisfied_by(self, requirement: _Requirement, candidate: _Candidate) -> bool:
        return id(candidate) in requirement.allowed

    def get_dependencies(self, candidate: _Candidate) -> list[_Requirement]:
        return [self.requirement(ref, constraint, candidate) for ref, constraint in candidate.dependencies]

    def requirement(self, ref: str, constraint: Constraint, parent: _Candidate | None) -> _Requirement:
        """A requirement knowing which candidates it allows (resolvelib asks that very often)."""
        allowed = {id(c) for c in self.supply(ref) if self._ok(constraint, c)}
        return _Requirement(ref, constraint, parent, allowed)


class _Reporter(BaseReporter):  # type: ignore[type-arg]
    """Counts rounds and remembers who required each pack (for explanations). With ``touched``,
    gives up (:class:`_Thrashing`) once the rounds far exceed the packs involved: a search without
    conflicts needs about one round per pack."""

    def __init__(self, touched: Callable[[], int] | None = None, budget: tuple[int, float] = (0, 0.0)) -> None:
        self.rounds = 0
        self.touched = touched
        self.budget = budget
        self.required_by: dict[str, list[_Requirement]] = {}

    def starting_round(self, index: int) -> None:
        self.rounds += 1
        if self.touched is not None and self.rounds > self.budget[0] + self.budget[1] * self.touched():
            raise _Thrashing

    def adding_requirement(self, requirement: _Requirement, parent: _Candidate | None) -> None:
        self.required_by.setdefault(requirement.ref, []).append(requirement)


# --- the resolution loop -------------------------------------------------------------------------


def resolve(
    batch: Sequence[PackNode],
    *,
    installed: Callable[[str], InstalledPack | None],
    catalog: Callable[[], RegistryCatalog],
    force: bool = False,
    target: PlatformTarget,
    limits: ResolverLimits = ResolverLimits(),
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
    _Search(nodes, result, installed=installed, catalog=catalog, force=force, target=target, limits=limits).run()
    return result


Outcome = tuple[str, Any]  # ("ok" | "impossible" | "thrash" | "deep" | "many", details)


class _Search:
    """The resolution loop. It searches in up to three modes, each bounded:

    * ``search``: resolvelib alone (the most precise explanations);
    * ``pruned``: when ``search`` backtracks far more than the packs involved, versions that can
      be in no solution are pruned first (:meth:`_Provider.prune`);
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
        provider = _Provider(
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
        reporter = _Reporter(provider.touched_count, budget)
        try:
            if self.mode != "search":
                provider.prune([n.ref for n in roots])
            requirements = [provider.requirement(n.ref, constraint_of(f"={n.version}"), None) for n in roots]
            state = Resolver(provider, reporter).resolve(requirements, max_rounds=max(self.rounds_left, 1))
        except ResolutionImpossible as exc:
            return "impossible", (list(exc.causes), provider, reporter)
        except _Thrashing:
            return "thrash", None
        except ResolutionTooDeep:
            return "deep", None
        except _TooManyPacks as exc:
            return "many", exc.count
        finally:
            result.rounds += reporter.rounds
            self.rounds_left -= reporter.rounds
        return "ok", (dict(state.mapping), state.criteria, provider)

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
                    self.excluded = _with_exclusion(before, options.pop(0))
                    continue
                self._forget_cycles()
                return kind, details
            if kind != "ok":
                return kind, details
            mapping, criteria, provider = details
            points = _cycle_choices(mapping, criteria, provider, [n for n in roots if n.ref in mapping])
            if not points:
                return kind, details
            for options in points:  # try again without registry versions that closed a cycle
                before = self.excluded
                self.excluded = _with_exclusion(before, options.pop(0))
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
                cycles = _cycle_conflicts(mapping, criteria, self.nodes, result)
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
        blamed = _explain(causes, provider, reporter, self.nodes, result)
        if not blamed:  # never loop without progress: the causes reach no batch pack
            blamed = {n.ref for n in roots}
            described = sorted({c.requirement.describe() for c in causes})
            _conflict(
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
                    if _cycle_conflicts(mapping, criteria, self.nodes, result):
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


def _finish(
    result: Resolution, mapping: dict[str, _Candidate], criteria: Mapping[str, Any], provider: _Provider
) -> None:
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


# --- cycles and order ----------------------------------------------------------------------------


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


def _with_exclusion(
    excluded: Mapping[str, Mapping[Version, str]], option: tuple[str, Version, str]
) -> dict[str, dict[Version, str]]:
    ref, version, text = option
    updated = {key: dict(value) for key, value in excluded.items()}
    updated.setdefault(ref, {})[version] = text
    return updated


def _cycle_choices(
    mapping: Mapping[str, _Candidate],
    criteria: Mapping[str, Any],
    provider: _Provider,
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


def _cycle_conflicts(
    mapping: dict[str, _Candidate], criteria: Mapping[str, Any], nodes: Mapping[str, PackNode], result: Resolution
) -> set[str]:
    graph = {
        ref: {dep for dep, _ in c.dependencies} for ref, c in mapping.items() if c.origin != "installed"
    }
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
    candidate: _Candidate, criteria: Mapping[str, Any], nodes: Mapping[str, PackNode], blocked: set[str]
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


# --- explaining an impossible resolution ---------------------------------------------------------


def _chain_to(requirement: _Requirement, reporter: _Reporter, nodes: Mapping[str, PackNode]) -> list[str]:
    """One chain of requirements from a batch pack down to ``requirement``, as sentences."""
    hops = [requirement.describe()]
    current = requirement.parent
    seen: set[str] = set()
    while current is not None and current.origin != "batch" and current.ref not in seen:
        seen.add(current.ref)
        reasons = [r for r in reporter.required_by.get(current.ref, []) if r.constraint.allows(current.version)]
        reason = next((r for r in reasons if r.parent is not None), None)
        if reason is None:
            break
        hops.append(reason.describe())
        current = reason.parent
    return list(reversed(hops))


def _culprits(requirement: _Requirement, reporter: _Reporter, blocked: set[str]) -> set[str]:
    """The nearest batch packs whose requirements lead to ``requirement``."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = [requirement.parent]
    while stack:
        current = stack.pop()
        if current is None or current.ref in seen:
            continue
        seen.add(current.ref)
        if current.origin == "batch":
            found.add(current.ref)
            continue
        for reason in reporter.required_by.get(current.ref, []):
            if reason.constraint.allows(current.version):
                stack.append(reason.parent)
    return found - blocked


def _offered_text(provider: _Provider, ref: str) -> str:
    location, versions = provider.offered.get(ref, ("", []))
    if not versions:
        return ""
    shown = ", ".join(str(v) for v in reversed(versions[:12]))
    more = f" and {len(versions) - 12} older" if len(versions) > 12 else ""
    return f"registry {location} offers {ref} {shown}{more}"


def _explain(
    causes: list[RequirementInformation[_Requirement, _Candidate]],
    provider: _Provider,
    reporter: _Reporter,
    nodes: Mapping[str, PackNode],
    result: Resolution,
) -> set[str]:
    """Turn resolvelib's causes into conflicts; return the batch packs to block."""
    by_ref: dict[str, list[_Requirement]] = {}
    for cause in causes:
        by_ref.setdefault(cause.requirement.ref, []).append(cause.requirement)
    blamed: set[str] = set()
    for ref, requirements in by_ref.items():
        unique = list({(id(r.constraint), r.parent.label if r.parent else ""): r for r in requirements}.values())
        blamed |= _explain_one(ref, unique, provider, reporter, nodes, result)
    return blamed


def _conflict(
    result: Resolution, culprits: set[str], code: str, message: str, chain: list[str], already: set[str]
) -> None:
    for ref in sorted(culprits - already):
        result.conflicts.append(Conflict(pack_ref=ref, error_code=code, message=message, chain=chain))


def _explain_one(
    ref: str,
    requirements: list[_Requirement],
    provider: _Provider,
    reporter: _Reporter,
    nodes: Mapping[str, PackNode],
    result: Resolution,
) -> set[str]:
    wanted = [r for r in requirements if r.parent is not None]
    blocked = result.blocked
    installed = provider.installed(ref)
    node = nodes.get(ref)
    blamed: set[str] = set()

    def requirers_of(reqs: Iterable[_Requirement]) -> set[str]:
        found: set[str] = set()
        for r in reqs:
            found |= _culprits(r, reporter, blocked)
        return found

    # The batch brings ref (fixed): whoever excludes its version is at fault.
    if node is not None and ref not in blocked:
        failing = [r for r in wanted if not r.constraint.allows(node.version)]
        for r in failing:
            culprits = _culprits(r, reporter, blocked)
            chain = [*_chain_to(r, reporter, nodes), f"this installation brings {ref} {node.version}"]
            _conflict(
                result,
                culprits,
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but this installation brings {ref} {node.version}: install a version of {ref} "
                f"that satisfies {_spec(r.constraint)}, or a version of {r.parent.ref if r.parent else ref} "
                f"that accepts {ref} {node.version}",
                chain,
                blamed,
            )
            blamed |= culprits
        if blamed:
            return blamed
    # A batch pack that cannot be installed: only an installed version that fits can stand in.
    if node is not None and ref in blocked:
        for r in wanted:
            if installed is not None and r.constraint.allows(installed.version):
                continue
            culprits = _culprits(r, reporter, blocked)
            have = f"; {ref} {installed.version} is installed but does not fit" if installed else ""
            _conflict(
                result,
                culprits,
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but {ref} {node.version} from this installation cannot be installed (see its "
                f"own conflict){have}",
                [*_chain_to(r, reporter, nodes), f"{ref} {node.version} is blocked"],
                blamed,
            )
            blamed |= culprits
        if blamed:
            return blamed
    # Installed and not to be changed.
    if installed is not None and (node is None or ref in blocked) and not provider.force:
        failing = [r for r in wanted if not r.constraint.allows(installed.version)]
        for r in failing:
            culprits = _culprits(r, reporter, blocked)
            fitting = _fitting_in_catalog(provider, ref, r.constraint)
            upgrade = f" (the registry offers {', '.join(reversed(fitting[:5]))})" if fitting else ""
            _conflict(
                result,
                culprits,
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but {ref} {installed.version} is installed: install with force to change "
                f"{ref}{upgrade}, or use a version of {r.parent.ref if r.parent else ref} that accepts "
                f"{ref} {installed.version}",
                [*_chain_to(r, reporter, nodes), f"installed: {ref} {installed.version}"],
                blamed,
            )
            blamed |= culprits
        if blamed:
            return blamed
    supply = provider.supply(ref)
    rejected = provider.rejected.get(ref, [])
    if not supply and not rejected:
        searched = ", ".join(provider.catalog().locations) or "no registry index is configured"
        for r in wanted:
            culprits = _culprits(r, reporter, blocked)
            _conflict(
                result,
                culprits,
                "DEPENDENCY_NOT_FOUND",
                f"{r.describe()}, which is not installed, not part of this installation and not in any registry "
                f"index (searched: {searched}); add {ref} to the installation or publish it in a registry",
                [*_chain_to(r, reporter, nodes), f"{ref}: not found"],
                blamed,
            )
            blamed |= culprits
        return blamed
    everything = supply + [c for c, _, _ in rejected]
    offered = _offered_text(provider, ref) or "the candidates are " + ", ".join(c.label for c in everything)
    # One requirement that nothing offered satisfies.
    for r in wanted:
        fits = [c for c in everything if r.constraint.allows(c.version)]
        if fits:
            continue
        culprits = _culprits(r, reporter, blocked)
        _conflict(
            result,
            culprits,
            "DEPENDENCY_NOT_FOUND",
            f"{r.describe()}, but no such version exists: {offered}",
            [*_chain_to(r, reporter, nodes), offered],
            blamed,
        )
        blamed |= culprits
    if blamed:
        return blamed
    # Two requirements that no offered version satisfies together.
    for i, first in enumerate(wanted):
        for second in wanted[i + 1 :]:
            if any(first.constraint.allows(c.version) and second.constraint.allows(c.version) for c in everything):
                continue
            culprits = _culprits(first, reporter, blocked) | _culprits(second, reporter, blocked)
            _conflict(
                result,
                culprits,
                "DEPENDENCY_CONFLICT",
                f"{first.describe()}, but {second.describe()}: no version of {ref} satisfies both ({offered}); "
                f"relax one of the constraints, or install these packs separately",
                [*_chain_to(first, reporter, nodes), *_chain_to(second, reporter, nodes)],
                blamed,
            )
            blamed |= culprits
    if blamed:
        return blamed
    # Versions satisfy every constraint but the platform (or a dependency cycle) rules them out.
    jointly = [c for c in everything if all(r.constraint.allows(c.version) for r in wanted)]
    reasons = {id(c): (code, reason) for c, code, reason in rejected}
    if jointly and all(id(c) in reasons for c in jointly):
        detail = "; ".join(f"{c.label}: {reasons[id(c)][1]}" for c in jointly[:3])
        code = reasons[id(jointly[0])][0]
        why = {
            "PLATFORM_INCOMPATIBLE": "is incompatible with this platform",
            "DEPENDENCY_CYCLE": "forms a dependency cycle",
        }.get(code, "cannot be used with the rest of this installation")
        culprits = requirers_of(wanted)
        _conflict(
            result,
            culprits,
            code,
            f"{'; '.join(r.describe() for r in wanted)}, but every version of {ref} that fits {why}: {detail}",
            [*_chain_to(wanted[0], reporter, nodes), detail] if wanted else [detail],
            blamed,
        )
        return blamed | culprits
    # Versions satisfy every constraint, but their own dependencies could not be satisfied.
    culprits = requirers_of(wanted) or ({r.ref for r in requirements if r.parent is None} - blocked)
    tried = ", ".join(c.label for c in jointly[:5]) or "none"
    _conflict(
        result,
        culprits,
        "DEPENDENCY_CONFLICT",
        f"no version of {ref} satisfies every requirement together with its own dependencies "
        f"({'; '.join(r.describe() for r in wanted) or 'required by this installation'}; tried {tried})",
        [hop for r in wanted for hop in _chain_to(r, reporter, nodes)],
        blamed,
    )
    return blamed | culprits


def _fitting_in_catalog(provider: _Provider, ref: str, constraint: Constraint) -> list[str]:
    found = provider.catalog().lookup(ref)
    if found is None:
        return []
    return [str(v) for v, _ in found[1] if constraint.allows(v)]
