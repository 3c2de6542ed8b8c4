"""The build stage's requests (a Map item, an asynchronous request, a direct one) and results (DESIGN.md
section 3.3)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from attune_packs.models.common import REPORT_KEY_PATTERN, PackFailure, Request, Response


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

    @classmethod
    def of(
        cls, built: list[BuiltEnvironment], failed: list[PackFailure], *, cache_hits: int, duration_ms: int
    ) -> BuildEnvsResponse:
        """The stage's answer, its summary counted from ``built`` (environments not found cached
        were built) and ``failed``."""
        built_kinds = [kind for b in built for kind, env in b.environments.items() if not env.cached]
        return cls(
            built_environments=built,
            failed_environments=failed,
            summary=BuildSummary(
                total_packs=len(built) + len(failed),
                success_count=len(built),
                failure_count=len(failed),
                python_envs_built=built_kinds.count("python"),
                nodejs_envs_built=built_kinds.count("nodejs"),
                cache_hits=cache_hits,
                total_duration_ms=duration_ms,
            ),
        )


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
