"""The register stage's request and results, and those of removal and rollback (DESIGN.md section 3.4)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from attune_packs.models.build import BuildReference, BuiltEnvironment, FailedBuild
from attune_packs.models.common import PackFailure, Reported, ReportedResponse, Response


class RegisterRequest(Reported):
    pack_paths: list[str] = Field(min_length=1, max_length=500)
    skip_validation: bool = False
    skip_tests: bool = False
    force: bool = False
    installation_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    requested_by: str | None = Field(default=None, max_length=1200, description="who asked: a token id, a user")
    build_results: list[BuiltEnvironment | FailedBuild | BuildReference] = Field(default_factory=list)
    # Set by the state machine: how its dependency loop ended, so a missing dependency can say why.
    dependency_rounds: int = Field(default=0, ge=0, le=1000, description="rounds of dependency downloads run")
    missing_dependency_count: int = Field(
        default=0, ge=0, description="dependencies still missing when the dependency loop ended"
    )


class RegisteredPack(Response):
    pack_ref: str
    pack_id: str
    pack_version: str
    storage_path: str
    components_registered: dict[str, int] = Field(description="one count per entry of COMPONENT_TYPES")
    test_result: dict[str, Any] | None = None
    validation_results: dict[str, Any]
    status: Literal["registered", "unchanged"]
    previous_version: str | None = Field(default=None, description="the version that was current before")


class RegisterSummary(Response):
    total_packs: int
    success_count: int
    failure_count: int
    total_components: int
    duration_ms: int


class RegisterResponse(ReportedResponse):
    INLINE_FIELDS = frozenset({"summary", "installation_id"})
    registered_packs: list[RegisteredPack]
    failed_packs: list[PackFailure]
    summary: RegisterSummary
    installation_id: str | None = Field(default=None, description="key of the installation record (INSTALL#<id>)")


class RemovedPack(Response):
    """The result of removing a pack: its pointer is gone, its version history stays for audit."""

    pack_ref: str
    removed_version: str
    status: Literal["removed"]
    forced: bool
    dependents: list[str] = Field(description="installed packs that depend on it (non-empty only when forced)")
    components_removed: int
    removed_at: str


class RolledBackPack(Response):
    """The result of rolling a pack back to a previously registered version."""

    pack_ref: str
    from_version: str
    to_version: str
    status: Literal["rolled_back", "unchanged"]
    rebuilt_from_archive: bool = Field(
        description="True when the version's component items had been cleaned up "
        "and were registered again from its archive"
    )
    storage_path: str
    components_registered: dict[str, int]


# --- Whole installation (the state machine's input) ---------------------------------------------
