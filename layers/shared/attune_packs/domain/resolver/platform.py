"""Whether a pack can run on the platform packs are installed into (Attune/StackStorm, Python and
Node.js versions), for batch packs and for registry index entries alike."""

from __future__ import annotations

from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PythonVersion

from attune_packs.domain.registry_index import IndexEntry
from attune_packs.domain.resolver.model import PlatformTarget
from attune_packs.domain.semver import Constraint
from attune_packs.errors import ManifestError

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


def entry_platform_problems(entry: IndexEntry, target: PlatformTarget) -> list[str]:
    """Platform problems of an index entry, from the pack.yaml fields an index may copy."""
    extra: dict[str, Any] = entry.model_extra or {}
    platform = extra.get("attune_version") or extra.get("stackstorm_version")
    python_versions = extra.get("python_versions")
    runtime = deps if isinstance(deps := extra.get("runtime_deps"), dict) else {}
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
