"""The resolver: versions chosen with backtracking, install order, conflicts explained with their chains."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune_packs.domain.registry_index import RegistryCatalog, RegistryIndex
from attune_packs.domain.resolver import (
    InstalledPack,
    PackNode,
    PlatformTarget,
    Resolution,
    ResolverLimits,
    platform_problems,
    resolve,
    topological_order,
)
from attune_packs.domain.semver import Constraint, Version

V = Version.parse


def entry(ref: str, version: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {
        "ref": ref,
        "version": version,
        "dependencies": list(deps),
        "install_sources": [{"type": "archive", "url": f"archives/{ref}-{version}.tar.gz"}],
        **extra,
    }


def index(*entries: dict[str, Any]) -> RegistryIndex:
    return RegistryIndex.model_validate({"packs": list(entries)})


def node(ref: str, version: str, deps: dict[str, str] | None = None, **platform: str) -> PackNode:
    return PackNode(ref, V(version), deps or {}, **platform)


@dataclass
class World:
    """A registry (one or more indices), installed packs and a record of index loads."""

    indices: list[tuple[str, RegistryIndex]] = field(default_factory=list)
    installed: dict[str, InstalledPack] = field(default_factory=dict)
    catalog_loads: int = 0

    def install(self, ref: str, version: str, deps: dict[str, str] | None = None) -> None:
        self.installed[ref] = InstalledPack(ref, V(version), deps or {})

    def catalog(self) -> RegistryCatalog:
        self.catalog_loads += 1
        return RegistryCatalog(self.indices)

    def resolve(self, *batch: PackNode, force: bool = False, **kwargs: Any) -> Resolution:
        cached: list[RegistryCatalog] = []

        def catalog() -> RegistryCatalog:
            if not cached:
                cached.append(self.catalog())
            return cached[0]

        kwargs.setdefault("target", PlatformTarget(V("3.9.0")))
        return resolve(list(batch), installed=self.installed.get, catalog=catalog, force=force, **kwargs)


def world(*entries: dict[str, Any]) -> World:
    return World(indices=[("s3://registry/index.json", index(*entries))])


def chosen(result: Resolution) -> dict[str, str]:
    return {ref: str(c.version) for ref, c in result.chosen.items()}


def codes(result: Resolution) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for conflict in result.conflicts:
        found.setdefault(conflict.pack_ref, set()).add(conflict.error_code)
    return found


REGISTRY = [
    entry("core", "1.0.0"),
    entry("core", "1.4.0"),
    entry("core", "2.0.0"),
    entry("core", "2.1.0-beta.1"),
    entry("http", "1.0.0", "core>=1.0.0,<2.0.0"),
    entry("http", "2.0.0", "core^2.0.0"),
    entry("slack", "1.0.0", "http"),
    entry("slack", "1.1.0", "http>=2"),
]


# --- choosing versions ---------------------------------------------------------------------------


def test_the_newest_allowed_versions_are_chosen_with_their_dependencies_first() -> None:
    result = world(*REGISTRY).resolve(node("app", "1.0.0", {"slack": "*"}))
    assert chosen(result) == {"slack": "1.1.0", "http": "2.0.0", "core": "2.0.0"}
    assert result.install_order == ["core", "http", "slack", "app"]
    assert result.conflicts == [] and result.blocked == set()
    assert result.chosen["http"].required_by == ("slack 1.1.0",)
    assert result.chosen["core"].index == "s3://registry/index.json"
    assert result.chosen["core"].entry.install_sources[0].url == "archives/core-2.0.0.tar.gz"


def test_a_prerelease_is_chosen_only_when_a_constraint_asks_for_one() -> None:
    registry = world(*REGISTRY)
    assert chosen(registry.resolve(node("app", "1.0.0", {"core": ">=2.0.0"}))) == {"core": "2.0.0"}
    assert chosen(registry.resolve(node("app", "1.0.0", {"core": ">=2.1.0-alpha"}))) == {"core": "2.1.0-beta.1"}


def test_a_diamond_settles_on_a_version_both_sides_accept() -> None:
    result = world(
        entry("left", "1.0.0", "base^1.0.0"),
        entry("right", "1.0.0", "base>=1.2.0"),
        entry("base", "1.1.0"),
        entry("base", "1.3.0"),
        entry("base", "2.0.0"),
    ).resolve(node("top", "1.0.0", {"left": "*", "right": "*"}))
    assert chosen(result) == {"left": "1.0.0", "right": "1.0.0", "base": "1.3.0"}
    assert result.install_order.index("base") < result.install_order.index("left") < result.install_order.index("top")
    assert result.install_order.index("right") < result.install_order.index("top")
    assert result.chosen["base"].required_by == ("left 1.0.0", "right 1.0.0")


def test_backtracking_takes_an_older_version_whose_dependencies_fit() -> None:
    result = world(
        entry("x", "1.0.0", "z<2"),
        entry("x", "2.0.0", "z>=2"),
        entry("y", "1.0.0", "z<2"),
        entry("z", "1.0.0"),
        entry("z", "2.0.0"),
    ).resolve(node("app", "1.0.0", {"x": "*", "y": "*"}))
    assert chosen(result) == {"x": "1.0.0", "y": "1.0.0", "z": "1.0.0"}
    assert result.conflicts == []


def test_backtracking_skips_a_version_whose_dependency_does_not_exist() -> None:
    result = world(entry("x", "1.0.0"), entry("x", "2.0.0", "ghost")).resolve(node("app", "1.0.0", {"x": "*"}))
    assert chosen(result) == {"x": "1.0.0"}


def test_entries_without_dependencies_have_none_and_the_first_index_listing_a_ref_wins() -> None:
    registry = World(
        indices=[
            ("s3://first/index.json", index(entry("core", "1.0.0"))),
            ("s3://second/index.json", index(entry("core", "9.0.0"), entry("extra", "1.0.0"))),
        ]
    )
    result = registry.resolve(node("app", "1.0.0", {"core": "*", "extra": "*"}))
    assert chosen(result) == {"core": "1.0.0", "extra": "1.0.0"}
    assert result.chosen["core"].index == "s3://first/index.json"
    assert result.chosen["extra"].index == "s3://second/index.json"
    conflict = registry.resolve(node("app", "1.0.0", {"core": ">=2"}))
    assert codes(conflict) == {"app": {"DEPENDENCY_NOT_FOUND"}}
    assert "s3://first/index.json offers core 1.0.0" in conflict.conflicts[0].message


# --- batch and installed packs ------------------------------------------------------------------


def test_batch_packs_are_fixed_and_satisfy_each_other_without_the_registry() -> None:
    registry = world(*REGISTRY)
    result = registry.resolve(node("app", "1.0.0", {"lib": "^2.0.0"}), node("lib", "2.3.0"))
    assert result.chosen == {} and result.install_order == ["lib", "app"]
    assert registry.catalog_loads == 0


def test_installed_packs_that_fit_are_kept_and_nothing_is_downloaded() -> None:
    registry = world(*REGISTRY)
    registry.install("core", "1.4.0")
    result = registry.resolve(node("app", "1.0.0", {"core": ">=1.0.0"}))
    assert result.chosen == {} and result.kept_installed == {"core": V("1.4.0")}
    assert result.install_order == ["app"]
    assert registry.catalog_loads == 0


def test_an_installed_pack_steers_the_choice_of_its_dependents() -> None:
    registry = world(*REGISTRY)
    registry.install("core", "1.4.0")
    result = registry.resolve(node("app", "1.0.0", {"http": "*"}))
    assert chosen(result) == {"http": "1.0.0"}  # http 2.0.0 would need core 2


def test_an_installed_version_that_does_not_fit_is_a_conflict_that_suggests_force() -> None:
    registry = world(*REGISTRY)
    registry.install("core", "1.0.0")
    result = registry.resolve(node("app", "1.0.0", {"http": ">=2"}), node("other", "1.0.0", {"core": "*"}))
    assert codes(result) == {"app": {"DEPENDENCY_CONFLICT"}}
    conflict = result.conflicts[0]
    assert "http 2.0.0 requires core >=2.0.0,<3.0.0, but core 1.0.0 is installed" in conflict.message
    assert "force" in conflict.message and "2.0.0" in conflict.message
    assert conflict.chain == [
        "app 1.0.0 requires http >=2.0.0",
        "http 2.0.0 requires core >=2.0.0,<3.0.0",
        "installed: core 1.0.0",
    ]
    assert result.blocked == {"app"} and result.install_order == ["other"]


def test_force_upgrades_an_installed_pack_only_when_it_has_to() -> None:
    registry = world(*REGISTRY)
    registry.install("core", "1.0.0")
    upgraded = registry.resolve(node("app", "1.0.0", {"http": ">=2"}), force=True)
    assert chosen(upgraded) == {"http": "2.0.0", "core": "2.0.0"}
    assert upgraded.chosen["core"].installed_version == V("1.0.0")
    kept = registry.resolve(node("app", "1.0.0", {"core": "^1.0.0"}), force=True)
    assert kept.chosen == {} and kept.kept_installed == {"core": V("1.0.0")}


def test_installed_dependencies_of_installed_packs_count() -> None:
    registry = world(*REGISTRY)
    registry.install("http", "1.0.0", {"core": ">=1.0.0,<2.0.0"})
    registry.install("core", "1.0.0")
    result = registry.resolve(node("app", "1.0.0", {"http": "*", "core": "*"}))
    assert result.conflicts == [] and result.kept_installed == {"http": V("1.0.0"), "core": V("1.0.0")}


def test_a_requirement_the_batch_version_does_not_meet_blames_the_requirer_not_the_batch_pack() -> None:
    result = world(*REGISTRY).resolve(
        node("app", "1.0.0", {"lib": "^2.0.0"}), node("lib", "1.5.0"), node("fine", "1.0.0", {"lib": "^1.0.0"})
    )
    assert codes(result) == {"app": {"DEPENDENCY_CONFLICT"}}
    message = result.conflicts[0].message
    assert "app 1.0.0 requires lib >=2.0.0,<3.0.0, but this installation brings lib 1.5.0" in message
    assert result.install_order == ["lib", "fine"]


def test_a_pack_needing_a_blocked_batch_pack_is_blocked_unless_an_installed_version_fits() -> None:
    blocked = {"lib": "blocked elsewhere"}
    registry = world(*REGISTRY)
    stuck = registry.resolve(node("app", "1.0.0", {"lib": "*"}), node("lib", "1.0.0"), blocked=blocked)
    assert codes(stuck) == {"app": {"DEPENDENCY_CONFLICT"}}
    assert "cannot be installed" in stuck.conflicts[0].message
    registry.install("lib", "0.9.0")
    rescued = registry.resolve(node("app", "1.0.0", {"lib": "*"}), node("lib", "1.0.0"), blocked=blocked)
    assert rescued.conflicts == [] and rescued.kept_installed == {"lib": V("0.9.0")}


# --- conflicts -----------------------------------------------------------------------------------


def test_two_requirers_that_cannot_agree_are_both_named_and_both_blocked() -> None:
    result = world(*REGISTRY).resolve(
        node("app", "1.0.0", {"http": ">=2"}), node("other", "1.0.0", {"core": "^1.0.0"}), node("solo", "1.0.0")
    )
    assert codes(result) == {"app": {"DEPENDENCY_CONFLICT"}, "other": {"DEPENDENCY_CONFLICT"}}
    message = result.conflicts[0].message
    assert "other 1.0.0 requires core >=1.0.0,<2.0.0" in message
    assert "http 2.0.0 requires core >=2.0.0,<3.0.0" in message
    assert "no version of core satisfies both" in message
    assert "app 1.0.0 requires http >=2.0.0" in result.conflicts[0].chain
    assert result.install_order == ["solo"] and result.chosen == {}


def test_a_deep_conflict_shows_the_whole_chain_from_the_pack_that_asked() -> None:
    result = world(
        entry("a", "1.0.0", "b"),
        entry("b", "1.0.0", "c"),
        entry("c", "1.0.0", "d>=5"),
        entry("d", "1.0.0"),
    ).resolve(node("top", "1.0.0", {"a": "*"}))
    assert codes(result) == {"top": {"DEPENDENCY_NOT_FOUND"}}
    assert result.conflicts[0].chain == [
        "top 1.0.0 requires a (any version)",
        "a 1.0.0 requires b (any version)",
        "b 1.0.0 requires c (any version)",
        "c 1.0.0 requires d >=5.0.0",
        "registry s3://registry/index.json offers d 1.0.0",
    ]


def test_a_pack_nobody_offers_is_not_found_and_the_others_go_on() -> None:
    result = world(*REGISTRY).resolve(node("app", "1.0.0", {"ghost": ">=1"}), node("ok", "1.0.0", {"core": "^1"}))
    assert codes(result) == {"app": {"DEPENDENCY_NOT_FOUND"}}
    assert "not in any registry index (searched: s3://registry/index.json)" in result.conflicts[0].message
    assert chosen(result) == {"core": "1.4.0"} and result.install_order == ["core", "ok"]


def test_without_any_registry_a_missing_pack_says_none_is_configured() -> None:
    result = World().resolve(node("app", "1.0.0", {"ghost": "*"}))
    assert "no registry index is configured" in result.conflicts[0].message


@pytest.mark.parametrize(
    ("batch", "registry", "cycle_text", "blocked"),
    [
        (
            [node("a", "1.0.0", {"b": "*"}), node("b", "1.0.0", {"a": "*"}), node("c", "1.0.0")],
            [],
            "a 1.0.0 -> b 1.0.0 -> a 1.0.0",
            {"a", "b"},
        ),
        ([node("a", "1.0.0", {"x": "*"}), node("c", "1.0.0")], [entry("x", "1.0.0", "a")], "a 1.0.0 -> x 1.0.0", {"a"}),
        ([node("a", "1.0.0", {"a": "*"}), node("c", "1.0.0")], [], "a 1.0.0 depends on itself", {"a"}),
        (
            [node("top", "1.0.0", {"x": "*"}), node("c", "1.0.0")],
            [entry("x", "1.0.0", "y"), entry("y", "1.0.0", "x")],
            "x 1.0.0 -> y 1.0.0 -> x 1.0.0",
            {"top"},
        ),
    ],
    ids=["in-batch", "through-registry", "self", "below-the-batch"],
)
def test_cycles_are_reported_with_the_cycle_and_the_rest_is_ordered(
    batch: list[PackNode], registry: list[dict[str, Any]], cycle_text: str, blocked: set[str]
) -> None:
    result = world(*registry).resolve(*batch)
    assert result.blocked == blocked
    assert {c.error_code for c in result.conflicts} == {"DEPENDENCY_CYCLE"}
    assert all(cycle_text in c.message for c in result.conflicts)
    assert result.install_order == ["c"] and result.chosen == {}


def test_a_registry_version_that_would_close_a_cycle_gives_way_to_one_that_does_not() -> None:
    result = world(entry("x", "1.0.0"), entry("x", "2.0.0", "app")).resolve(node("app", "1.0.0", {"x": "*"}))
    assert chosen(result) == {"x": "1.0.0"} and result.conflicts == []
    only_cyclic = world(entry("x", "2.0.0", "app")).resolve(node("app", "1.0.0", {"x": "*"}))
    assert codes(only_cyclic) == {"app": {"DEPENDENCY_CYCLE"}}
    assert "app 1.0.0 -> x 2.0.0 -> app 1.0.0" in only_cyclic.conflicts[0].message


def test_which_version_to_rule_out_of_a_cycle_is_itself_backtracked() -> None:
    # x 2.0.0 <-> y 1.0.0 form a cycle; b needs exactly y 1.0.0, so x must give way.
    result = world(entry("x", "1.0.0"), entry("x", "2.0.0", "y"), entry("y", "1.0.0", "x")).resolve(
        node("a", "1.0.0", {"x": "*"}), node("b", "1.0.0", {"y": "=1.0.0"})
    )
    assert chosen(result) == {"x": "1.0.0", "y": "1.0.0"} and result.conflicts == []
    # Both packs on the cycle have other versions; ruling out p2 1.1.0 leads to a dead end.
    result = world(
        entry("p1", "1.0.0"),
        entry("p1", "1.1.0", "p2"),
        entry("p2", "1.0.0", "p3>=2.0.0"),
        entry("p2", "1.1.0", "p1"),
    ).resolve(node("p0", "1.0.0", {"p1": "*", "p2": "*"}))
    assert chosen(result) == {"p1": "1.0.0", "p2": "1.1.0"} and result.conflicts == []


def test_a_registry_version_depending_on_itself_is_never_chosen() -> None:
    result = world(entry("x", "1.0.0"), entry("x", "2.0.0", "x")).resolve(node("app", "1.0.0", {"x": "*"}))
    assert chosen(result) == {"x": "1.0.0"}
    stuck = world(entry("x", "2.0.0", "x")).resolve(node("app", "1.0.0", {"x": "*"}))
    assert codes(stuck) == {"app": {"DEPENDENCY_CYCLE"}} and "depends on itself" in stuck.conflicts[0].message


# --- platform ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "problem"),
    [
        ({"platform_constraint": ">=4.0.0"}, "requires Attune/StackStorm >=4.0.0"),
        ({"python_constraint": "2"}, "declares Python 2"),
        ({"python_constraint": "<3.12"}, "declares Python <3.12"),
        ({"nodejs_constraint": "^22"}, "declares Node.js ^22"),
    ],
)
def test_a_batch_pack_the_platform_cannot_run_is_platform_incompatible(platform: dict[str, str], problem: str) -> None:
    result = world().resolve(node("old", "1.0.0", **platform), node("ok", "1.0.0"))
    assert codes(result) == {"old": {"PLATFORM_INCOMPATIBLE"}}
    assert problem in result.conflicts[0].message
    assert result.install_order == ["ok"]


@pytest.mark.parametrize(
    ("platform", "ok"),
    [
        ({"platform_constraint": ">=3.0.0"}, True),
        ({"platform_constraint": "^3.9"}, True),
        ({"python_constraint": "2 || 3"}, True),
        ({"python_constraint": ">=3.10"}, True),
        ({"python_constraint": "~=3.10"}, True),
        ({"python_constraint": "3.11"}, False),
        ({"nodejs_constraint": ">=18"}, True),
        ({"nodejs_constraint": "20"}, True),
        ({"nodejs_constraint": "18"}, False),
    ],
)
def test_platform_problems_matrix(platform: dict[str, str], ok: bool) -> None:
    target = PlatformTarget(V("3.9.0"), python="3.12", nodejs="20")
    arguments = {"platform_constraint": None, "python_constraint": None, "nodejs_constraint": None, **platform}
    assert (platform_problems(target=target, **arguments) == []) is ok


def test_registry_versions_for_another_platform_are_skipped_for_an_older_one() -> None:
    registry = world(
        entry("x", "2.0.0", stackstorm_version=">=4.0.0"),
        entry("x", "1.5.0", python_versions=["2"]),
        entry("x", "1.0.0", stackstorm_version=">=3.0.0", python_versions=["2", "3"]),
    )
    assert chosen(registry.resolve(node("app", "1.0.0", {"x": "*"}))) == {"x": "1.0.0"}
    result = registry.resolve(node("app", "1.0.0", {"x": ">=1.5.0"}))
    assert codes(result) == {"app": {"PLATFORM_INCOMPATIBLE"}}
    assert "x 2.0.0: it requires Attune/StackStorm >=4.0.0" in result.conflicts[0].message
    newer_platform = registry.resolve(node("app", "1.0.0", {"x": "*"}), target=PlatformTarget(V("4.1.0")))
    assert chosen(newer_platform) == {"x": "2.0.0"}


# --- limits --------------------------------------------------------------------------------------


def test_too_many_packs_is_a_dependency_limit() -> None:
    chain = [entry(f"p{i}", "1.0.0", f"p{i + 1}") for i in range(30)] + [entry("p30", "1.0.0")]
    result = world(*chain).resolve(node("app", "1.0.0", {"p0": "*"}), limits=ResolverLimits(max_packs=10))
    assert codes(result) == {"app": {"DEPENDENCY_LIMIT"}}
    assert "more than 10 packs" in result.conflicts[0].message
    assert result.chosen == {} and result.install_order == []


def test_too_many_rounds_is_a_dependency_limit() -> None:
    chain = [entry(f"p{i}", "1.0.0", f"p{i + 1}") for i in range(30)] + [entry("p30", "1.0.0")]
    result = world(*chain).resolve(node("app", "1.0.0", {"p0": "*"}), limits=ResolverLimits(max_rounds=5))
    assert codes(result) == {"app": {"DEPENDENCY_LIMIT"}}
    assert "gave up after 5 rounds" in result.conflicts[0].message


PRUNED = ResolverLimits(search_thrash=(0, 0.0))  # the search gives up at once: pruned search
ISOLATED = ResolverLimits(search_thrash=(0, 0.0), pruned_thrash=(0, 0.0))  # and that too: packs join one by one


def layered_registry(packs: int, seed: int) -> list[dict[str, Any]]:
    """Packs depending on lower-numbered ones with constraints that often disagree."""
    rng = random.Random(seed)
    versions = {i: [f"{rng.randint(0, 3)}.{m}.0" for m in range(rng.randint(2, 5))] for i in range(packs)}
    entries = []
    for i in range(packs):
        for version in dict.fromkeys(versions[i]):
            deps = []
            for target in rng.sample(range(i), min(i, rng.randint(0, 3))):
                pick = rng.choice(versions[target])
                deps.append(f"p{target}@{rng.choice(['^', '~', '>=', '='])}{pick}")
            entries.append(entry(f"p{i}", version, *deps))
    return entries


def test_a_search_that_thrashes_switches_to_pruning_and_still_explains_and_goes_on() -> None:
    registry = world(*layered_registry(120, seed=7))
    picks = [random.Random(i).sample(range(60, 120), 4) for i in range(30)]
    batch = [node(f"top{i}", "1.0.0", {f"p{j}": "*" for j in pick}) for i, pick in enumerate(picks)]
    result = registry.resolve(*batch)
    assert result.pruned and result.blocked and len(result.blocked) < len(batch)
    assert result.rounds < 10_000
    assert {c.error_code for c in result.conflicts} <= {
        "DEPENDENCY_CONFLICT",
        "DEPENDENCY_NOT_FOUND",
        "DEPENDENCY_LIMIT",
    }
    assert all(c.pack_ref.startswith("top") and c.chain for c in result.conflicts)
    assert set(result.install_order) >= set(b.ref for b in batch) - result.blocked


def test_pruned_search_explains_one_level_deep() -> None:
    registry = world(*REGISTRY)
    registry.install("core", "1.0.0")
    result = registry.resolve(node("app", "1.0.0", {"http": ">=2"}), limits=PRUNED)
    assert codes(result) == {"app": {"DEPENDENCY_CONFLICT"}}
    assert (
        "app 1.0.0 requires http >=2.0.0, but every version of http that fits cannot be used with the rest of this "
        "installation: http 2.0.0: its dependency core >=2.0.0,<3.0.0 cannot be met: core 1.0.0 is installed "
        "(install with force to change it)"
    ) == result.conflicts[0].message


def test_topological_order_reports_each_cycle_once_and_orders_the_rest() -> None:
    order, cycles = topological_order({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set(), "f": {"e", "f"}})
    assert order == ["e"]
    assert cycles == [["a", "b", "c"], ["f"]]


# --- properties ----------------------------------------------------------------------------------

CONSTRAINTS = ["*", "^1.0.0", ">=1.1.0", "<1.2.0", "~1.1.0", "=1.0.0", ">=2.0.0", "1.x || 2.x", ">=1.0.0,!=1.1.0"]
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]
REFS = [f"p{i}" for i in range(5)]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A random registry over a few refs (dependencies only on higher-numbered refs, sometimes
    back to lower ones, so cycles occur), a random batch, installed packs and force."""
    entries = []
    for i, ref in enumerate(REFS):
        for version in draw(st.lists(st.sampled_from(VERSIONS), unique=True, max_size=3)):
            targets = draw(st.lists(st.sampled_from(REFS), unique=True, max_size=2))
            deps = [f"{t}@{draw(st.sampled_from(CONSTRAINTS))}" for t in targets if t != ref or draw(st.booleans())]
            entries.append(entry(ref, version, *deps))
    batch_refs = draw(st.lists(st.sampled_from(REFS + ["b0", "b1"]), unique=True, min_size=1, max_size=3))
    batch = []
    for ref in batch_refs:
        targets = draw(st.lists(st.sampled_from(REFS), unique=True, max_size=3))
        deps = {t: draw(st.sampled_from(CONSTRAINTS)) for t in targets}
        batch.append(node(ref, draw(st.sampled_from(VERSIONS)), deps))
    installed = {
        ref: (draw(st.sampled_from(VERSIONS)), {})
        for ref in draw(st.lists(st.sampled_from(REFS), unique=True, max_size=3))
    }
    return {"entries": entries, "batch": batch, "installed": installed, "force": draw(st.booleans())}


