"""Pydantic contracts of the four stages (DESIGN.md section 3) and of the state machine's items.

Requests ignore nothing silently: unknown fields are refused (``extra="forbid"``) so a typo in a
client is a 400, not a default. Responses are plain data; the state machine passes them between
stages as they are.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

COMPONENT_TYPES: tuple[str, ...] = (
    "actions",
    "sensors",
    "triggers",
    "rules",
    "workflows",
    "policies",
    "runtimes",
    "permission_sets",
    "queues",
    "aliases",
)


class Request(BaseModel):
    # defer_build: a model's validator is built when the model is first used, not at import (a
    # handler uses a few of these models; building all of them was most of its cold start).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# A stage run by the state machine stores its whole response in S3 under ``report_key`` and answers
# only the fields the state machine reads (``INLINE_FIELDS``) plus ``report``, the stored copy's
# location: Step Functions payloads stay small whatever the number of packs or components.
REPORT_KEY_PATTERN = r"^reports/installs/[^/\x00-\x1f\x7f]{1,80}/[a-z0-9_-]{1,80}\.json$"


# Packs in one installation, dependencies included: with the stage summaries of ``report_key``
# (a few hundred bytes per pack) the state machine's payloads stay well under 256 KiB.
MAX_PACKS_PER_INSTALLATION = 200
# A dependency round may ask for more (the resolver's own limit); those beyond the installation
# limit fail one by one with TOO_MANY_PACKS instead of failing the request.
MAX_RESOLVED_PACKS = 1000


class Reported(Request):
    # Not in the OpenAPI document: only the state machine sets it (the API refuses it).
    report_key: SkipJsonSchema[str | None] = Field(
        default=None,
        pattern=REPORT_KEY_PATTERN,
        description="store the whole response here and answer only its summary fields and `report`",
    )


class ReportedResponse(Response):
    INLINE_FIELDS: ClassVar[frozenset[str]] = frozenset()
    report: str | None = Field(default=None, description="s3:// location of the whole response (report_key)")


class PackFailure(Response):
    """One pack that a stage could not handle, with a stable code and an actionable message."""

    source: str
    pack_ref: str | None = None
    error: str
    error_code: str
    retriable: bool = False
    details: Any = None


# --- Download -----------------------------------------------------------------------------------


class LockPin(Request):
    """What a lockfile pins for one pack (``install --locked``): the download stage refuses any
    other content with ``LOCK_MISMATCH``."""

    pack_version: str = Field(max_length=256)
    checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    git_commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class DownloadRequest(Reported):
    packs: list[str] = Field(
        min_length=1,
        max_length=MAX_RESOLVED_PACKS,
        description="registry names (slack, slack@2.1.0, slack@>=2,<3), Git URLs (https://host/org/repo.git, "
        "optionally @ref), archive URLs (.tar.gz, .tgz, .zip) or s3://bucket/key",
    )
    registry_url: str | None = Field(default=None, description="index to use instead of the configured ones")
    ref_spec: str | None = Field(default=None, description="branch, tag or commit for Git URLs without their own @ref")
    timeout: int = Field(
        default=300, ge=1, le=900, description="seconds all network downloads of this request may take together"
    )
    verify_ssl: bool = Field(default=True, description="false: TLS certificates are not checked (warned per pack)")
    destination: str | None = None
    allow_unpinned: bool = Field(
        default=False, description="accept registry entries pinned by neither a checksum nor a Git commit id"
    )
    # Archives already downloaded by an earlier round (the dependency loop); they are carried
    # into ``pack_paths`` of the response so the next stage sees the whole set.
    known_pack_paths: list[str] = Field(default_factory=list, max_length=MAX_PACKS_PER_INSTALLATION)
    locked: dict[str, LockPin] | None = Field(
        default=None,
        max_length=MAX_PACKS_PER_INSTALLATION,
        description="pack ref -> pins of a lockfile: a pack not pinned, or other content, is LOCK_MISMATCH",
    )

    @field_validator("destination")
    @classmethod
    def _content_addressed_only(cls, value: str | None) -> str | None:
        if value not in (None, "", "archives/"):
            raise ValueError(
                "destination cannot be chosen: archives are stored content-addressed under archives/sha256/"
            )
        return value

    @field_validator("packs")
    @classmethod
    def _no_blank_sources(cls, packs: list[str]) -> list[str]:
        if any(not p.strip() for p in packs):
            raise ValueError("a pack source must not be empty")
        return [p.strip() for p in packs]


SourceType = Literal["registry", "git", "archive", "s3", "local"]


class DownloadedPack(Response):
    source: str
    source_type: SourceType
    pack_ref: str
    pack_version: str
    archive: str
    checksum: str = Field(description="sha256 of the stored (canonical) archive, the one its key names")
    source_checksum: str | None = Field(
        default=None, description="sha256 of the downloaded or uploaded bytes, before canonicalisation"
    )
    git_commit: str | None = Field(default=None, description="full commit id, for packs fetched from Git")
    size_bytes: int = Field(description="size of the stored (canonical) archive")
    stored: bool = Field(description="False when identical content was already stored")
    warnings: list[str] = Field(default_factory=list)


class DownloadResponse(ReportedResponse):
    INLINE_FIELDS = frozenset({"pack_paths", "total_count", "success_count", "failure_count"})
    downloaded_packs: list[DownloadedPack]
    failed_packs: list[PackFailure]
    pack_paths: list[str]
    total_count: int
    success_count: int
    failure_count: int


# --- Dependencies -------------------------------------------------------------------------------


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


class BuildOptions(Request):
    python_version: str = "3.12"
    nodejs_version: str = "20"
    locked_requirements: str | None = Field(
        default=None,
        pattern=r"^s3://[^/]+/locks/[0-9a-f]{64}\.json$",
        description="a verified lockfile (install --locked): Python environments install its pinned, hashed "
        "requirements with --require-hashes",
    )
    skip_python: bool = False
    skip_nodejs: bool = False
    force_rebuild: bool = False
    skip_tests: bool = False
    skip_validation: bool = Field(
        default=False, description="read component files leniently, as the other stages do with skip_validation"
    )
    timeout: int = Field(default=600, ge=60, le=28_800)

    @field_validator("python_version")
    @classmethod
    def _python_minor(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]+\.[0-9]+", value):
            raise ValueError("python_version is MAJOR.MINOR, for example 3.12")
        return value

    @field_validator("nodejs_version")
    @classmethod
    def _node_major(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]+", value):
            raise ValueError("nodejs_version is a major version, for example 20")
        return value


class BuildEnvsRequest(BuildOptions):
    pack_paths: list[str] = Field(min_length=1, max_length=500)


class EnvironmentArtifact(Response):
    artifact: str
    env_hash: str
    requirements_installed: list[str] = Field(default_factory=list)
    package_count: int = 0
    python_version: str | None = None
    nodejs_version: str | None = None
    size_bytes: int = 0
    cached: bool
    warnings: list[str] = Field(default_factory=list)
    artifact_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the artifact's bytes, recorded when it was built: readers check it before use",
    )


class BuiltEnvironment(Response):
    pack_ref: str
    pack_version: str | None = None
    archive: str | None = None
    environments: dict[str, EnvironmentArtifact]
    duration_ms: int
    test_result: dict[str, Any] | None = Field(
        default=None,
        description=(
            "None when the pack declares no tests; else {status: passed|failed|partial|skipped|error, total_tests, "
            "ran (passed + failed), passed, failed, skipped, pass_rate (passed / ran, 0.0 when none ran), "
            "failed_tests (names, '<runner>: <test>'), duration_ms, "
            "suites[{name, type, status, total, passed, failed, skipped, failed_tests, failures[{name, message}]}], "
            "policy{min_pass_rate, on_failure}, report (s3:// URI of the full report, '' when not run), "
            "interpreter} -- see services.build_reports.TestResult"
        ),
    )


class BuildSummary(Response):
    total_packs: int
    success_count: int
    failure_count: int
    python_envs_built: int
    nodejs_envs_built: int
    cache_hits: int
    total_duration_ms: int


class BuildEnvsResponse(Response):
    built_environments: list[BuiltEnvironment]
    failed_environments: list[PackFailure]
    summary: BuildSummary


class BuildTask(Request):
    """One Map item: build (or find) the environments of one pack, answering a task token."""

    task_token: str
    pack_path: str
    options: BuildOptions
    report_key: str | None = Field(
        default=None,
        pattern=REPORT_KEY_PATTERN,
        description="store the whole result here; the token is answered with a BuildReference",
    )


class AsyncBuildRequest(Request):
    """The build-envs stage sent asynchronously by the HTTP API: the report goes to S3."""

    async_build: BuildEnvsRequest
    installation_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def _build_event_kind(event: Any) -> str:
    if isinstance(event, BaseModel):
        fields = set(type(event).model_fields)
    else:
        fields = set(event) if isinstance(event, dict) else set()
    if "task_token" in fields:
        return "map_item"
    return "async" if "async_build" in fields else "direct"


BuildEvent = Annotated[
    Annotated[BuildTask, Tag("map_item")]
    | Annotated[AsyncBuildRequest, Tag("async")]
    | Annotated[BuildEnvsRequest, Tag("direct")],
    Discriminator(_build_event_kind),
]


class BuildPackEnvsEvent(RootModel[BuildEvent]):
    """What the build-envs function receives: a Map item of the state machine (``task_token``), an
    asynchronous request of the HTTP API (``async_build``), or a direct stage request (``pack_paths``)."""

    model_config = ConfigDict(defer_build=True)


class BuildReference(Response):
    """A Map item's answer when its whole result (a BuiltEnvironment) is stored as a report."""

    pack_ref: str
    pack_version: str | None = None
    report: str = Field(description="s3:// location of the BuiltEnvironment")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the stored bytes: readers check it")


