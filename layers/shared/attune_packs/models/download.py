"""The download stage's request and response (DESIGN.md section 3.1)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from attune_packs.models.common import (
    MAX_PACKS_PER_INSTALLATION,
    MAX_RESOLVED_PACKS,
    LockPin,
    PackFailure,
    Reported,
    ReportedResponse,
    Response,
)


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
