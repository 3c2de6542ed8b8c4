"""The stage responses as Attune's clients read them over HTTP: Attune's field names and types
(``crates/api/src/dto/pack.rs``), with this project's fields alongside.

Inside the state machine the stages answer their own models (``attune_packs.models``); only the
HTTP routes reshape them here. Where Attune names a local path (``pack_path``, ``virtualenv_path``,
``node_modules_path``) this API answers the S3 location that plays that role.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from attune_packs.models import (
    AnalyzedPack,
    BuildEnvsResponse,
    BuildSummary,
    DependenciesResponse,
    DownloadedPack,
    DownloadResponse,
    PackFailure,
    RegisteredPack,
    RegisterResponse,
    RegisterSummary,
    RuntimeRequirements,
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# --- download -----------------------------------------------------------------------------------


class DownloadedPackOut(DownloadedPack):
    pack_path: str = Field(description="Attune's name for the stored archive: the same s3:// URI as `archive`")


class DownloadPacksData(DownloadResponse):
    report: SkipJsonSchema[str | None] = Field(default=None, exclude=True)  # state machine runs only
    downloaded_packs: list[DownloadedPackOut]  # type: ignore[assignment]


def download_data(response: DownloadResponse) -> DownloadPacksData:
    fields = response.model_dump(mode="json")
    fields["downloaded_packs"] = [{**p, "pack_path": p["archive"]} for p in fields["downloaded_packs"]]
    return DownloadPacksData.model_validate(fields)


# --- dependencies -------------------------------------------------------------------------------


class MissingDependencyOut(_Out):
    pack_ref: str
    version_spec: str = Field(description="the constraints the packs of this request put on it, joined by ', '")
    required_by: str
    already_installed: bool = False
    pin: str = Field(description="the exact pin (ref@=X.Y.Z) the resolution chose and the download loop fetches")


class RuntimeRequirementsOut(RuntimeRequirements):
    pack_ref: str


class AnalyzedPackOut(AnalyzedPack):
    pack_path: str = Field(description="Attune's name for the analysed archive (`archive`)")
    has_dependencies: bool
    dependency_count: int


class DependencyErrorOut(PackFailure):
    pack_path: str = Field(description="Attune's name for the source that failed (`source`)")


class DependenciesData(DependenciesResponse):
    report: SkipJsonSchema[str | None] = Field(default=None, exclude=True)  # state machine runs only
    missing_dependencies: list[MissingDependencyOut]  # type: ignore[assignment]
    missing_pins: list[str] = Field(description="the exact pins ref@=X.Y.Z (the stage's own missing_dependencies)")
    runtime_requirements: dict[str, RuntimeRequirementsOut]  # type: ignore[assignment]
    analyzed_packs: list[AnalyzedPackOut]  # type: ignore[assignment]
    errors: list[DependencyErrorOut]  # type: ignore[assignment]


def _missing(response: DependenciesResponse) -> list[dict[str, Any]]:
    missing = []
    for pin in response.missing_dependencies:
        ref = pin.split("@", 1)[0]
        specs = sorted({d.version_spec for d in response.dependencies if d.pack_ref == ref and d.version_spec})
        by = sorted({d.required_by for d in response.dependencies if d.pack_ref == ref})
        missing.append(
            {
                "pack_ref": ref,
                "version_spec": ", ".join(specs) or "*",
                "required_by": ", ".join(by),
                "already_installed": False,
                "pin": pin,
            }
        )
    return missing


def dependencies_data(response: DependenciesResponse) -> DependenciesData:
    fields = response.model_dump(mode="json")
    counts: dict[str, int] = {}
    for dependency in response.dependencies:
        owner = dependency.required_by.split("@", 1)[0]
        counts[owner] = counts.get(owner, 0) + 1
    fields["missing_pins"] = fields["missing_dependencies"]
    fields["missing_dependencies"] = _missing(response)
    fields["runtime_requirements"] = {
        ref: {**req, "pack_ref": ref} for ref, req in fields["runtime_requirements"].items()
    }
    fields["analyzed_packs"] = [
        {
            **p,
            "pack_path": p["archive"],
            "has_dependencies": counts.get(p["pack_ref"], 0) > 0,
            "dependency_count": counts.get(p["pack_ref"], 0),
        }
        for p in fields["analyzed_packs"]
    ]
    fields["errors"] = [{**e, "pack_path": e["source"]} for e in fields["errors"]]
    return DependenciesData.model_validate(fields)


# --- build environments -------------------------------------------------------------------------


class _EnvironmentOut(_Out):
    package_count: int
    artifact: str = Field(description="s3:// location of the built environment (tar.gz)")
    env_hash: str
    requirements: list[str] = Field(description="the requirements installed in it")
    cached: bool
    size_bytes: int = 0
    warnings: list[str] = Field(default_factory=list)


class PythonEnvironmentOut(_EnvironmentOut):
    virtualenv_path: str = Field(description="Attune's virtualenv folder: here the artifact's s3:// location")
    requirements_installed: bool
    python_version: str


class NodeJsEnvironmentOut(_EnvironmentOut):
    node_modules_path: str = Field(description="Attune's node_modules folder: here the artifact's s3:// location")
    dependencies_installed: bool
    nodejs_version: str


class EnvironmentsOut(_Out):
    python: PythonEnvironmentOut | None = None
    nodejs: NodeJsEnvironmentOut | None = None


class BuiltEnvironmentOut(_Out):
    pack_ref: str
    pack_path: str = Field(description="the pack's archive (s3://)")
    environments: EnvironmentsOut
    duration_ms: int
    pack_version: str | None = None
    test_result: dict[str, Any] | None = None


class FailedEnvironmentOut(PackFailure):
    pack_ref: str
    pack_path: str
    runtime: str = Field(description="python, nodejs, or 'unknown' when the failure is not one runtime's")


class BuildEnvsData(_Out):
    built_environments: list[BuiltEnvironmentOut]
    failed_environments: list[FailedEnvironmentOut]
    summary: BuildSummary
    status: Literal["SUCCEEDED", "RUNNING"] = Field(
        description="SUCCEEDED: every environment is answered here; RUNNING: builds continue, poll status_url"
    )
    installation_id: str | None = None
    status_url: str | None = None
    pending_packs: list[str] = Field(default_factory=list, description="archives whose environments are building")


def _environment(kind: str, env: dict[str, Any]) -> dict[str, Any]:
    common = {
        "package_count": env.get("package_count", 0),
        "artifact": env["artifact"],
        "env_hash": env["env_hash"],
        "requirements": env.get("requirements_installed") or [],
        "cached": env["cached"],
        "size_bytes": env.get("size_bytes", 0),
        "warnings": env.get("warnings") or [],
    }
    if kind == "python":
        return {
            **common,
            "virtualenv_path": env["artifact"],
            "requirements_installed": True,
            "python_version": env.get("python_version") or "",
        }
    return {
        **common,
        "node_modules_path": env["artifact"],
        "dependencies_installed": True,
        "nodejs_version": env.get("nodejs_version") or "",
    }


def _runtime_of(failure: PackFailure) -> str:
    code = failure.error_code.upper()
    return "nodejs" if "NPM" in code or "NODE" in code else "python" if "PYTHON" in code or "PIP" in code else "unknown"


def build_envs_data(response: BuildEnvsResponse, **extra: Any) -> BuildEnvsData:
    built = [
        {
            "pack_ref": b.pack_ref,
            "pack_path": b.archive or "",
            "pack_version": b.pack_version,
            "environments": {
                kind: _environment(kind, env.model_dump(mode="json")) for kind, env in b.environments.items()
            },
            "duration_ms": b.duration_ms,
            "test_result": b.test_result,
        }
        for b in response.built_environments
    ]
    failed = [
        {**f.model_dump(mode="json"), "pack_ref": f.pack_ref or "", "pack_path": f.source, "runtime": _runtime_of(f)}
        for f in response.failed_environments
    ]
    return BuildEnvsData.model_validate(
        {
            "built_environments": built,
            "failed_environments": failed,
            "summary": response.summary.model_dump(),
            "status": "SUCCEEDED",
            **extra,
        }
    )


# --- register -----------------------------------------------------------------------------------


class RegisteredPackOut(RegisteredPack):
    pack_id: int = Field(  # type: ignore[assignment]
        description="Attune's numeric pack id: a stable number derived from pack_key (53 bits, JSON-safe)"
    )
    pack_key: str = Field(description="this installer's id of the registered version: ref@version")


def attune_pack(pack: dict[str, Any]) -> dict[str, Any]:
    """An installed pack as Attune's PackResponse names it: plus ``id``, a stable number for its ref."""
    return {**pack, "id": numeric_pack_id(str(pack["ref"]))}


