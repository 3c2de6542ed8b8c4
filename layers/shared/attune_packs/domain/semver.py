"""Semantic versions (SemVer 2.0.0) and version constraints for pack dependencies.

:class:`Version` is strict SemVer: ``1.2.3``, ``1.2.3-rc.1``, ``1.2.3+build.5``; nothing looser.

:class:`Constraint` follows npm's range grammar (the one pack authors know), plus ``==`` and ``!=``:

* comparators ``1.2.3`` / ``=1.2.3`` / ``==1.2.3`` (exact), ``!=``, ``>=``, ``>``, ``<``, ``<=``;
* tilde ``~1.2.3`` (``>=1.2.3,<1.3.0``), ``~1.2``, ``~1``; caret ``^1.2.3`` (``<2.0.0``),
  ``^0.2.3`` (``<0.3.0``), ``^0.0.3`` (``<0.0.4``);
* wildcards and partial versions: ``*``, ``1.x``, ``1.2.*``, ``1.2`` (= ``>=1.2.0,<1.3.0``);
  inside comparators a partial version stands for the whole range it names, as in npm:
  ``>=2`` is ``>=2.0.0``, ``<3.1`` is ``<3.1.0``, ``>2`` is ``>=3.0.0``, ``<=2`` is ``<3.0.0``;
* comparators separated by commas and/or whitespace must all hold (AND); ``||`` separates
  alternatives (OR).

Prereleases follow npm: a prerelease version is allowed only when the alternative it satisfies has a
comparator (other than ``!=``) naming a prerelease of the same ``major.minor.patch``. So ``>=1.0.0``
does not admit ``2.0.0-beta``, while ``>=2.0.0-alpha`` admits ``2.0.0-beta`` but not ``2.1.0-beta``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

from attune_packs.errors import ManifestError

__all__ = ["Constraint", "Version", "best_match", "cached_constraint", "cached_dependency", "parse_dependency"]

MAX_VERSION_LENGTH = 256
MAX_CONSTRAINT_LENGTH = 1024

_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
_PRERELEASE = rf"{_PRE_ID}(?:\.{_PRE_ID})*"
_BUILD = rf"{_BUILD_ID}(?:\.{_BUILD_ID})*"

_VERSION_RE = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRERELEASE}))?(?:\+(?P<build>{_BUILD}))?"
)
_PRE_ID_RE = re.compile(_PRE_ID)
_BUILD_ID_RE = re.compile(_BUILD_ID)

_VALID_VERSION_HINT = (
    "a valid version looks like 1.2.3, 1.2.3-rc.1 or 1.2.3+build.5 "
    "(MAJOR.MINOR.PATCH, no leading 'v', no leading zeros)"
)


def _version_hint(text: str) -> str:
    """A specific reason why ``text`` is not a version, when one can be guessed."""
    stripped = text.strip()
    if not stripped:
        return "it is empty"
    if stripped != text:
        return "it has leading or trailing whitespace"
    if text[:1] in ("v", "V"):
        return "drop the leading 'v'"
    core = re.split(r"[-+]", text, maxsplit=1)[0]
    parts = core.split(".")
    if all(p.isascii() and p.isdigit() for p in parts):
        if len(parts) != 3:
            return f"MAJOR.MINOR.PATCH needs three numbers, this has {len(parts)}"
        if any(len(p) > 1 and p.startswith("0") for p in parts):
            return "numbers must not have leading zeros"
    pre = text.split("+", 1)[0].partition("-")[2]
    if any(len(p) > 1 and p.startswith("0") and p.isdigit() for p in pre.split(".")):
        return "numeric prerelease identifiers must not have leading zeros"
    if text.endswith(("-", "+")) or "-." in text or ".." in text or "+." in text:
        return "a prerelease or build part is empty"
    return "it is not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"


def _invalid_version(text: object) -> ManifestError:
    hint = _version_hint(text) if isinstance(text, str) else f"it is a {type(text).__name__}, not a string"
    return ManifestError(f"invalid version {text!r}: {hint}; {_VALID_VERSION_HINT}", error_code="PACK_VERSION_INVALID")


@dataclass(frozen=True, eq=False)
class Version:
    """A SemVer 2.0.0 version; ordered by SemVer precedence, build metadata ignored."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    _key: tuple[object, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("major", "minor", "patch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Version.{name} must be a non-negative int, not {value!r}")
        prerelease = tuple(str(p) for p in self.prerelease)
        build = tuple(str(b) for b in self.build)
        for ident in prerelease:
            if not _PRE_ID_RE.fullmatch(ident):
                raise ValueError(f"invalid prerelease identifier {ident!r}")
        for ident in build:
            if not _BUILD_ID_RE.fullmatch(ident):
                raise ValueError(f"invalid build identifier {ident!r}")
        object.__setattr__(self, "prerelease", prerelease)
        object.__setattr__(self, "build", build)
        object.__setattr__(self, "_key", self._precedence_key())

    def _precedence_key(self) -> tuple[object, ...]:
        # A release sorts after all its prereleases; numeric identifiers sort before alphanumeric
        # ones; a longer identifier list wins when all earlier identifiers are equal (tuple order).
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        idents = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0, idents)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse strict SemVer text; raise ``ManifestError`` (``PACK_VERSION_INVALID``) otherwise."""
        if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
            if isinstance(text, str):
                raise ManifestError(
                    f"invalid version {text[:40]!r}...: longer than {MAX_VERSION_LENGTH} characters",
                    error_code="PACK_VERSION_INVALID",
                )
            raise _invalid_version(text)
        match = _VERSION_RE.fullmatch(text)
        if match is None:
            raise _invalid_version(text)
        pre, build = match["pre"], match["build"]
        return cls(
            int(match["major"]),
            int(match["minor"]),
            int(match["patch"]),
            tuple(pre.split(".")) if pre else (),
            tuple(build.split(".")) if build else (),
        )

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def core(self) -> tuple[int, int, int]:
        """``(major, minor, patch)``."""
        return (self.major, self.minor, self.patch)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key >= other._key


# --- constraints ---------------------------------------------------------------------------------

_OPERATORS = ("==", "!=", ">=", "<=", "=", ">", "<", "~", "^")
_OP_RE = "|".join(re.escape(op) for op in _OPERATORS)
# Whitespace between an operator and its version (">= 1.2") is allowed; remove it before splitting.
_OP_SPACE_RE = re.compile(rf"({_OP_RE})\s+(?=[0-9xX*])")
_SEPARATOR_RE = re.compile(r"\s*,\s*|\s+")
_TERM_RE = re.compile(rf"(?P<op>{_OP_RE})?(?P<ver>.+)")
_WILDCARD = r"[xX*]"
_PARTIAL_RE = re.compile(
    rf"(?P<major>{_NUM}|{_WILDCARD})"
    rf"(?:\.(?P<minor>{_NUM}|{_WILDCARD})"
    rf"(?:\.(?P<patch>{_NUM}|{_WILDCARD})"
    rf"(?:-(?P<pre>{_PRERELEASE}))?(?:\+(?P<build>{_BUILD}))?)?)?"
)

_CONSTRAINT_HINT = "expected e.g. '1.2.3', '>=1.2.0,<2.0.0', '^1.2', '~1.2.3', '1.2.*', '>=1 || >=3.0.0-rc.1' or '*'"


def _invalid_constraint(spec: str, reason: str) -> ManifestError:
    return ManifestError(
        f"invalid version constraint {spec!r}: {reason}; {_CONSTRAINT_HINT}",
        error_code="VERSION_CONSTRAINT_INVALID",
    )


@dataclass(frozen=True)
class _Comparator:
    """One primitive test: ``op`` is one of ``=``, ``!=``, ``>=``, ``>``, ``<``, ``<=``."""

    op: str
    version: Version

    def test(self, v: Version) -> bool:
        op, other = self.op, self.version
        if op == "=":
            return v == other
        if op == "!=":
            return v != other
        if op == ">=":
            return v >= other
        if op == ">":
            return v > other
        if op == "<":
            return v < other
        return v <= other

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


_Group = tuple[_Comparator, ...]


def _group_allows(group: _Group, v: Version) -> bool:
    if not all(c.test(v) for c in group):
        return False
    if not v.is_prerelease:
        return True
    return any(c.op != "!=" and c.version.is_prerelease and c.version.core == v.core for c in group)


def _pad(nums: tuple[int, ...], pre: tuple[str, ...] = ()) -> Version:
    full = (*nums, 0, 0, 0)[:3]
    return Version(full[0], full[1], full[2], pre)


def _bump(nums: tuple[int, ...], index: int) -> Version:
    """The first version past every version that starts with ``nums[:index + 1]``."""
    full = [*nums, 0, 0, 0][:3]
    full[index] += 1
    for i in range(index + 1, 3):
        full[i] = 0
    return Version(full[0], full[1], full[2])


def _parse_partial(spec: str, text: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """``1.2`` -> ``((1, 2), ())``; ``1.x`` -> ``((1,), ())``; ``*`` -> ``((), ())``."""
    match = _PARTIAL_RE.fullmatch(text)
    if match is None:
        if text[:1] in ("v", "V"):
            raise _invalid_constraint(spec, f"{text!r}: drop the leading 'v'")
        if text[:1] in "=<>!~^":
            raise _invalid_constraint(spec, f"unknown operator in {text!r}")
        raise _invalid_constraint(spec, f"{text!r} is not a version, a partial version or a wildcard")
    nums: list[int] = []
    wildcard_seen = False
    for name in ("major", "minor", "patch"):
        part = match[name]
        if part is None or part in ("x", "X", "*"):
            wildcard_seen = True
            continue
        if wildcard_seen:
            raise _invalid_constraint(spec, f"{text!r}: a number cannot follow a wildcard")
        nums.append(int(part))
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    if (pre or match["build"]) and len(nums) != 3:
        raise _invalid_constraint(spec, f"{text!r}: a prerelease or build needs MAJOR.MINOR.PATCH")
    return tuple(nums), pre


def _desugar(spec: str, op: str, text: str) -> list[_Comparator]:
    """Turn one written term into primitive comparators (an empty list means 'anything')."""
    nums, pre = _parse_partial(spec, text)
    n = len(nums)
    full = n == 3
    if op in ("", "=", "=="):
        if n == 0:
            return []
        if full:
            return [_Comparator("=", _pad(nums, pre))]
        return [_Comparator(">=", _pad(nums)), _Comparator("<", _bump(nums, n - 1))]
    if op == "!=":
        if not full:
            raise _invalid_constraint(spec, f"'!=' needs a full version, not {text!r}")
        return [_Comparator("!=", _pad(nums, pre))]
    if op in (">", "<") and n == 0:
        raise _invalid_constraint(spec, f"'{op}{text}' can never be satisfied")
    if n == 0:  # >=*, <=*, ~*, ^*
        return []
    if op == ">=":
        return [_Comparator(">=", _pad(nums, pre))]
    if op == ">":
        return [_Comparator(">", _pad(nums, pre))] if full else [_Comparator(">=", _bump(nums, n - 1))]
    if op == "<":
        return [_Comparator("<", _pad(nums, pre))]
    if op == "<=":
        return [_Comparator("<=", _pad(nums, pre))] if full else [_Comparator("<", _bump(nums, n - 1))]
    if op == "~":
        return [_Comparator(">=", _pad(nums, pre)), _Comparator("<", _bump(nums, 0 if n == 1 else 1))]
    # caret: the first non-zero number stays fixed (or the last one given if all are zero)
    index = next((i for i, num in enumerate(nums) if num != 0), n - 1)
    return [_Comparator(">=", _pad(nums, pre)), _Comparator("<", _bump(nums, index))]


def _parse_group(spec: str, text: str) -> _Group:
    text = _OP_SPACE_RE.sub(r"\1", text.strip())
    if not text:
        raise _invalid_constraint(spec, "an alternative around '||' is empty")
    comparators: list[_Comparator] = []
    for term in _SEPARATOR_RE.split(text):
        if not term:
            raise _invalid_constraint(spec, "a comparator between commas is empty")
        if term in _OPERATORS:
            raise _invalid_constraint(spec, f"operator {term!r} has no version")
        match = _TERM_RE.fullmatch(term)
        if match is None or (match["op"] and match["ver"][:1] in "=<>!~^"):
            raise _invalid_constraint(spec, f"unknown operator in {term!r}")
        comparators.extend(_desugar(spec, match["op"] or "", match["ver"]))
    return tuple(comparators)


def _successor(v: Version) -> Version:
    """The next version above ``v`` of the same kind: for a release the next release (no release
    lies between), for a prerelease the smallest version above it (``-rc.1`` -> ``-rc.1.0``)."""
    if v.is_prerelease:
        return Version(v.major, v.minor, v.patch, (*v.prerelease, "0"))
    return Version(v.major, v.minor, v.patch + 1)


def _candidates(group: _Group, named: Iterable[tuple[int, int, int]]) -> list[Version]:
    """The smallest release, and smallest prerelease of each core in ``named``, that could satisfy
    ``group``'s bounds and exclusions. If those fail the group, every larger one fails too."""
    equal = [c.version for c in group if c.op == "="]
    if equal:
        return [equal[0]]
    lower: tuple[Version, bool] | None = None  # (version, inclusive)
    for c in group:
        if c.op in (">=", ">"):
            bound = (c.version, c.op == ">=")
            if lower is None or bound[0] > lower[0] or (bound[0] == lower[0] and not bound[1]):
                lower = bound
    excluded = {c.version for c in group if c.op == "!="}

    if lower is None:
        release = Version(0, 0, 0)
    elif lower[0].is_prerelease:
        release = Version(*lower[0].core)
    else:
        release = Version(*lower[0].core) if lower[1] else _successor(lower[0])
    while release in excluded:
        release = _successor(release)
    found = [release]

    for core in sorted(set(named)):
        if lower is None or lower[0].core < core:
            pre = Version(*core, ("0",))
        elif lower[0].core == core and lower[0].is_prerelease:
            pre = Version(*core, lower[0].prerelease) if lower[1] else _successor(lower[0])
        else:
            continue
        while pre in excluded:
            pre = _successor(pre)
        found.append(pre)
    return found


