"""Reading stored pack archives back, shared by the stages after download."""

from __future__ import annotations

from dataclasses import dataclass

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import packs as stored
from attune_packs.data.operations import PackTable
from attune_packs.domain.archive import scan_archive
from attune_packs.domain.manifest import PackContents, read_pack
from attune_packs.errors import SourceError, SourceGoneError
from attune_packs.s3_uri import S3Location, parse_s3_uri

ARCHIVE_PREFIX = "archives/sha256/"


@dataclass
class StoredPack:
    uri: str
    checksum: str
    contents: PackContents


def archive_key(sha256_hex: str, fmt: str) -> str:
    return f"{ARCHIVE_PREFIX}{sha256_hex}.{'zip' if fmt == 'zip' else 'tar.gz'}"


def checksum_from_key(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return "sha256:" + name.split(".", 1)[0]


def resolve_pack_path(pack_path: str, store: ObjectStore, table: PackTable | None) -> S3Location:
    """A stage's ``pack_paths`` entry: an archive this installation stored, or ``ref@version``
    of a registered pack. Other buckets and prefixes are refused: stages only read what the
    download stage verified."""
    if pack_path.startswith("s3://"):
        location = parse_s3_uri(pack_path)
        if location.bucket != store.bucket or not location.key.startswith(ARCHIVE_PREFIX):
            raise SourceError(
                f"{pack_path} is not an archive stored by the download stage (s3://{store.bucket}/"
                f"{ARCHIVE_PREFIX}...); download it first",
                error_code="SOURCE_URL_FORBIDDEN",
            )
        return location
    ref, sep, version = pack_path.partition("@")
    if not sep or not ref or not version or table is None:
        raise SourceError(
            f"{pack_path!r} is neither an s3:// archive nor a registered pack as ref@version",
            error_code="SOURCE_URL_INVALID",
        )
    item = stored.read_version(table, ref, version)
    if item is None:
        raise SourceGoneError(f"pack {ref} {version} is not registered", error_code="NOT_FOUND")
    return parse_s3_uri(str(item["archive"]))


def load_pack(pack_path: str, store: ObjectStore, table: PackTable | None = None, *, strict: bool = True) -> StoredPack:
    location = resolve_pack_path(pack_path, store, table)
    with store.open(location) as body:
        archive = scan_archive(body)
    return StoredPack(location.uri, checksum_from_key(location.key), read_pack(archive, strict=strict))
