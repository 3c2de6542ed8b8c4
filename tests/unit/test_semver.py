"""Versions, constraints and dependency strings (attune_packs.domain.semver)."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from attune_packs.domain.semver import Constraint, Version, best_match, parse_dependency
from attune_packs.errors import ManifestError

V = Version.parse


# --- Version -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0.0.0",
        "1.2.3",
        "10.20.30",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0+21AF26D3----117B344092BD",
        "99999999999999999999.0.0",
    ],
)
def test_valid_semver_round_trips_through_str(text: str) -> None:
    assert str(V(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "1.0",
        "1",
        "v1.0.0",
        "V1.0.0",
        "01.0.0",
        "1.01.0",
        "1.0.00",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-01",
        "1.0.0-beta..1",
        "1.0.0+a..b",
        "1.2.3.4",
        "-1.2.3",
        "1.2.-3",
        "a.b.c",
        "",
        " ",
        "\t\n",
        " 1.0.0",
        "1.0.0 ",
        "1.0.0\n",
        "\uff11.2.3",  # a full-width digit one
        "1.2.3-\u03b2eta",
        "1.2.3" + "-a" * 200,  # longer than 256 characters
    ],
)
def test_invalid_version_is_refused_with_pack_version_invalid(text: str) -> None:
    with pytest.raises(ManifestError) as info:
        V(text)
    assert info.value.error_code == "PACK_VERSION_INVALID"


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", ""])
def test_invalid_version_message_names_the_text_and_shows_a_valid_one(text: str) -> None:
    with pytest.raises(ManifestError) as info:
        V(text)
    assert repr(text) in info.value.message
    assert "1.2.3" in info.value.message


def test_non_string_version_is_refused() -> None:
    with pytest.raises(ManifestError) as info:
        V(1.1)  # type: ignore[arg-type]
    assert info.value.error_code == "PACK_VERSION_INVALID"


SPEC_PRECEDENCE = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


def test_ordering_follows_the_semver_spec_precedence_example() -> None:
    versions = [V(t) for t in SPEC_PRECEDENCE]
    shuffled = versions[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled) == versions
    for i, lower in enumerate(versions):
        for higher in versions[i + 1 :]:
            assert lower < higher and lower <= higher and higher > lower and higher >= lower
            assert lower != higher


def test_numeric_fields_compare_as_numbers_not_text() -> None:
    assert V("1.10.0") > V("1.9.0")
    assert V("1.0.10") > V("1.0.9")
    assert V("1.0.0-10") > V("1.0.0-9")


def test_build_metadata_is_ignored_for_equality_ordering_and_hashing() -> None:
    a, b = V("1.0.0+build.1"), V("1.0.0+build.2")
    assert a == b and not a < b and not b < a
    assert hash(a) == hash(b)
    assert len({a, b, V("1.0.0")}) == 1
    assert str(a) == "1.0.0+build.1"


def test_version_fields_and_is_prerelease() -> None:
    v = V("1.2.3-rc.1+sha.abc")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("rc", "1")
    assert v.build == ("sha", "abc")
    assert v.is_prerelease
    assert not V("1.2.3").is_prerelease


def test_version_is_frozen() -> None:
    with pytest.raises(AttributeError):
        V("1.2.3").major = 2  # type: ignore[misc]


def test_version_can_be_built_from_fields() -> None:
    assert Version(1, 2, 3, ("rc", "1")) == V("1.2.3-rc.1")
    with pytest.raises(ValueError):
        Version(-1, 0, 0)
    with pytest.raises(ValueError):
        Version(1, 0, 0, ("01",))


# --- Constraint ----------------------------------------------------------------------------------

CONSTRAINT_CASES = [
    # exact
    ("1.2.3", "1.2.3", True),
    ("1.2.3", "1.2.4", False),
    ("=1.2.3", "1.2.3", True),
    ("==1.2.3", "1.2.3", True),
    ("==1.2.3", "1.2.3+build.7", True),
    ("!=1.2.3", "1.2.3", False),
    ("!=1.2.3", "1.2.4", True),
    # comparators
    (">=1.2.3", "1.2.3", True),
    (">=1.2.3", "1.2.2", False),
    (">1.2.3", "1.2.3", False),
    (">1.2.3", "1.2.4", True),
    (">1.2.3", "1.2.3+build", False),
    ("<1.2.3", "1.2.2", True),
    ("<1.2.3", "1.2.3", False),
    ("<=1.2.3", "1.2.3", True),
    ("<=1.2.3", "1.2.4", False),
    # tilde
    ("~1.2.3", "1.2.9", True),
    ("~1.2.3", "1.3.0", False),
    ("~1.2.3", "1.2.2", False),
    ("~1.2", "1.2.0", True),
    ("~1.2", "1.3.0", False),
    ("~1", "1.9.9", True),
    ("~1", "2.0.0", False),
    # caret
    ("^1.2.3", "1.9.0", True),
    ("^1.2.3", "2.0.0", False),
    ("^1.2.3", "1.2.2", False),
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^1.2", "1.2.0", True),
    ("^0", "0.9.9", True),
    ("^0", "1.0.0", False),
    # wildcards and partial versions
    ("1.2.*", "1.2.7", True),
    ("1.2.*", "1.3.0", False),
    ("1.x", "1.99.0", True),
    ("1.x", "2.0.0", False),
    ("1.X.x", "1.4.0", True),
    ("1.2", "1.2.5", True),
    ("1.2", "1.3.0", False),
    ("*", "0.0.1", True),
    ("", "99.0.0", True),
    (">=2", "2.0.0", True),
    (">=2", "1.99.99", False),
    ("<3.1", "3.0.9", True),
    ("<3.1", "3.1.0", False),
    (">2", "2.5.0", False),
    (">2", "3.0.0", True),
    ("<=2", "2.9.9", True),
    ("<=2", "3.0.0", False),
    # AND: commas and/or whitespace
    (">=1.0, <2", "1.5.0", True),
    (">=1.0 <2", "2.0.0", False),
    (">= 1.0.0 , < 2.0.0", "1.0.0", True),
    (">=1.0.0,!=1.5.0,<2", "1.5.0", False),
    (">=1.0.0,!=1.5.0,<2", "1.5.1", True),
    # OR
    ("<1.0.0 || >=2.0.0", "0.9.0", True),
    ("<1.0.0 || >=2.0.0", "1.5.0", False),
    ("<1.0.0 || >=2.0.0", "2.0.0", True),
    ("1.2.3 || 1.2.5", "1.2.5", True),
    ("1.2.3 || 1.2.5", "1.2.4", False),
    # prereleases need an opt-in with the same major.minor.patch
    ("*", "1.0.0-beta", False),
    (">=1.0.0", "2.0.0-beta", False),
    ("^1.2.3", "1.3.0-rc.1", False),
    ("<1.2.3", "1.2.3-rc.1", False),
    (">=1.2.3-alpha", "1.2.3-beta", True),
    (">=1.2.3-alpha", "1.2.3", True),
    (">=1.2.3-alpha", "1.2.4-beta", False),
    ("^1.2.3-beta.2", "1.2.3-beta.10", True),
    ("^1.2.3-beta.2", "1.2.3-beta.1", False),
    ("~1.2.3-rc.1", "1.2.3-rc.2", True),
    ("=1.2.3-rc.1", "1.2.3-rc.1", True),
    ("<1.2.3-rc.2", "1.2.3-rc.1", True),
    (">=1.0.0 || >=2.0.0-rc.1", "2.0.0-rc.2", True),
    (">=1.0.0 || >=2.0.0-rc.1 <2.0.0", "1.5.0-rc.1", False),
    (">=1.0.0,!=1.2.3-rc.1", "1.2.3-rc.2", False),  # '!=' is not an opt-in
]


@pytest.mark.parametrize(("spec", "version", "allowed"), CONSTRAINT_CASES)
def test_constraint_allows(spec: str, version: str, allowed: bool) -> None:
    assert Constraint.parse(spec).allows(V(version)) is allowed


def test_constraint_matrix_covers_every_operator() -> None:
    specs = " ".join(spec for spec, _, _ in CONSTRAINT_CASES)
    for op in ("==", "!=", ">=", "<=", ">", "<", "=", "~", "^", "*", ".x", "||", ","):
        assert op in specs
    assert len(CONSTRAINT_CASES) >= 40


@pytest.mark.parametrize(
    "spec",
    [
        "1.0 -",
        "1.2.3 - 2.0.0",  # npm hyphen ranges are not supported
        ">=",
        "^",
        "=>1.0",
        ">>1",
        "~=1.2",
        "v1.2.3",
        ">=v1",
        "1.2.3 ||",
        "|| 1.2.3",
        "1.2.3 |||| 2.0.0",
        ">*",
        "<*",
        "!=1.2",
        "1.x.3",
        "1.2.x-beta",
        "1.2-beta",
        ">=1.2.3-",
        "01.2",
        "1.2.3.4",
        "latest",
        ">=1,,<2",
        ",>=1",
        ">=1,",
        "1" * 2000,
    ],
)
def test_invalid_constraint_is_refused(spec: str) -> None:
    with pytest.raises(ManifestError) as info:
        Constraint.parse(spec)
    assert info.value.error_code == "VERSION_CONSTRAINT_INVALID"


def test_invalid_constraint_message_names_the_spec() -> None:
    with pytest.raises(ManifestError) as info:
        Constraint.parse(">=1.0, latest")
    assert "'>=1.0, latest'" in info.value.message
    assert "'latest'" in info.value.message


@pytest.mark.parametrize(
    ("spec", "normalised"),
    [
        ("~1.2.3", ">=1.2.3,<1.3.0"),
        ("~1.2", ">=1.2.0,<1.3.0"),
        ("~1", ">=1.0.0,<2.0.0"),
        ("^1.2.3", ">=1.2.3,<2.0.0"),
        ("^0.2.3", ">=0.2.3,<0.3.0"),
        ("^0.0.3", ">=0.0.3,<0.0.4"),
        ("^0.0", ">=0.0.0,<0.1.0"),
        ("1.2.*", ">=1.2.0,<1.3.0"),
        ("1.x", ">=1.0.0,<2.0.0"),
        ("*", "*"),
        ("", "*"),
        ("  ", "*"),
        (">= 1.0 , <2", ">=1.0.0,<2.0.0"),
        ("1.2.3", "=1.2.3"),
        ("==1.2.3+build", "=1.2.3"),
        ("<1 || >=2.0.0-rc.1", "<1.0.0 || >=2.0.0-rc.1"),
    ],
)
def test_str_gives_the_normalised_spec_and_parses_back(spec: str, normalised: str) -> None:
    constraint = Constraint.parse(spec)
    assert str(constraint) == normalised
    assert Constraint.parse(str(constraint)) == constraint


def test_any_constraint_allows_releases_but_not_prereleases() -> None:
    assert Constraint.parse("*") == Constraint.parse("") == Constraint.ANY
    assert Constraint.ANY.allows(V("0.0.0"))
    assert Constraint.ANY.allows(V("123.4.5"))
    assert not Constraint.ANY.allows(V("1.0.0-rc.1"))


def test_caret_on_zero_major_pins_minor() -> None:
    caret = Constraint.parse("^0.2.3")
    assert caret.allows(V("0.2.99"))
    assert not caret.allows(V("0.3.0"))


def test_caret_on_zero_minor_pins_patch() -> None:
    caret = Constraint.parse("^0.0.3")
    assert caret.allows(V("0.0.3"))
    assert not caret.allows(V("0.0.4"))


def test_in_operator_tests_membership() -> None:
    assert V("1.5.0") in Constraint.parse("^1.2")
    assert "1.5.0" not in Constraint.parse("^1.2")


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("^1.2", "~1.4", True),
        ("^1.2", "^2", False),
        (">=1.0.0,<1.5.0", ">=1.5.0", False),
        ("<=1.5.0", ">=1.5.0", True),
        ("<1.5.0", ">1.4.9", True),
        ("!=1.2.3", "1.2.3", False),
        (">=2.0.0-rc.1", "<2.0.0", False),
        (">=2.0.0-rc.1", "<2.0.0 || =2.0.0-rc.5", True),
        ("1.2.3 || 2.x", "^2.1", True),
        ("*", "*", True),
    ],
)
def test_intersects(left: str, right: str, expected: bool) -> None:
    a, b = Constraint.parse(left), Constraint.parse(right)
    assert a.intersects(b) is expected
    assert b.intersects(a) is expected


# --- parse_dependency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref", "normalised"),
    [
        ("slack", "slack", "*"),
        ("  slack  ", "slack", "*"),
        ("slack=1.2.3", "slack", "=1.2.3"),
        ("core=3.0.0", "core", "=3.0.0"),
        ("slack==1.2.3", "slack", "=1.2.3"),
        ("slack>=1.0,<2", "slack", ">=1.0.0,<2.0.0"),
        ("slack >= 1.0, < 2", "slack", ">=1.0.0,<2.0.0"),
        ("slack < 2", "slack", "<2.0.0"),
        ("slack!=1.0.0", "slack", "!=1.0.0"),
        ("slack~1.2", "slack", ">=1.2.0,<1.3.0"),
        ("slack^1.2", "slack", ">=1.2.0,<2.0.0"),
        ("slack@^1.2", "slack", ">=1.2.0,<2.0.0"),
        ("slack @ ^1.2", "slack", ">=1.2.0,<2.0.0"),
        ("slack@1.2.3", "slack", "=1.2.3"),
        ("slack@*", "slack", "*"),
        ("slack = 1.2.3", "slack", "=1.2.3"),
        ("slack>=1 || >=3.0.0-rc.1", "slack", ">=1.0.0 || >=3.0.0-rc.1"),
        ("My_Pack>=1", "My_Pack", ">=1.0.0"),  # the ref is returned as written
    ],
)
def test_parse_dependency_forms(text: str, ref: str, normalised: str) -> None:
    got_ref, constraint = parse_dependency(text)
    assert got_ref == ref
    assert str(constraint) == normalised


def test_parse_dependency_range_allows_and_refuses() -> None:
    _, constraint = parse_dependency("slack>=1.0,<2")
    assert constraint.allows(V("1.9.9"))
    assert not constraint.allows(V("2.0.0"))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "DEPENDENCY_INVALID"),
        ("   ", "DEPENDENCY_INVALID"),
        (">=1.0", "DEPENDENCY_INVALID"),
        ("@1.2.3", "DEPENDENCY_INVALID"),
        ("slack 1.2.3", "DEPENDENCY_INVALID"),
        ("slack@", "VERSION_CONSTRAINT_INVALID"),
        ("slack=", "VERSION_CONSTRAINT_INVALID"),
        ("slack=>1", "VERSION_CONSTRAINT_INVALID"),
        ("slack@latest", "VERSION_CONSTRAINT_INVALID"),
        ("slack=v1.2.3", "VERSION_CONSTRAINT_INVALID"),
        ("slack~=1.2", "VERSION_CONSTRAINT_INVALID"),
    ],
)
def test_parse_dependency_refuses(text: str, code: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_dependency(text)
    assert info.value.error_code == code
    assert repr(text) in info.value.message


# --- best_match ----------------------------------------------------------------------------------


def test_best_match_picks_the_highest_allowed_version() -> None:
    versions = [V(t) for t in ("1.2.0", "1.10.0", "1.9.0", "2.0.0", "1.11.0-beta")]
    assert best_match(Constraint.parse("^1.2"), versions) == V("1.10.0")
    assert best_match(Constraint.parse(">=1.11.0-alpha <2"), versions) == V("1.11.0-beta")
    assert best_match(Constraint.parse("^3"), versions) is None
    assert best_match(Constraint.ANY, []) is None


# --- properties ----------------------------------------------------------------------------------

_PRERELEASES = [(), (), (), ("alpha",), ("beta", "2"), ("rc", "1"), ("0",)]
versions_st = st.builds(Version, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.sampled_from(_PRERELEASES))
_OPS = ["", "=", "==", "!=", ">=", ">", "<", "<=", "~", "^"]
_TERMS = [
    "*",
    "1",
    "2",
    "0.2",
    "1.x",
    "1.2",
    "2.0.*",
    "0.0.3",
    "1.2.3",
    "2.0.0",
    "1.2.3-beta.2",
    "2.0.0-rc.1",
]


@st.composite
def constraints_st(draw: st.DrawFn) -> Constraint:
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        count = draw(st.integers(1, 3))
        terms = [draw(st.sampled_from(_OPS)) + draw(st.sampled_from(_TERMS)) for _ in range(count)]
        groups.append(draw(st.sampled_from([",", " ", ", "])).join(terms))
    spec = " || ".join(groups)
    try:
        return Constraint.parse(spec)
    except ManifestError:
        assume(False)
        raise


@given(constraints_st(), st.lists(versions_st, max_size=25))
def test_best_match_returns_an_allowed_version_not_below_any_other_allowed(
    constraint: Constraint, versions: list[Version]
) -> None:
    best = best_match(constraint, versions)
    allowed = [v for v in versions if constraint.allows(v)]
    if not allowed:
        assert best is None
        return
    assert best is not None and constraint.allows(best)
    assert all(best >= v for v in allowed)


@given(constraints_st())
def test_normalised_constraint_parses_back_to_the_same_constraint(constraint: Constraint) -> None:
    assert Constraint.parse(str(constraint)) == constraint


@given(constraints_st(), constraints_st(), st.lists(versions_st, max_size=30))
def test_intersects_finds_a_common_version_whenever_one_exists(
    a: Constraint, b: Constraint, versions: list[Version]
) -> None:
    witness = a.witness(b)
    if witness is not None:
        assert a.allows(witness) and b.allows(witness)
    if any(a.allows(v) and b.allows(v) for v in versions):
        assert a.intersects(b)


@given(versions_st, versions_st)
def test_ordering_is_consistent(a: Version, b: Version) -> None:
    assert (a < b) + (a == b) + (a > b) == 1
    assert (a <= b) == (a < b or a == b)
    assert V(str(a)) == a