class FailedBuild(Response):
    """A Map item whose build failed (shaped by the state machine's Catch)."""

    pack_ref: str
    failed: Literal[True]
    error_type: str
    error: str | None = None
    report: str | None = Field(default=None, description="where the whole failure report is, if the build stored one")


# --- Register -----------------------------------------------------------------------------------


class RegisterRequest(Reported):
    pack_paths: list[str] = Field(min_length=1, max_length=500)
    skip_validation: bool = False
    skip_tests: bool = False
    force: bool = False
    installation_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    requested_by: str | None = Field(default=None, max_length=1200, description="who asked: a token id, a user")
    build_results: list[BuiltEnvironment | FailedBuild | BuildReference] = Field(default_factory=list)


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


class InstallRequest(Request):
    """Input of the InstallPacks state machine. Every field is present in the execution input
    (JSONPath cannot default a missing field), so starters always send ``model_dump()``."""

    packs: list[str] = Field(min_length=1, max_length=MAX_PACKS_PER_INSTALLATION)
    registry_url: str | None = None
    ref_spec: str | None = None
    timeout: int = Field(default=300, ge=1, le=900)
    verify_ssl: bool = True
    allow_unpinned: bool = False
    skip_dependencies: bool = False
    skip_env_build: bool = False
    skip_tests: bool = False
    skip_validation: bool = False
    force: bool = False
    force_rebuild: bool = False
    skip_python: bool = False
    skip_nodejs: bool = False
    python_version: str = "3.12"
    nodejs_version: str = "20"
    build_timeout: int = Field(default=1800, ge=60, le=28_800)
    locked: dict[str, LockPin] | None = Field(
        default=None,
        max_length=MAX_PACKS_PER_INSTALLATION,
        description="set by install --locked (from a verified lockfile): the download stages enforce these pins",
    )
    locked_requirements: str | None = Field(
        default=None, description="set by install --locked: the stored lockfile whose Python pins the builds install"
    )
    started_by: str | None = Field(
        default=None,
        max_length=1200,
        description="who started it, set by the installer only: the authenticated principal (api:<token id>) "
        "or the uploaded object; never taken from a request body",
    )
    client_label: str | None = Field(
        default=None,
        max_length=200,
        description="UNTRUSTED: a free label the client chose (a user name, a ticket); shown, never relied on",
    )

    @model_validator(mode="after")
    def _stages_accept_it(self) -> InstallRequest:
        """Refuse now (400, no execution) what the first stages would refuse after it started."""
        DownloadRequest(
            packs=self.packs,
            registry_url=self.registry_url,
            ref_spec=self.ref_spec,
            timeout=self.timeout,
            verify_ssl=self.verify_ssl,
            allow_unpinned=self.allow_unpinned,
            locked=self.locked,
        )
        BuildOptions(
            python_version=self.python_version,
            nodejs_version=self.nodejs_version,
            skip_python=self.skip_python,
            skip_nodejs=self.skip_nodejs,
            locked_requirements=self.locked_requirements,
            force_rebuild=self.force_rebuild,
            skip_tests=self.skip_tests,
            timeout=self.build_timeout,
        )
        return self
