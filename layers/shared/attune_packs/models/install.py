"""The whole installation: the state machine's input."""

from __future__ import annotations

from pydantic import Field, model_validator

from attune_packs.models.build import BuildOptions
from attune_packs.models.common import MAX_PACKS_PER_INSTALLATION, LockPin, Request
from attune_packs.models.download import DownloadRequest


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
        self.download_request()
        self.build_options()
        return self

    def download_request(self) -> DownloadRequest:
        """What the state machine asks the download stage (its first state)."""
        return DownloadRequest(
            packs=self.packs,
            registry_url=self.registry_url,
            ref_spec=self.ref_spec,
            timeout=self.timeout,
            verify_ssl=self.verify_ssl,
            allow_unpinned=self.allow_unpinned,
            locked=self.locked,
        )

    def build_options(self) -> BuildOptions:
        """What the state machine gives each build (its BuildEnvironments Map), ``skip_env_build`` aside."""
        return BuildOptions(
            python_version=self.python_version,
            nodejs_version=self.nodejs_version,
            skip_python=self.skip_python,
            skip_nodejs=self.skip_nodejs,
            locked_requirements=self.locked_requirements,
            force_rebuild=self.force_rebuild,
            skip_tests=self.skip_tests,
            timeout=self.build_timeout,
        )