def numeric_pack_id(pack_key: str) -> int:
    """A stable integer for ``ref@version`` that Attune's clients can hold in an i64 (and
    JavaScript in a number): the first 53 bits of its sha256."""
    return int(hashlib.sha256(pack_key.encode()).hexdigest()[:14], 16) >> 3


class FailedRegistrationOut(PackFailure):
    pack_ref: str
    pack_path: str
    error_stage: str = Field(description="where it failed: validation (the pack), dependencies, registration")


class RegisterPacksData(RegisterResponse):
    report: SkipJsonSchema[str | None] = Field(default=None, exclude=True)  # state machine runs only
    registered_packs: list[RegisteredPackOut]  # type: ignore[assignment]
    failed_packs: list[FailedRegistrationOut]  # type: ignore[assignment]
    summary: RegisterSummary


_VALIDATION_CODES = ("ARCHIVE", "MANIFEST", "PACK_", "COMPONENT", "SOURCE")


def failed_registration(failure: PackFailure, stage: str | None = None) -> dict[str, Any]:
    if stage is None:
        stage = "validation" if failure.error_code.startswith(_VALIDATION_CODES) else "registration"
    return {
        **failure.model_dump(mode="json"),
        "pack_ref": failure.pack_ref or "",
        "pack_path": failure.source,
        "error_stage": stage,
    }


def register_data(response: RegisterResponse, refused: list[PackFailure] | None = None) -> RegisterPacksData:
    fields = response.model_dump(mode="json")
    for pack in fields["registered_packs"]:
        pack["pack_key"] = pack["pack_id"]
        pack["pack_id"] = numeric_pack_id(pack["pack_key"])
        pack["validation_results"] = {"errors": [], **(pack.get("validation_results") or {})}
    fields["failed_packs"] = [failed_registration(f) for f in response.failed_packs] + [
        failed_registration(f, "dependencies") for f in refused or []
    ]
    if refused:
        summary = fields["summary"]
        summary["total_packs"] += len(refused)
        summary["failure_count"] += len(refused)
    return RegisterPacksData.model_validate(fields)
