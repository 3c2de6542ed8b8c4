"""The resolver's vocabulary: what it is given (batch, installed packs, platform, limits), what it
answers (:class:`Resolution`), and the candidates and requirements it searches over with resolvelib."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from attune_packs.domain.registry_index import IndexEntry
from attune_packs.domain.semver import Constraint, Version, cached_constraint
from attune_packs.errors import ManifestError
from attune_packs.models import Conflict

Origin = Literal["batch", "installed", "index"]


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
    # A search is abandoned for the next mode (see ``search.Search``) after ``rounds + factor * packs
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


# --- resolvelib model ----------------------------------------------------------------------------


@dataclass(eq=False)
class Candidate:
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
class Requirement:
    ref: str
    constraint: Constraint
    parent: Candidate | None  # None: a root (a batch pack requiring itself at its version)
    allowed: set[int] = field(default_factory=set)  # ids of the candidates of ref it allows

    def describe(self) -> str:
        if self.parent is None:
            return f"this installation brings {self.ref} {self.constraint}"
        return f"{self.parent.label} requires {self.ref} {spec_text(self.constraint)}"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def spec_text(constraint: Constraint) -> str:
    text = str(constraint)
    return "(any version)" if text == "*" else text


def dependencies_of(ref: str, raw: Mapping[str, str]) -> tuple[tuple[str, Constraint], ...]:
    deps = []
    for dep_ref, spec in raw.items():
        try:
            deps.append((str(dep_ref), constraint_of(str(spec))))
        except ManifestError:
            # Recorded dependencies were validated when they were written; an unreadable one is
            # not enforced here (registration checks installed dependencies again).
            continue
    return tuple(sorted(deps, key=lambda d: d[0]))