def resolve_scenario(scenario: dict[str, Any], limits: ResolverLimits | None = None) -> tuple[World, Resolution]:
    registry = world(*scenario["entries"])
    for ref, (version, deps) in scenario["installed"].items():
        registry.install(ref, version, deps)
    return registry, registry.resolve(*scenario["batch"], force=scenario["force"], limits=limits or ResolverLimits())


def dependencies_of(ref: str, batch: dict[str, PackNode], result: Resolution, registry: World) -> dict[str, str]:
    if ref in result.chosen:
        return dict(result.chosen[ref].entry.dependencies)
    if ref in batch and ref not in result.blocked:
        return dict(batch[ref].dependencies)
    return {d: spec for d, spec in registry.installed[ref].dependencies.items() if d != ref}


MODES = pytest.mark.parametrize(
    "limits", [ResolverLimits(), PRUNED, ISOLATED], ids=["search", "pruned-search", "one-by-one"]
)


@MODES
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_any_returned_install_order_satisfies_every_constraint(
    limits: ResolverLimits, scenario: dict[str, Any]
) -> None:
    registry, result = resolve_scenario(scenario, limits)
    batch = {n.ref: n for n in scenario["batch"]}
    order = result.install_order
    position = {ref: i for i, ref in enumerate(order)}
    assert len(order) == len(set(order))
    assert set(order) == (set(batch) - result.blocked) | set(result.chosen)
    # Every pack that will be present (installed, batch or chosen) satisfies each requirer.
    present = set(order) | set(result.kept_installed)
    for ref in present:
        for dep, spec in dependencies_of(ref, batch, result, registry).items():
            version = result.version_of(dep, batch)
            assert version is not None, f"{ref} needs {dep}, which the resolution leaves out"
            assert Constraint.parse(spec).allows(version), f"{ref} needs {dep} {spec}, gets {version}"
            if dep in position and ref in position:
                assert position[dep] < position[ref], f"{dep} must come before {ref}"
    # Installed packs change only with force; batch packs never come from the registry.
    for ref, choice in result.chosen.items():
        assert ref not in batch
        assert scenario["force"] or ref not in registry.installed
        assert choice.required_by
    # Every blocked batch pack has a conflict saying why.
    assert {c.pack_ref for c in result.conflicts} <= set(batch)
    assert result.blocked <= {c.pack_ref for c in result.conflicts}


