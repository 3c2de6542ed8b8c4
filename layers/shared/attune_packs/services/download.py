"""Download stage: fetch each source, verify it, store it content-addressed in S3.

Per source: open a byte stream, stream it to a staging key while hashing (multipart, one part in
memory), verify the expected checksum, scan the archive safely and read its pack.yaml, then copy
it to ``archives/sha256/<hex>.<fmt>`` unless identical content is already there. The staging
object is always removed. One failing source never fails the others.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlparse

from attune_packs.adapters.s3 import ObjectStore, S3Location, parse_s3_uri
from attune_packs.archive import ArchiveLimits, detect_format, scan_archive
from attune_packs.errors import AttuneError, ChecksumMismatchError, SourceError
from attune_packs.models import DownloadedPack, DownloadRequest, DownloadResponse, PackFailure, SourceType
from attune_packs.pack import read_pack
from attune_packs.registry import RegistryIndex, find_entry, parse_registry_ref
from attune_packs.services.indices import index_urls, load_indices
from attune_packs.services.locations import join_location, open_local, open_location
from attune_packs.services.packs import ARCHIVE_PREFIX, archive_key
from attune_packs.settings import Settings

STAGING_PREFIX = "staging/"
Opener = Callable[[], AbstractContextManager[BinaryIO]]


@dataclass
class ResolvedSource:
    source: str
    source_type: SourceType
    open: Opener
    expected_checksum: str | None = None
    expected_ref: str | None = None
    expected_version: str | None = None
    git_commit: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class DownloadContext:
    request: DownloadRequest
    store: ObjectStore
    settings: Settings
    _indices: list[tuple[str, RegistryIndex]] | None = None

    def indices(self) -> list[tuple[str, RegistryIndex]]:
        if self._indices is None:
            urls = index_urls(self.request.registry_url, self.settings)
            self._indices = load_indices(urls, self.store, self.settings)
        return self._indices


def download_packs(request: DownloadRequest, store: ObjectStore, settings: Settings) -> DownloadResponse:
    context = DownloadContext(request, store, settings)
    downloaded: list[DownloadedPack] = []
    failed: list[PackFailure] = []
    for source in dict.fromkeys(request.packs):  # same source twice: once
        try:
            downloaded.append(_download_one(source, context))
        except AttuneError as exc:
            failed.append(PackFailure(source=source, **_failure_fields(exc)))
    pack_paths = list(dict.fromkeys([*request.known_pack_paths, *(d.archive for d in downloaded)]))
    return DownloadResponse(
        downloaded_packs=downloaded,
        failed_packs=failed,
        pack_paths=pack_paths,
        total_count=len(downloaded) + len(failed),
        success_count=len(downloaded),
        failure_count=len(failed),
    )


def _failure_fields(exc: AttuneError) -> dict[str, object]:
    return {"error": exc.message, "error_code": exc.error_code, "retriable": exc.retriable, "details": exc.details}


# --- sources ------------------------------------------------------------------------------------


def classify(source: str, context: DownloadContext) -> ResolvedSource:
    parsed = urlparse(source)
    if parsed.scheme == "s3":
        location = parse_s3_uri(source)
        return ResolvedSource(source, "s3", lambda: closing(context.store.open(location)))
    if parsed.scheme in {"https", "http"}:
        kind = "Git repositories" if ".git" in parsed.path else "archive URLs"
        raise SourceError(
            f"{kind} over HTTPS are not supported by this version yet; upload the archive to S3 "
            "(s3://...) or publish it in a registry index",
            error_code="SOURCE_TYPE_UNSUPPORTED",
        )
    if parsed.scheme == "file" or source.startswith(("/", "./", "../", "~")) or os.sep in source:
        return _local_source(source, context)
    if parsed.scheme:
        raise SourceError(f"{source!r}: the {parsed.scheme}: scheme is not allowed", error_code="SOURCE_URL_FORBIDDEN")
    return _registry_source(source, context)


def _local_source(source: str, context: DownloadContext) -> ResolvedSource:
    open_local(source, context.settings).close()  # refuse now, not at download time
    return ResolvedSource(source, "local", lambda: open_local(source, context.settings))


def _registry_source(source: str, context: DownloadContext) -> ResolvedSource:
    ref, constraint = parse_registry_ref(source)
    index_location, entry = find_entry(context.indices(), ref, constraint)
    archives = [s for s in entry.install_sources if s.type == "archive"]
    if not archives:
        raise SourceError(
            f"{ref} {entry.version} is only offered as a Git source, which this version cannot fetch yet",
            error_code="SOURCE_TYPE_UNSUPPORTED",
        )
    chosen = archives[0]
    if chosen.checksum is None and not context.request.allow_unpinned:
        raise SourceError(
            f"registry entry {ref} {entry.version} has no checksum; refusing an unverifiable download "
            "(set allow_unpinned to accept it)",
            error_code="INDEX_ENTRY_UNVERIFIED",
        )
    url = join_location(index_location, chosen.url)
    resolved = ResolvedSource(
        source,
        "registry",
        lambda: open_location(url, context.store, context.settings),
        expected_checksum=chosen.checksum,
        expected_ref=ref,
        expected_version=entry.version,
    )
    if chosen.checksum is None:
        resolved.warnings.append("registry entry has no checksum: content not verified")
    return resolved


# --- one download -------------------------------------------------------------------------------


def _download_one(source: str, context: DownloadContext) -> DownloadedPack:
    resolved = classify(source, context)
    store = context.store
    if resolved.expected_checksum:
        known = _already_stored(resolved, store)
        if known is not None:
            return known
    staging = f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    try:
        with resolved.open() as stream:
            stored = store.upload_stream(staging, stream, max_bytes=context.settings.max_archive_bytes)
        checksum = f"sha256:{stored.sha256}"
        if resolved.expected_checksum and resolved.expected_checksum != checksum:
            raise ChecksumMismatchError(
                f"{source}: the downloaded archive has checksum {checksum}, but the registry pins "
                f"{resolved.expected_checksum}; the archive was changed or corrupted"
            )
        with store.open(stored.location) as body:
            archive = scan_archive(body, limits=ArchiveLimits(max_total_bytes=context.settings.max_archive_bytes))
        manifest = read_pack(archive, strict=False).manifest
        if resolved.expected_ref and manifest.ref != resolved.expected_ref:
            raise SourceError(
                f"{source}: the archive contains pack {manifest.ref!r}, not {resolved.expected_ref!r}",
                error_code="PACK_REF_MISMATCH",
            )
        if resolved.expected_version and manifest.version != resolved.expected_version:
            raise SourceError(
                f"{source}: the archive contains version {manifest.version}, the index says "
                f"{resolved.expected_version}",
                error_code="PACK_VERSION_MISMATCH",
            )
        key = archive_key(stored.sha256, archive.format)
        is_new = store.head(S3Location(store.bucket, key)) is None
        if is_new:
            store.copy(stored.location, key, metadata={"pack-ref": manifest.ref, "pack-version": manifest.version})
    finally:
        store.delete(staging)
    return DownloadedPack(
        source=source,
        source_type=resolved.source_type,
        pack_ref=manifest.ref,
        pack_version=manifest.version,
        archive=f"s3://{store.bucket}/{key}",
        checksum=checksum,
        git_commit=resolved.git_commit,
        size_bytes=stored.size,
        stored=is_new,
        warnings=resolved.warnings,
    )


def _already_stored(resolved: ResolvedSource, store: ObjectStore) -> DownloadedPack | None:
    """A pinned source whose content is already stored costs one HEAD, no download."""
    digest = (resolved.expected_checksum or "").removeprefix("sha256:")
    for fmt in ("tar.gz", "zip"):
        key = archive_key(digest, fmt)
        head = store.head(S3Location(store.bucket, key))
        if head is None:
            continue
        meta = head.get("Metadata", {})
        ref, version = meta.get("pack-ref"), meta.get("pack-version")
        if not ref or not version:
            return None
        if resolved.expected_ref not in (None, ref) or resolved.expected_version not in (None, version):
            return None
        return DownloadedPack(
            source=resolved.source,
            source_type=resolved.source_type,
            pack_ref=ref,
            pack_version=version,
            archive=f"s3://{store.bucket}/{key}",
            checksum=f"sha256:{digest}",
            git_commit=resolved.git_commit,
            size_bytes=int(head.get("ContentLength", 0)),
            stored=False,
            warnings=resolved.warnings,
        )
    return None


__all__ = ["ARCHIVE_PREFIX", "download_packs", "detect_format"]
