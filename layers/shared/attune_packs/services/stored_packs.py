"""Reading stored pack archives back, shared by the stages after download.

Every archive under ``archives/sha256/`` is named by the sha256 of its bytes (the download stage
stores the canonical archive of the members it checked). Nothing is trusted by its key: every read
hashes the bytes it parses and refuses them (``ARCHIVE_DIGEST_MISMATCH``) when they are not the
ones the key names, before anything read from them is used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data import packs as stored
from attune_packs.data.operations import PackTable
from attune_packs.domain.archive import PackArchive, default_want, scan_archive
from attune_packs.domain.manifest import PackContents, read_pack
from attune_packs.errors import ArchiveDigestMismatchError, ArchiveError, SourceError, SourceGoneError
from attune_packs.s3_uri import S3Location, parse_s3_uri

ARCHIVE_PREFIX = "archives/sha256/"
_CHUNK = 64 * 1024
_DIGEST_KEY = re.compile(r"[0-9a-f]{64}\.(tar\.gz|zip)")


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


class _HashingReader:
    """The object's body, hashed as it is read."""

    def __init__(self, body: BinaryIO) -> None:
        self._body = body
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._body.read(size)
        self.digest.update(chunk)
        return chunk

    def drain(self) -> str:
        while self.read(_CHUNK):
            pass
        return self.digest.hexdigest()


def scan_stored(location: S3Location, store: ObjectStore, *, want: Callable[[str], bool] = default_want) -> PackArchive:
    """Scan a stored archive, verified against the sha256 its key names (``ARCHIVE_DIGEST_MISMATCH``
    otherwise: what a mismatched archive seemed to hold, or why it could not be read, is not used)."""
    name = location.key.rsplit("/", 1)[-1]
    if not location.key.startswith(ARCHIVE_PREFIX) or not _DIGEST_KEY.fullmatch(name):
        raise ArchiveDigestMismatchError(f"{location.uri} is not named by the sha256 of its content")
    expected = name.split(".", 1)[0]
    with store.open(location) as body:
        reader = _HashingReader(body)
        try:
            archive = scan_archive(reader, want=want)  # type: ignore[arg-type]
        except ArchiveError as exc:
            failure: ArchiveError | None = exc
        else:
            failure = None
        actual = reader.drain()
    if actual != expected:
        raise ArchiveDigestMismatchError(
            f"{location.uri} holds content with sha256 {actual}, not the {expected} its key names: the stored "
            "archive was replaced or damaged; it is not used (download the pack again)",
            details={"archive": location.uri, "expected": f"sha256:{expected}", "actual": f"sha256:{actual}"},
        )
    if failure is not None:
        raise failure
    return archive


def load_pack(pack_path: str, store: ObjectStore, table: PackTable | None = None, *, strict: bool = True) -> StoredPack:
    location = resolve_pack_path(pack_path, store, table)
    archive = scan_stored(location, store)
    return StoredPack(location.uri, checksum_from_key(location.key), read_pack(archive, strict=strict))


def stored_file_reader(stored: StoredPack, store: ObjectStore) -> Callable[[set[str]], dict[str, bytes]]:
    """Read more files of a stored pack (requirement files that ``-r`` includes): the archive is
    scanned again, safely, keeping just those."""

    def read(paths: set[str]) -> dict[str, bytes]:
        archive = scan_stored(parse_s3_uri(stored.uri), store, want=lambda path: path in paths)
        return {path: content for path, content in archive.files.items() if path in paths}

    return read
