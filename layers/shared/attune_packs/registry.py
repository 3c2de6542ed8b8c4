"""Registry indices: Attune's ``index.json`` (``packs[]`` with ``install_sources[]``).

Pure: parsing and lookup. Fetching an index is the download service's job.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from attune_packs.errors import ManifestError, SourceError
from attune_packs.semver import Constraint, Version

MAX_INDEX_BYTES = 16 * 2**20
CHECKSUM_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


class InstallSource(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["git", "archive"]
    url: str
    ref: str | None = None
    checksum: str | None = None

    @field_validator("checksum")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value is not None and not CHECKSUM_PATTERN.fullmatch(value.lower()):
            raise ValueError("checksum must be 'sha256:' followed by 64 hex digits")
        return value.lower() if value else value


class IndexEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    ref: str
    version: str
    description: str = ""
    install_sources: list[InstallSource] = Field(min_length=1)

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)


class RegistryIndex(BaseModel):
    model_config = ConfigDict(extra="allow")
    packs: list[IndexEntry]


def parse_index(content: bytes, *, source: str) -> RegistryIndex:
    if len(content) > MAX_INDEX_BYTES:
        raise SourceError(f"registry index {source} is larger than 16 MiB", error_code="INDEX_INVALID")
    try:
        return RegistryIndex.model_validate(json.loads(content))
    except (ValueError, ValidationError) as exc:
        raise SourceError(f"registry index {source} is invalid: {exc}", error_code="INDEX_INVALID") from exc


def parse_registry_ref(text: str) -> tuple[str, Constraint]:
    """``slack``, ``slack@2.1.0``, ``slack@>=2,<3``."""
    ref, _, spec = text.partition("@")
    return ref.strip(), Constraint.parse(spec.strip() or "*")


def find_entry(indices: list[tuple[str, RegistryIndex]], ref: str, constraint: Constraint) -> tuple[str, IndexEntry]:
    """The best version of ``ref`` allowed by ``constraint`` in the first index that lists ``ref``."""
    for location, index in indices:
        candidates = []
        for entry in index.packs:
            if entry.ref != ref:
                continue
            try:
                version = entry.semver
            except ManifestError:  # an index entry with an invalid version is not a candidate
                continue
            candidates.append((version, entry))
        if not candidates:
            continue
        allowed = [(v, e) for v, e in candidates if constraint.allows(v)]
        if not allowed:
            offered = ", ".join(sorted(str(v) for v, _ in candidates))
            raise SourceError(
                f"registry {location} has {ref} {offered} but none matches {constraint}",
                error_code="VERSION_NOT_FOUND",
            )
        return location, max(allowed, key=lambda pair: pair[0])[1]
    searched = ", ".join(location for location, _ in indices) or "(no registry configured)"
    raise SourceError(f"pack {ref!r} is not in any registry index ({searched})", error_code="PACK_NOT_FOUND")