def brute_force_exists(scenario: dict[str, Any]) -> bool:
    """Whether some choice of registry versions satisfies the whole batch (no force, no cycles)."""
    batch = {n.ref: n for n in scenario["batch"]}
    installed = {ref: V(version) for ref, (version, _) in scenario["installed"].items()}
    offered: dict[str, list[tuple[Version, dict[str, str]]]] = {}
    for item in scenario["entries"]:
        offered.setdefault(item["ref"], []).append((V(item["version"]), {}))
    catalog = RegistryCatalog([("i", index(*scenario["entries"]))])
    refs = sorted(set(offered) - set(batch) - set(installed))
    options: list[Iterable[Version | None]] = [[None, *(v for v, _ in catalog.lookup(r)[1])] for r in refs]
    for combination in itertools.product(*options):
        versions: dict[str, Version] = {r: n.version for r, n in batch.items()}
        versions.update({r: v for r, v in installed.items() if r not in batch})
        versions.update({r: v for r, v in zip(refs, combination, strict=True) if v is not None})
        deps: dict[str, dict[str, str]] = {r: dict(n.dependencies) for r, n in batch.items()}
        for r, v in zip(refs, combination, strict=True):
            if v is not None:
                deps[r] = dict(next(e for version, e in catalog.lookup(r)[1] if version == v).dependencies)
        needed = set(batch)
        frontier = list(batch)
        while frontier:
            for dep in deps.get(frontier.pop(), {}):
                if dep not in needed:
                    needed.add(dep)
                    frontier.append(dep)
        graph = {r: set(deps.get(r, {})) for r in needed if r not in installed or r in batch}
        if topological_order(graph)[1]:
            continue
        if all(
            dep in versions and Constraint.parse(spec).allows(versions[dep])
            for r in needed
            for dep, spec in deps.get(r, {}).items()
        ):
            return True
    return False