def _named_prereleases(group: _Group) -> set[tuple[int, int, int]]:
    return {c.version.core for c in group if c.op != "!=" and c.version.is_prerelease}


@dataclass(frozen=True)
class Constraint:
    """A set of allowed versions: alternatives (OR) of comparator groups (AND)."""

    groups: tuple[_Group, ...]
    ANY: ClassVar[Constraint]

    @classmethod
    def parse(cls, spec: str) -> Constraint:
        """Parse a constraint; raise ``ManifestError`` (``VERSION_CONSTRAINT_INVALID``) if invalid."""
        if not isinstance(spec, str):
            raise ManifestError(
                f"invalid version constraint {spec!r}: a {type(spec).__name__}, not a string",
                error_code="VERSION_CONSTRAINT_INVALID",
            )
        if len(spec) > MAX_CONSTRAINT_LENGTH:
            raise ManifestError(
                f"invalid version constraint {spec[:40]!r}...: longer than {MAX_CONSTRAINT_LENGTH} characters",
                error_code="VERSION_CONSTRAINT_INVALID",
            )
        if not spec.strip():
            return cls.ANY
        return cls(tuple(_parse_group(spec, alt) for alt in spec.split("||")))

    def allows(self, v: Version) -> bool:
        """Whether ``v`` satisfies the constraint (prereleases only when opted into, see module doc)."""
        return any(_group_allows(group, v) for group in self.groups)

    def __contains__(self, v: object) -> bool:
        return isinstance(v, Version) and self.allows(v)

    def witness(self, other: Constraint) -> Version | None:
        """The smallest-found version that both constraints allow, or None if there is none."""
        for mine in self.groups:
            for theirs in other.groups:
                combined = mine + theirs
                named = _named_prereleases(mine) & _named_prereleases(theirs)
                for candidate in _candidates(combined, named):
                    if _group_allows(mine, candidate) and _group_allows(theirs, candidate):
                        return candidate
        return None

    def intersects(self, other: Constraint) -> bool:
        """Whether some version satisfies both constraints."""
        return self.witness(other) is not None

    def __str__(self) -> str:
        return " || ".join(",".join(str(c) for c in group) or "*" for group in self.groups)

    def __repr__(self) -> str:
        return f"Constraint({str(self)!r})"


