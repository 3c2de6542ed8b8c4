"""Explaining an impossible resolution: resolvelib's causes become conflicts, each with the chain of
requirements leading to it, a message a person can act on and the batch packs to block."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from resolvelib.structs import RequirementInformation

from attune_packs.domain.resolver.model import Candidate, PackNode, Requirement, Resolution, spec_text
from attune_packs.domain.resolver.provider import Provider, Reporter
from attune_packs.domain.semver import Constraint
from attune_packs.models import Conflict

# --- explaining an impossible resolution ---------------------------------------------------------


def _chain_to(requirement: Requirement, reporter: Reporter, nodes: Mapping[str, PackNode]) -> list[str]:
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


def _culprits(requirement: Requirement, reporter: Reporter, blocked: set[str]) -> set[str]:
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


def _offered_text(provider: Provider, ref: str) -> str:
    location, versions = provider.offered.get(ref, ("", []))
    if not versions:
        return ""
    shown = ", ".join(str(v) for v in reversed(versions[:12]))
    more = f" and {len(versions) - 12} older" if len(versions) > 12 else ""
    return f"registry {location} offers {ref} {shown}{more}"


def explain(
    causes: list[RequirementInformation[Requirement, Candidate]],
    provider: Provider,
    reporter: Reporter,
    nodes: Mapping[str, PackNode],
    result: Resolution,
) -> set[str]:
    """Turn resolvelib's causes into conflicts; return the batch packs to block."""
    by_ref: dict[str, list[Requirement]] = {}
    for cause in causes:
        by_ref.setdefault(cause.requirement.ref, []).append(cause.requirement)
    blamed: set[str] = set()
    for ref, requirements in by_ref.items():
        unique = list({(id(r.constraint), r.parent.label if r.parent else ""): r for r in requirements}.values())
        blamed |= _explain_one(ref, unique, provider, reporter, nodes, result)
    return blamed


def add_conflicts(
    result: Resolution, culprits: set[str], code: str, message: str, chain: list[str], already: set[str]
) -> None:
    for ref in sorted(culprits - already):
        result.conflicts.append(Conflict(pack_ref=ref, error_code=code, message=message, chain=chain))


def _explain_one(
    ref: str,
    requirements: list[Requirement],
    provider: Provider,
    reporter: Reporter,
    nodes: Mapping[str, PackNode],
    result: Resolution,
) -> set[str]:
    wanted = [r for r in requirements if r.parent is not None]
    blocked = result.blocked
    installed = provider.installed(ref)
    node = nodes.get(ref)
    blamed: set[str] = set()

    def requirers_of(reqs: Iterable[Requirement]) -> set[str]:
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
            add_conflicts(
                result,
                culprits,
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but this installation brings {ref} {node.version}: install a version of {ref} "
                f"that satisfies {spec_text(r.constraint)}, or a version of {r.parent.ref if r.parent else ref} "
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
            add_conflicts(
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
            add_conflicts(
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
            add_conflicts(
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
        add_conflicts(
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
            add_conflicts(
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
        add_conflicts(
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
    add_conflicts(
        result,
        culprits,
        "DEPENDENCY_CONFLICT",
        f"no version of {ref} satisfies every requirement together with its own dependencies "
        f"({'; '.join(r.describe() for r in wanted) or 'required by this installation'}; tried {tried})",
        [hop for r in wanted for hop in _chain_to(r, reporter, nodes)],
        blamed,
    )
    return blamed | culprits


def _fitting_in_catalog(provider: Provider, ref: str, constraint: Constraint) -> list[str]:
    found = provider.catalog().lookup(ref)
    if found is None:
        return []
    return [str(v) for v, _ in found[1] if constraint.allows(v)]
