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
        blamed |= _Explanation(ref, unique, provider, reporter, nodes, result).run()
    return blamed


def add_conflicts(
    result: Resolution, culprits: set[str], code: str, message: str, chain: list[str], already: set[str]
) -> None:
    for ref in sorted(culprits - already):
        result.conflicts.append(Conflict(pack_ref=ref, error_code=code, message=message, chain=chain))


class _Explanation:
    """Why the requirements on one pack cannot be met. The causes are tried from the most specific
    (a fixed version someone excludes) to the least (versions whose own dependencies fail); the
    first that blames a batch pack is the explanation."""

    def __init__(
        self,
        ref: str,
        requirements: list[Requirement],
        provider: Provider,
        reporter: Reporter,
        nodes: Mapping[str, PackNode],
        result: Resolution,
    ) -> None:
        self.ref = ref
        self.requirements = requirements
        self.wanted = [r for r in requirements if r.parent is not None]
        self.provider = provider
        self.reporter = reporter
        self.nodes = nodes
        self.result = result
        self.blocked = result.blocked
        self.installed = provider.installed(ref)
        self.node = nodes.get(ref)
        self.blamed: set[str] = set()

    def run(self) -> set[str]:
        for fixed_version_step in (self._batch_version_excluded, self._batch_pack_blocked, self._installed_kept):
            fixed_version_step()
            if self.blamed:
                return self.blamed
        supply = self.provider.supply(self.ref)
        rejected = self.provider.rejected.get(self.ref, [])
        if not supply and not rejected:
            self._not_found()
            return self.blamed
        everything = supply + [c for c, _, _ in rejected]
        offered = _offered_text(self.provider, self.ref) or "the candidates are " + ", ".join(
            c.label for c in everything
        )
        self._nothing_fits(everything, offered)
        if self.blamed:
            return self.blamed
        self._no_version_fits_both(everything, offered)
        if self.blamed:
            return self.blamed
        jointly = [c for c in everything if all(r.constraint.allows(c.version) for r in self.wanted)]
        if not self._ruled_out(jointly, rejected):
            self._own_dependencies_fail(jointly)
        return self.blamed

    # helpers ---------------------------------------------------------------------------------------

    def _culprits(self, requirement: Requirement) -> set[str]:
        return _culprits(requirement, self.reporter, self.blocked)

    def _requirers(self, requirements: Iterable[Requirement]) -> set[str]:
        found: set[str] = set()
        for r in requirements:
            found |= self._culprits(r)
        return found

    def _chain(self, requirement: Requirement) -> list[str]:
        return _chain_to(requirement, self.reporter, self.nodes)

    def _report(self, culprits: set[str], code: str, message: str, chain: list[str]) -> None:
        add_conflicts(self.result, culprits, code, message, chain, self.blamed)
        self.blamed |= culprits

    # the causes, most specific first ---------------------------------------------------------------

    def _batch_version_excluded(self) -> None:
        """The batch brings ref (fixed): whoever excludes its version is at fault."""
        ref, node = self.ref, self.node
        if node is None or ref in self.blocked:
            return
        for r in [r for r in self.wanted if not r.constraint.allows(node.version)]:
            self._report(
                self._culprits(r),
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but this installation brings {ref} {node.version}: install a version of {ref} "
                f"that satisfies {spec_text(r.constraint)}, or a version of {r.parent.ref if r.parent else ref} "
                f"that accepts {ref} {node.version}",
                [*self._chain(r), f"this installation brings {ref} {node.version}"],
            )

    def _batch_pack_blocked(self) -> None:
        """A batch pack that cannot be installed: only an installed version that fits can stand in."""
        ref, node, installed = self.ref, self.node, self.installed
        if node is None or ref not in self.blocked:
            return
        for r in self.wanted:
            if installed is not None and r.constraint.allows(installed.version):
                continue
            have = f"; {ref} {installed.version} is installed but does not fit" if installed else ""
            self._report(
                self._culprits(r),
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but {ref} {node.version} from this installation cannot be installed (see its "
                f"own conflict){have}",
                [*self._chain(r), f"{ref} {node.version} is blocked"],
            )

    def _installed_kept(self) -> None:
        """Installed and not to be changed."""
        ref, installed = self.ref, self.installed
        if installed is None or not (self.node is None or ref in self.blocked) or self.provider.force:
            return
        for r in [r for r in self.wanted if not r.constraint.allows(installed.version)]:
            culprits = self._culprits(r)
            fitting = _fitting_in_catalog(self.provider, ref, r.constraint)
            upgrade = f" (the registry offers {', '.join(reversed(fitting[:5]))})" if fitting else ""
            self._report(
                culprits,
                "DEPENDENCY_CONFLICT",
                f"{r.describe()}, but {ref} {installed.version} is installed: install with force to change "
                f"{ref}{upgrade}, or use a version of {r.parent.ref if r.parent else ref} that accepts "
                f"{ref} {installed.version}",
                [*self._chain(r), f"installed: {ref} {installed.version}"],
            )

    def _not_found(self) -> None:
        """Nothing anywhere offers ref."""
        ref = self.ref
        searched = ", ".join(self.provider.catalog().locations) or "no registry index is configured"
        for r in self.wanted:
            self._report(
                self._culprits(r),
                "DEPENDENCY_NOT_FOUND",
                f"{r.describe()}, which is not installed, not part of this installation and not in any registry "
                f"index (searched: {searched}); add {ref} to the installation or publish it in a registry",
                [*self._chain(r), f"{ref}: not found"],
            )

    def _nothing_fits(self, everything: list[Candidate], offered: str) -> None:
        """One requirement that nothing offered satisfies."""
        for r in self.wanted:
            if any(r.constraint.allows(c.version) for c in everything):
                continue
            self._report(
                self._culprits(r),
                "DEPENDENCY_NOT_FOUND",
                f"{r.describe()}, but no such version exists: {offered}",
                [*self._chain(r), offered],
            )

    def _no_version_fits_both(self, everything: list[Candidate], offered: str) -> None:
        """Two requirements that no offered version satisfies together."""
        wanted = self.wanted
        for i, first in enumerate(wanted):
            for second in wanted[i + 1 :]:
                if any(first.constraint.allows(c.version) and second.constraint.allows(c.version) for c in everything):
                    continue
                self._report(
                    self._culprits(first) | self._culprits(second),
                    "DEPENDENCY_CONFLICT",
                    f"{first.describe()}, but {second.describe()}: no version of {self.ref} satisfies both "
                    f"({offered}); relax one of the constraints, or install these packs separately",
                    [*self._chain(first), *self._chain(second)],
                )

    def _ruled_out(self, jointly: list[Candidate], rejected: list[tuple[Candidate, str, str]]) -> bool:
        """Versions satisfy every constraint but the platform (or a dependency cycle) rules them out."""
        reasons = {id(c): (code, reason) for c, code, reason in rejected}
        if not jointly or not all(id(c) in reasons for c in jointly):
            return False
        wanted = self.wanted
        detail = "; ".join(f"{c.label}: {reasons[id(c)][1]}" for c in jointly[:3])
        code = reasons[id(jointly[0])][0]
        why = {
            "PLATFORM_INCOMPATIBLE": "is incompatible with this platform",
            "DEPENDENCY_CYCLE": "forms a dependency cycle",
        }.get(code, "cannot be used with the rest of this installation")
        self._report(
            self._requirers(wanted),
            code,
            f"{'; '.join(r.describe() for r in wanted)}, but every version of {self.ref} that fits {why}: {detail}",
            [*self._chain(wanted[0]), detail] if wanted else [detail],
        )
        return True

    def _own_dependencies_fail(self, jointly: list[Candidate]) -> None:
        """Versions satisfy every constraint, but their own dependencies could not be satisfied."""
        wanted = self.wanted
        culprits = self._requirers(wanted) or ({r.ref for r in self.requirements if r.parent is None} - self.blocked)
        tried = ", ".join(c.label for c in jointly[:5]) or "none"
        self._report(
            culprits,
            "DEPENDENCY_CONFLICT",
            f"no version of {self.ref} satisfies every requirement together with its own dependencies "
            f"({'; '.join(r.describe() for r in wanted) or 'required by this installation'}; tried {tried})",
            [hop for r in wanted for hop in self._chain(r)],
        )


def _fitting_in_catalog(provider: Provider, ref: str, constraint: Constraint) -> list[str]:
    found = provider.catalog().lookup(ref)
    if found is None:
        return []
    return [str(v) for v, _ in found[1] if constraint.allows(v)]