@pytest.mark.parametrize("limits", [ResolverLimits(), PRUNED], ids=["search", "pruned-search"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_when_the_whole_batch_can_be_satisfied_nothing_is_blocked(
    limits: ResolverLimits, scenario: dict[str, Any]
) -> None:
    scenario = {**scenario, "force": False}
    _, result = resolve_scenario(scenario, limits)
    if brute_force_exists(scenario):
        assert result.conflicts == [], [c.message for c in result.conflicts]


def test_pins_left_in_a_cycle_by_backtracking_are_dropped_without_recursing_forever() -> None:
    """resolvelib's own result builder recurses through a parent cycle with no visited set
    (found by the property tests above as a RecursionError); the search builds the result itself."""
    from resolvelib.resolvers import Criterion, RequirementInformation
    from resolvelib.resolvers.resolution import _build_result

    from attune_packs.domain.resolver.search import connected_mapping

    a, b, c = object(), object(), object()
    mapping = {"a": a, "b": b, "c": c}
    criteria = {
        "a": Criterion([], [RequirementInformation("needs a", b)], []),
        "b": Criterion([], [RequirementInformation("needs b", a)], []),
        "c": Criterion([], [RequirementInformation("asked for c", None)], []),
    }

    assert connected_mapping(mapping, criteria) == {"c": c}

    class _State:
        pass

    state = _State()
    state.mapping, state.criteria = mapping, criteria  # type: ignore[attr-defined]
    with pytest.raises(RecursionError):
        _build_result(state)  # type: ignore[arg-type]
