"""Runtime settings, read once from the environment at cold start and passed down.

Services never read ``os.environ``; handlers build a :class:`Settings` through :func:`load_settings`
and hand it (or the parts needed) to the service they call.

Each function also has its own model (``DownloadPacksSettings`` …) that makes required what that
function cannot run without; ``wiring.configured`` validates it at cold start, so a missing
variable fails the function's initialisation with its name instead of a request half-way through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attune_packs.errors import ConfigurationError
from attune_packs.models.common import MAX_DEPENDENCY_ROUNDS


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    bucket_name: str = Field(alias="BUCKET_NAME")
    table_name: str = Field(default="", alias="TABLE_NAME")
    codebuild_project: str = Field(default="", alias="CODEBUILD_PROJECT")
    state_machine_arn: str = Field(default="", alias="STATE_MACHINE_ARN")
    build_envs_function: str = Field(default="", alias="BUILD_ENVS_FUNCTION")
    # Ordered registry indices: the first one holding a ref wins.
    registry_index_urls: tuple[str, ...] = Field(default=(), alias="REGISTRY_INDEX_URLS")
    # Local paths and file:// URLs as sources: only the local stack turns this on.
    allow_local_sources: bool = Field(default=False, alias="ALLOW_LOCAL_SOURCES")
    # CPU architecture the pack actions run on (Lambda's): part of every environment hash.
    target_architecture: str = Field(default="arm64", alias="TARGET_ARCHITECTURE")
    max_archive_bytes: int = Field(default=512 * 2**20, alias="MAX_ARCHIVE_BYTES")
    max_dependency_rounds: int = Field(default=MAX_DEPENDENCY_ROUNDS, alias="MAX_DEPENDENCY_ROUNDS")
    # Network downloads (issue 3): hosts or CIDRs that may be fetched although not globally
    # routable (the local stack and tests use loopback), plain http, and size/time limits.
    download_allow_networks: tuple[str, ...] = Field(default=(), alias="DOWNLOAD_ALLOW_NETWORKS")
    download_allow_http: bool = Field(default=False, alias="DOWNLOAD_ALLOW_HTTP")
    download_connect_timeout: float = Field(default=10.0, alias="DOWNLOAD_CONNECT_TIMEOUT")
    download_read_timeout: float = Field(default=30.0, alias="DOWNLOAD_READ_TIMEOUT")
    download_max_redirects: int = Field(default=5, alias="DOWNLOAD_MAX_REDIRECTS")
    # npm registry hosts a lockfile's resolved URLs may point to (issue 12).
    npm_registry_hosts: tuple[str, ...] = Field(default=("registry.npmjs.org",), alias="NPM_REGISTRY_HOSTS")
    # Platform checks (issue 4): the Attune / StackStorm version packs are installed into.
    platform_version: str = Field(default="3.9.0", alias="PLATFORM_VERSION")
    # Registry (issue 6): how many registrations of a pack keep their component items (the
    # current one included); older ones keep only their version record, for audit.
    keep_versions: int = Field(default=5, ge=1, le=40, alias="KEEP_VERSIONS")

    @field_validator("registry_index_urls", "download_allow_networks", "npm_registry_hosts", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(u.strip() for u in value.split(",") if u.strip())
        return value


def settings_from(environ: Mapping[str, str]) -> Settings:
    return Settings.model_validate(dict(environ))


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The process-wide settings (cached: read once per cold start)."""
    return settings_from(os.environ)


# --- one model per function: what it cannot run without -------------------------------------------


class DownloadPacksSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)  # the managed registry indices


class GetPackDependenciesSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)


class BuildPackEnvsSettings(Settings):
    codebuild_project: str = Field(alias="CODEBUILD_PROJECT", min_length=1)


class RegisterPacksSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)


class ServeApiSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)
    build_envs_function: str = Field(alias="BUILD_ENVS_FUNCTION", min_length=1)


class AuthorizeRequestSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)


class ReportBuildResultSettings(Settings):
    pass


class StartUploadInstallSettings(Settings):
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)


SettingsT = TypeVar("SettingsT", bound=Settings)


def validate_settings(model: type[SettingsT], environ: Mapping[str, str]) -> SettingsT:
    """``model`` over ``environ``; a problem names every variable concerned."""
    try:
        return model.model_validate(dict(environ))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {'is not set' if err['type'] == 'missing' else err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"{model.__name__}: {problems}", error_code="SETTING_MISSING") from exc
