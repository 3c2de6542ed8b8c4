"""Registry indices: Attune's ``index.json`` (``packs[]`` with ``install_sources[]``).

Pure: parsing and lookup. Fetching an index is the download service's job.

Indices are ordered: the first index that lists a ref is the only one consulted for it (a later
index cannot shadow or add versions of a pack an earlier one publishes). An entry may carry
``dependencies`` so the resolver can look ahead before downloading, in Attune's form
(``pack-registry-spec.md``: ``{attune_version, python_version, nodejs_version, packs: ["ref@1.2.0",
"ref@>=1,<2", "ref"]}``) or in pack.yaml's syntax (a list of ``pack``, ``pack=1.2.3``,
``pack>=1,<2``, or a mapping ref -> constraint); an entry without it is taken to have none (the
dependencies stage reads the real pack.yaml once it is downloaded). Attune's other entry fields
are kept: ``runtime_deps``, ``contents`` (``content_counts`` counts each kind), ``checksum`` on the
entry and on each install source, and everything else (``label``, ``license``, ``meta`` ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from attune_packs.domain.manifest import normalise_dependencies
from attune_packs.domain.semver import Constraint, Version
from attune_packs.errors import AttuneError, ManifestError, SourceError

MAX_INDEX_BYTES = 16 * 2**20
CHECKSUM_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


def normalised_checksum(value: str | None) -> str | None:
    """An index's ``checksum``: ``sha256:`` and 64 hex digits, in lower case."""
    if value is not None and not CHECKSUM_PATTERN.fullmatch(value.lower()):
        raise ValueError("checksum must be 'sha256:' followed by 64 hex digits")
    return value.lower() if value else value


class InstallSource(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    type: Literal["git", "archive"]
    url: str
    ref: str | None = None
    checksum: str | None = None

    @field_validator("checksum")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        return normalised_checksum(value)


_ATTUNE_DEPENDENCY_KEYS = frozenset({"attune_version", "python_version", "nodejs_version", "packs"})


def _is_attune_dependencies(value: object) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= _ATTUNE_DEPENDENCY_KEYS


def _pack_list(packs: object) -> object:
    """Attune's ``packs: ["slack@2.1.0", "core"]`` in the form pack.yaml's list understands."""
    if not isinstance(packs, list):
        return packs
    converted: list[object] = []
    for entry in packs:
        if isinstance(entry, str) and "@" in entry and "://" not in entry:
            ref, _, spec = entry.partition("@")
            converted.append({"ref": ref.strip(), "version": spec.strip() or "*"})
        else:
            converted.append(entry)
    return converted


class IndexEntry(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    ref: str
    version: str
    description: str = ""
    install_sources: list[InstallSource] = Field(min_length=1)
    checksum: str | None = Field(default=None, description="sha256:<hex> of the pack's archive")
    dependencies: dict[str, str] = Field(default_factory=dict, description="ref -> constraint, as in pack.yaml")
    attune_version: str | None = Field(default=None, description="dependencies.attune_version")
    python_version: str | None = Field(default=None, description="dependencies.python_version")
    nodejs_version: str | None = Field(default=None, description="dependencies.nodejs_version")
    runtime_deps: list[str] = Field(default_factory=list)
    contents: dict[str, list[Any] | int] = Field(default_factory=dict, description="kind -> components (or count)")

    @model_validator(mode="before")
    @classmethod
    def _attune_dependencies(cls, data: Any) -> Any:
        """Attune's ``dependencies`` object: platform and runtime constraints beside the packs."""
        if not isinstance(data, dict) or not _is_attune_dependencies(data.get("dependencies")):
            return data
        data = dict(data)
        block = data.pop("dependencies")
        for key in ("attune_version", "python_version", "nodejs_version"):
            if block.get(key) is not None:
                data.setdefault(key, block[key])
        data["dependencies"] = _pack_list(block.get("packs"))
        return data

    @field_validator("dependencies", mode="before")
    @classmethod
    def _dependencies(cls, value: object) -> dict[str, str]:
        deps, problems = normalise_dependencies(value)
        if problems:
            raise ValueError("; ".join(f"{path}: {problem}" if path else problem for path, problem in problems))
        return deps

    @field_validator("attune_version", "python_version", "nodejs_version", mode="before")
    @classmethod
    def _constraint_text(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'is the number {value!r}: write the constraint as text, e.g. ">=3.9"')
        return value

    @field_validator("checksum")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        return normalised_checksum(value)

    @field_validator("contents")
    @classmethod
    def _contents(cls, value: dict[str, list[Any] | int]) -> dict[str, list[Any] | int]:
        for kind, entries in value.items():
            if isinstance(entries, int) and entries < 0:
                raise ValueError(f"contents.{kind} must be a list of components or a count, not {entries}")
        return value

    @property
    def content_counts(self) -> dict[str, int]:
        """How many components of each kind the entry says the pack holds."""
        return {kind: v if isinstance(v, int) else len(v) for kind, v in self.contents.items()}

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)


class RegistryIndex(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
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


class RegistryCatalog:
    """The ordered indices as a lookup: for each ref, the first index with a valid version of it
    and its versions there, newest first. Entries are grouped once; versions are parsed on the
    first look-up of a ref."""

    def __init__(
        self, indices: list[tuple[str, RegistryIndex]], *, unreadable: Sequence[tuple[str, AttuneError]] = ()
    ) -> None:
        self.locations = [location for location, _ in indices]
        self.unreadable = list(unreadable)  # indices that could not be read: (location, why)
        self._entries: dict[str, list[tuple[str, list[IndexEntry]]]] = {}
        for location, index in indices:
            grouped: dict[str, list[IndexEntry]] = {}
            for entry in index.packs:
                grouped.setdefault(entry.ref, []).append(entry)
            for ref, entries in grouped.items():
                self._entries.setdefault(ref, []).append((location, entries))
        self._versions: dict[str, tuple[str, list[tuple[Version, IndexEntry]]] | None] = {}

    def lookup(self, ref: str) -> tuple[str, list[tuple[Version, IndexEntry]]] | None:
        """``(index location, [(version, entry)] newest first)``, or None if no index lists a valid
        version of ``ref``. Entries with an invalid version are not candidates (an index listing
        only such entries does not count); of two entries with the same version the first wins."""
        if ref in self._versions:
            return self._versions[ref]
        result = None
        for location, entries in self._entries.get(ref, []):
            by_version: dict[Version, IndexEntry] = {}
            for entry in entries:
                try:
                    version = entry.semver
                except ManifestError:
                    continue
                by_version.setdefault(version, entry)
            if by_version:
                result = (location, sorted(by_version.items(), key=lambda pair: pair[0], reverse=True))
                break
        self._versions[ref] = result
        return result


def find_entry(indices: list[tuple[str, RegistryIndex]], ref: str, constraint: Constraint) -> tuple[str, IndexEntry]:
    """The best version of ``ref`` allowed by ``constraint`` in the first index that lists ``ref``."""
    found = RegistryCatalog(indices).lookup(ref)
    if found is not None:
        location, candidates = found
        for version, entry in candidates:
            if constraint.allows(version):
                return location, entry
        offered = ", ".join(str(v) for v, _ in reversed(candidates))
        raise SourceError(
            f"registry {location} has {ref} {offered} but none matches {constraint}",
            error_code="VERSION_NOT_FOUND",
        )
    searched = ", ".join(location for location, _ in indices) or "(no registry configured)"
    raise SourceError(f"pack {ref!r} is not in any registry index ({searched})", error_code="PACK_NOT_FOUND")
