"""The dependencies stage's request and response (DESIGN.md section 3.2)."""

from __future__ import annotations

from pydantic import Field

from attune_packs.models.common import PackFailure, Reported, ReportedResponse, Response


class DependenciesRequest(Reported):
    pack_paths: list[str] = Field(min_length=1, max_length=500)
    skip_validation: bool = False
    force: bool = Field(default=False, description="installed packs may be upgraded or changed to satisfy dependencies")
    registry_url: str | None = Field(default=None, description="index to resolve from; else the configured indices")
    python_version: str = Field(default="3.12", pattern=r"^[0-9]+\.[0-9]+$", description="Python environments target")
    nodejs_version: str = Field(default="20", pattern=r"^[0-9]+$", description="Node.js major environments target")


class Dependency(Response):
    pack_ref: str
    version_spec: str
    required_by: str
    already_installed: bool
    installed_version: str | None = None
    satisfied: bool = Field(description="satisfied now, by an installed pack or one of this installation")
    provided_by: str | None = Field(default=None, description="archive in this batch that satisfies it")
    resolved_version: str | None = Field(default=None, description="the version the resolution settles on")


class Resolution(Response):
    """A pack the resolution chose to fetch: the exact version and the registry index it comes from."""

    pack_ref: str
    version: str
    index: str = Field(description="location of the registry index whose entry was chosen")
    required_by: list[str] = Field(description="the packs (ref version) that require it")
    installed_version: str | None = Field(default=None, description="the installed version it replaces (force)")


class PythonRequirements(Response):
    version: str | None = Field(default=None, description="declared Python constraint (runtime_deps / python_versions)")
    requirements_file: str | None = None
    packages: list[str] = Field(default_factory=list, description="normalised PEP 508 requirements, includes resolved")
    included_files: list[str] = Field(default_factory=list, description="files pulled in with -r, inside the pack")
    hashed: bool = Field(default=False, description="every requirement carries --hash")


class NodeRequirements(Response):
    version: str | None = None
    package_file: str | None = None
    lockfile: str | None = None
    warnings: list[str] = Field(default_factory=list)


class RuntimeRequirements(Response):
    python: PythonRequirements | None = None
    nodejs: NodeRequirements | None = None


class AnalyzedPack(Response):
    pack_ref: str
    pack_version: str
    archive: str
    needs_python: bool
    needs_nodejs: bool
    has_tests: bool = Field(default=False, description="pack.yaml declares enabled test runners")
    blocked: bool = Field(default=False, description="a conflict keeps it from being installed")


class Conflict(Response):
    pack_ref: str = Field(description="the pack of this installation that the conflict blocks")
    message: str
    error_code: str
    chain: list[str] = Field(default_factory=list, description="the requirements leading to the conflict, in order")


class DependenciesResponse(ReportedResponse):
    INLINE_FIELDS = frozenset(
        {
            "missing_dependencies",
            "missing_count",
            "install_order",
            "build_items",
            "build_count",
            "registrable_paths",
            "registrable_count",
        }
    )
    dependencies: list[Dependency]
    runtime_requirements: dict[str, RuntimeRequirements]
    missing_dependencies: list[str] = Field(description="exact pins ref@=X.Y.Z the download loop fetches")
    conflicts: list[Conflict]
    install_order: list[str]
    analyzed_packs: list[AnalyzedPack]
    build_items: list[AnalyzedPack] = Field(
        default_factory=list, description="one item per pack needing an environment or running tests (Map input)"
    )
    registrable_paths: list[str] = Field(
        default_factory=list, description="archives of the packs nothing blocks, dependencies first (register input)"
    )
    registrable_count: int = 0
    errors: list[PackFailure]
    missing_count: int = 0
    build_count: int = 0
    resolution: list[Resolution] = Field(default_factory=list, description="the packs chosen from registry indices")


# --- Build environments -------------------------------------------------------------------------