Constraint.ANY = Constraint(((),))


# --- dependencies --------------------------------------------------------------------------------

_DEPENDENCY_RE = re.compile(r"(?P<ref>[^\s=<>!~^@]*)\s*(?P<rest>.*)", re.DOTALL)
_DEPENDENCY_FORMS = "expected 'pack', 'pack=1.2.3', 'pack>=1.0,<2' or 'pack@^1.2'"


def parse_dependency(text: str) -> tuple[str, Constraint]:
    """Split a pack.yaml dependency (``slack``, ``slack=1.2.3``, ``slack>=1,<2``, ``slack@^1.2``)
    into the ref as written and its constraint."""
    if not isinstance(text, str):
        raise ManifestError(
            f"dependency {text!r} must be a string; {_DEPENDENCY_FORMS}", error_code="DEPENDENCY_INVALID"
        )
    match = _DEPENDENCY_RE.fullmatch(text.strip())
    assert match is not None  # the pattern matches any string
    ref, rest = match["ref"], match["rest"]
    if not ref:
        raise ManifestError(f"dependency {text!r} names no pack; {_DEPENDENCY_FORMS}", error_code="DEPENDENCY_INVALID")
    if not rest:
        return ref, Constraint.ANY
    if rest.startswith("@"):
        spec = rest[1:]
        if not spec.strip():
            raise ManifestError(
                f"dependency {text!r} has nothing after '@'; {_DEPENDENCY_FORMS}",
                error_code="VERSION_CONSTRAINT_INVALID",
            )
    elif rest[0] in "=<>!~^":
        spec = rest
    else:
        raise ManifestError(
            f"dependency {text!r} is not a pack ref optionally followed by a constraint; {_DEPENDENCY_FORMS}",
            error_code="DEPENDENCY_INVALID",
        )
    try:
        return ref, cached_constraint(spec)
    except ManifestError as exc:
        raise ManifestError(f"dependency {text!r}: {exc.message}", error_code="VERSION_CONSTRAINT_INVALID") from exc


def best_match(constraint: Constraint, versions: Iterable[Version]) -> Version | None:
    """The highest version in ``versions`` that ``constraint`` allows, or None."""
    best: Version | None = None
    for v in versions:
        if constraint.allows(v) and (best is None or v > best):
            best = v
    return best


# --- shared parses -------------------------------------------------------------------------------
# Constraints and versions are immutable, so equal texts can share one parsed object: indices repeat
# the same few constraints thousands of times. Invalid texts raise every time (exceptions are not
# cached).


@lru_cache(maxsize=8192)
def cached_constraint(spec: str) -> Constraint:
    """:meth:`Constraint.parse`, memoised."""
    return Constraint.parse(spec)


@lru_cache(maxsize=8192)
def cached_dependency(text: str) -> tuple[str, Constraint]:
    """:func:`parse_dependency`, memoised."""
    return parse_dependency(text)
