"""Registry index management: an ordered list of index locations kept in the table.

The first index (lowest ``position``) that holds a ref wins. Indices configured here are used by
installations that do not name a ``registry_url``, after the deployment's REGISTRY_INDEX_URLS.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import indices as stored
from attune_packs.data.indices import INDICES_PARTITION as INDICES_PARTITION
from attune_packs.data.operations import PackTable
from attune_packs.errors import NotFoundError
from attune_packs.settings import Settings


class IndexInput(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)
    url: str = Field(min_length=5, max_length=2048, description="s3://... or https://... location of index.json")
    name: str = Field(default="", max_length=128)
    position: int = Field(default=100, ge=0, le=999_999)
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not url.startswith(("s3://", "https://")):
            raise ValueError("an index location is an s3:// or https:// URL")
        return url


class IndexRecord(IndexInput):
    model_config = ConfigDict(extra="ignore", defer_build=True)
    id: str
    created_at: str
    updated_at: str


def list_indices(table: PackTable) -> list[IndexRecord]:
    """The live indices, ordered by ``position`` (then creation)."""
    items = [item for item in stored.read_indices(table) if not item.get("deleted_at")]
    records = [IndexRecord.model_validate(item) for item in items]
    return sorted(records, key=lambda r: (r.position, r.created_at, r.id))


def get_index(table: PackTable, index_id: str) -> IndexRecord:
    item = stored.read_index(table, index_id)
    if item is None or item.get("deleted_at"):
        raise NotFoundError(f"no registry index {index_id!r}")
    return IndexRecord.model_validate(item)


def check_index_location(data: IndexInput, settings: Settings) -> None:
    """Refuse, when it is added, an index the stages could not or should not read: S3 objects only
    under this deployment's ``registry/`` prefix (the only place the stages may read indices from);
    https URLs whose form the download rules refuse (credentials, addresses, ports...)."""
    from attune_packs.errors import InvalidRequestError, SourceError
    from attune_packs.s3_uri import parse_s3_uri
    from attune_packs.sources.http import HttpClient, NetworkPolicy

    if data.url.startswith("s3://"):
        location = parse_s3_uri(data.url)
        if location.bucket != settings.bucket_name or not location.key.startswith("registry/"):
            raise InvalidRequestError(
                f"invalid request: url: an S3 index lives under s3://{settings.bucket_name}/registry/",
                details=[{"field": "url", "problem": f"not under s3://{settings.bucket_name}/registry/"}],
            )
        return
    try:
        HttpClient(NetworkPolicy.from_settings(settings, verify_ssl=True)).check(data.url)
    except SourceError as exc:
        raise InvalidRequestError(
            f"invalid request: url: {exc.message}", details=[{"field": "url", "problem": exc.message}]
        ) from exc


def create_index(table: PackTable, data: IndexInput) -> IndexRecord:
    now = datetime.now(UTC).isoformat()
    record = IndexRecord(id=secrets.token_hex(6), created_at=now, updated_at=now, **data.model_dump())
    stored.save_index(table, record.id, record.model_dump())
    return record


def update_index(table: PackTable, index_id: str, data: IndexInput) -> IndexRecord:
    current = get_index(table, index_id)
    record = IndexRecord(
        id=index_id, created_at=current.created_at, updated_at=datetime.now(UTC).isoformat(), **data.model_dump()
    )
    stored.save_index(table, record.id, record.model_dump())
    return record


def delete_index(table: PackTable, index_id: str) -> None:
    """Soft delete: the record leaves the ordered list but stays in the table for audit."""
    record = get_index(table, index_id)
    now = datetime.now(UTC).isoformat()
    stored.save_index(table, record.id, {**record.model_dump(), "enabled": False, "deleted_at": now, "updated_at": now})


def enabled_index_urls(table: PackTable) -> list[str]:
    return [record.url for record in list_indices(table) if record.enabled]


def search_packs(
    table: PackTable, store: ObjectStore, settings: Settings, query: str, *, ref: str | None = None
) -> list[dict[str, Any]]:
    """Packs the configured indices offer, first index per ref winning, filtered by ``query``
    (ref, description, keywords) or exactly by ``ref``."""
    # Imported here: fetching and parsing indices (HTTP, the manifest format) is a search's work
    # only, and the API function would otherwise load it at every cold start.
    from attune_packs.services.registry_indices import index_urls, load_indices

    urls = index_urls(None, settings, lambda: enabled_index_urls(table))
    found: dict[str, dict[str, Any]] = {}
    needle = query.lower()
    for location, index in load_indices(urls, store, settings):
        for entry in index.packs:
            if ref is not None and entry.ref != ref:
                continue
            text = " ".join([entry.ref, entry.description, *map(str, (entry.model_extra or {}).get("keywords", []))])
            if needle and needle not in text.lower():
                continue
            existing = found.get(entry.ref)
            if existing is not None and existing["index"] != location:
                continue  # the first index holding a ref wins
            record = existing or {"ref": entry.ref, "description": entry.description, "index": location, "versions": []}
            record["versions"].append(entry.version)
            found[entry.ref] = record
    return sorted(found.values(), key=lambda r: r["ref"])
