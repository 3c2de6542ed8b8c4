"""Download stage: fetch each source, verify it, store it content-addressed in S3.

Sources: registry names (``slack``, ``slack@2.1.0``, ``slack@>=2,<3``; the index's install source is
an archive or a Git repository), archive URLs (``https://…/x.tar.gz|.tgz|.zip``), Git repositories
(any other ``https://`` URL, optional ``@ref`` or the request's ``ref_spec``), ``s3://`` objects and,
on the local stack only, local files.

Per source: open a byte stream (a Git commit becomes a tar.gz stream, see
:mod:`attune_packs.sources.git`) and read it while hashing: a source that fits in one upload part
(8 MiB, nearly every pack) stays in memory; a larger one is streamed to a staging key (multipart,
one part in memory), always removed afterwards. Then verify the expected checksum, write the
canonical archive of the members checked, read its pack.yaml back, and store it at
``archives/sha256/<hex>.<fmt>`` (one conditional PUT for a new small archive: see
:func:`_store_canonical`). One failing source never fails the others. Everything a source names is checked
before any network access (:mod:`attune_packs.sources.http` for URLs and addresses).

The request's ``timeout`` bounds all network work of the request together: each source gets what is
left of it, so the stage answers (with ``DOWNLOAD_TIMEOUT`` for what did not fit) before its Lambda
would be cut off.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, cast
from urllib.parse import urlparse, urlsplit

from attune_packs.adapters.s3 import PART_SIZE, ObjectStore, StoredObject
from attune_packs.domain.archive import (
    CANONICAL_FORMAT,
    ArchiveLimits,
    CanonicalArchive,
    detect_format,
    scan_archive,
    write_canonical,
)
from attune_packs.domain.lockfile import drift_message, pin_drift
from attune_packs.domain.manifest import PackManifest, read_pack
from attune_packs.domain.registry_index import IndexEntry, InstallSource, RegistryIndex, find_entry, parse_registry_ref
from attune_packs.errors import (
    ArchiveError,
    AttuneError,
    ChecksumMismatchError,
    LockMismatchError,
    SourceError,
    TransientError,
)
from attune_packs.models import (
    MAX_PACKS_PER_INSTALLATION,
    DownloadedPack,
    DownloadRequest,
    DownloadResponse,
    LockPin,
    PackFailure,
    SourceType,
)
from attune_packs.s3_uri import S3Location, parse_s3_uri
from attune_packs.services.locations import join_location, open_local, open_location
from attune_packs.services.registry_indices import (
    IndexFailure,
    StoredIndices,
    index_urls,
    load_indices,
    no_stored_indices,
)
from attune_packs.services.stages.per_pack import PackFailures
from attune_packs.services.stored_packs import ARCHIVE_PREFIX, archive_key
from attune_packs.settings import Settings
from attune_packs.sources.git import GitLimits, check_git_url, check_ref, open_git_archive, split_git_source
from attune_packs.sources.http import Deadline, HttpClient, NetworkPolicy, Transport

STAGING_PREFIX = "staging/"
_SPOOL_MEMORY = 8 * 2**20  # the canonical archive is kept in memory up to this size, then on disk
# A source up to one upload part is kept in memory (as one part is by the upload); a larger one
# goes to a staging key, so that memory stays flat whatever the archive's size.
IN_MEMORY_SOURCE_BYTES = PART_SIZE
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
Opener = Callable[[], AbstractContextManager[BinaryIO]]

_FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SCP_LIKE = re.compile(r"^[^/:@\s]+@[^/:\s]+:")
_GIT_TRANSPORTS = frozenset({"ssh", "git", "git+ssh", "ssh+git", "ext", "fd"})


@dataclass
class ResolvedSource:
    source: str
    source_type: SourceType
    open: Opener
    expected_checksum: str | None = None
    expected_ref: str | None = None
    expected_version: str | None = None
    expected_commit: str | None = None  # a registry entry pinned to a Git commit
    git: bool = False  # fetched from a Git repository
    git_commit: str | None = None  # known once the repository was fetched
    warnings: list[str] = field(default_factory=list)


@dataclass
class DownloadContext:
    request: DownloadRequest
    store: ObjectStore
    settings: Settings
    transport: Transport | None = None
    stored_indices: StoredIndices = no_stored_indices
    _indices: list[tuple[str, RegistryIndex]] | None = None
    _index_error: AttuneError | None = None
    index_failures: list[IndexFailure] = field(default_factory=list)
    _urls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        policy = NetworkPolicy.from_settings(self.settings, verify_ssl=self.request.verify_ssl)
        self.http = HttpClient(policy, self.transport)
        # The operator's indices (they hold the checksums packs are verified against) are always
        # fetched with TLS checks; verify_ssl: false only applies to the request's own URLs.
        verified = NetworkPolicy.from_settings(self.settings, verify_ssl=True)
        self.index_http = self.http if self.request.registry_url else HttpClient(verified, self.transport)
        self.deadline = Deadline(self.request.timeout)
        self.archive_limits = ArchiveLimits(max_total_bytes=self.settings.max_archive_bytes)
        self.git_limits = GitLimits.for_archives(self.archive_limits, max_pack_bytes=self.settings.max_archive_bytes)

    def indices(self) -> list[tuple[str, RegistryIndex]]:
        """The request's indices, loaded once. An index that cannot be read is skipped (see
        :func:`_registry_source` for what that means for each ref); when none can be read, every
        registry source reports the first failure."""
        if self._index_error is not None:
            raise self._index_error
        if self._indices is None:
            try:
                self._urls = index_urls(self.request.registry_url, self.settings, self.stored_indices)
            except AttuneError as exc:
                self._index_error = exc
                raise
            except Exception as exc:  # noqa: BLE001 - the table of stored indices could not be read
                self._index_error = TransientError(
                    f"the list of registry indices could not be read: {exc}", error_code="INDEX_LIST_UNAVAILABLE"
                )
                raise self._index_error from exc
            try:
                self._indices = load_indices(
                    self._urls,
                    self.store,
                    self.settings,
                    http=self.index_http,
                    deadline=self.deadline,
                    failures=self.index_failures,
                )
            except AttuneError as exc:  # the list of stored indices itself could not be read
                self._index_error = exc
                raise
            if not self._indices and self.index_failures:
                self._index_error = self.index_failures[0].error
                raise self._index_error
        return self._indices

    def index_rank(self, location: str) -> int:
        return self._urls.index(location)

    def tls_warnings(self, *urls: str) -> list[str]:
        if self.request.verify_ssl:
            return []
        hosts = sorted({urlsplit(u).hostname or "" for u in urls if urlsplit(u).scheme.lower() == "https"})
        if not hosts:
            return []
        return [
            f"TLS certificate verification was disabled (verify_ssl: false) for {', '.join(hosts)}: "
            "the server was not authenticated"
        ]


def download_packs(
    request: DownloadRequest,
    store: ObjectStore,
    settings: Settings,
    *,
    transport: Transport | None = None,
    stored_indices: StoredIndices = no_stored_indices,
) -> DownloadResponse:
    """``stored_indices`` lists the indices managed through ``/pack-indices`` (read only when a
    registry name is asked for without a ``registry_url``)."""
    context = DownloadContext(request, store, settings, transport, stored_indices)
    downloaded: list[DownloadedPack] = []
    failures = PackFailures("download", propagate_transient=False)
    failed = failures.failed
    room = MAX_PACKS_PER_INSTALLATION - len(set(request.known_pack_paths))
    for number, source in enumerate(dict.fromkeys(request.packs)):  # same source twice: once
        if number >= room:
            failed.append(_too_many(source))
            continue
        with failures.guard(source):
            pack = _download_one(source, context)
            if request.locked is not None:
                _check_pins(pack, request.locked)
            downloaded.append(pack)
    pack_paths = list(dict.fromkeys([*request.known_pack_paths, *(d.archive for d in downloaded)]))
    return DownloadResponse(
        downloaded_packs=downloaded,
        failed_packs=failed,
        pack_paths=pack_paths,
        total_count=len(downloaded) + len(failed),
        success_count=len(downloaded),
        failure_count=len(failed),
    )


def _check_pins(pack: DownloadedPack, pins: dict[str, LockPin]) -> None:
    """``install --locked``: only the locked content of a locked pack (the archive stays stored,
    content-addressed, and is never registered)."""
    drift = pin_drift(pack.pack_ref, pack.pack_version, pack.checksum, pack.git_commit, pins)
    if drift:
        raise LockMismatchError(drift_message(drift), details=[d.model_dump(mode="json") for d in drift])


# --- sources ------------------------------------------------------------------------------------


def _has_control_characters(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def classify(source: str, context: DownloadContext) -> ResolvedSource:
    """What ``source`` is, checked as far as possible without the network."""
    if source.startswith("-") or _has_control_characters(source):
        raise SourceError(
            f"{source!r} is refused: a source may not start with '-' or contain control characters",
            error_code="SOURCE_URL_FORBIDDEN",
        )
    parsed = urlparse(source)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        location = parse_s3_uri(source)
        return ResolvedSource(source, "s3", lambda: closing(context.store.open(location)))
    if scheme in {"https", "http"}:
        if _is_archive_url(source):
            return _archive_url_source(source, context)
        return _git_url_source(source, context)
    if scheme in _GIT_TRANSPORTS or "::" in source.split("/", 1)[0] or _SCP_LIKE.match(source):
        check_git_url(source, allow_http=context.settings.download_allow_http)  # raises with the reason
    if scheme == "file" or source.startswith(("/", "./", "../", "~")) or os.sep in source:
        return _local_source(source, context)
    if scheme:
        raise SourceError(f"{source!r}: the {scheme}: scheme is not allowed", error_code="SOURCE_URL_FORBIDDEN")
    return _registry_source(source, context)


def _is_archive_url(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(ARCHIVE_SUFFIXES)


def _local_source(source: str, context: DownloadContext) -> ResolvedSource:
    open_local(source, context.settings).close()  # refuse now, not at download time
    return ResolvedSource(source, "local", lambda: open_local(source, context.settings))


def _archive_url_source(source: str, context: DownloadContext) -> ResolvedSource:
    context.http.check(source)  # the URL's form, before any network access
    return ResolvedSource(
        source,
        "archive",
        lambda: _http_stream(source, context),
        warnings=context.tls_warnings(source),
    )


def _http_stream(url: str, context: DownloadContext) -> AbstractContextManager[BinaryIO]:
    response = context.http.open(url, deadline=context.deadline, max_bytes=context.settings.max_archive_bytes)
    return cast(AbstractContextManager[BinaryIO], response)


def _git_url_source(source: str, context: DownloadContext) -> ResolvedSource:
    url, ref = split_git_source(source)
    if ref is None:
        ref = context.request.ref_spec
    check_git_url(url, allow_http=context.settings.download_allow_http)
    if ref is not None:
        check_ref(ref)
    resolved = ResolvedSource(
        source, "git", lambda: _git_stream(resolved, url, ref, context), git=True, warnings=context.tls_warnings(url)
    )
    return resolved


@contextmanager
def _git_stream(resolved: ResolvedSource, url: str, ref: str | None, context: DownloadContext) -> Iterator[BinaryIO]:
    with open_git_archive(url, ref, http=context.http, deadline=context.deadline, limits=context.git_limits) as fetched:
        if resolved.expected_commit and fetched.commit != resolved.expected_commit:
            raise ChecksumMismatchError(
                f"{resolved.source}: the registry pins commit {resolved.expected_commit}, but {url} gave "
                f"{fetched.commit}"
            )
        resolved.git_commit = fetched.commit
        resolved.warnings.extend(fetched.warnings)
        yield fetched.stream


def _registry_source(source: str, context: DownloadContext) -> ResolvedSource:
    ref, constraint = parse_registry_ref(source)
    indices = context.indices()  # none readable: that failure, as it is
    try:
        index_location, entry = find_entry(indices, ref, constraint)
    except AttuneError:
        holder = next((location for location, index in indices if any(e.ref == ref for e in index.packs)), None)
        _refuse_if_shadowed(ref, holder, context)  # no version fits: only an index before its holder matters
        raise
    _refuse_if_shadowed(ref, index_location, context)
    chosen = _choose_install_source(entry, context.request.allow_unpinned)
    if chosen.type == "git":
        url, git_ref = chosen.url, chosen.ref
        check_git_url(url, allow_http=context.settings.download_allow_http)
        if git_ref is not None:
            check_ref(git_ref)
        resolved = ResolvedSource(source, "registry", lambda: _git_stream(resolved, url, git_ref, context), git=True)
        resolved.expected_commit = _pinned_commit(chosen)
    else:
        url = join_location(index_location, chosen.url)
        if urlparse(url).scheme.lower() in {"http", "https"}:
            context.http.check(url)
        resolved = ResolvedSource(
            source,
            "registry",
            lambda: open_location(
                url,
                context.store,
                context.settings,
                http=context.http,
                deadline=context.deadline,
                max_bytes=context.settings.max_archive_bytes,
            ),
        )
    resolved.expected_checksum = chosen.checksum
    resolved.expected_ref = ref
    resolved.expected_version = entry.version
    resolved.warnings = context.tls_warnings(index_location, url)
    if not _is_pinned(chosen):
        resolved.warnings.append("registry entry pins neither a checksum nor a commit: content not verified")
    return resolved


def _refuse_if_shadowed(ref: str, found_in: str | None, context: DownloadContext) -> None:
    """The first index holding a ref wins. When an index that ranks before the one that holds the
    ref (for a ref found nowhere: any index) could not be read, taking the ref from a lower-ranked
    index could install another publisher's pack of that name: refuse instead."""
    rank = context.index_rank(found_in) if found_in is not None else len(context._urls)
    for failure in sorted(context.index_failures, key=lambda f: f.rank):
        if failure.rank < rank:
            error = TransientError if failure.error.retriable else SourceError
            raise error(
                f"{ref}: registry index {failure.url} could not be read ({failure.error.error_code}: "
                f"{failure.error.message}); it ranks before any index that serves {ref}, so {ref} is not "
                "taken from a lower-ranked one. Retry later, or fix or remove that index.",
                error_code="INDEX_UNAVAILABLE",
            )


def _pinned_commit(install: InstallSource) -> str | None:
    ref = (install.ref or "").lower()
    return ref if install.type == "git" and _FULL_COMMIT.fullmatch(ref) else None


def _is_pinned(install: InstallSource) -> bool:
    return install.checksum is not None or _pinned_commit(install) is not None


def _choose_install_source(entry: IndexEntry, allow_unpinned: bool) -> InstallSource:
    """The first pinned install source (a checksum, or a Git commit id); unpinned ones only if allowed."""
    for install in entry.install_sources:
        if _is_pinned(install):
            return install
    if allow_unpinned:
        return entry.install_sources[0]
    raise SourceError(
        f"registry entry {entry.ref} {entry.version} has no checksum (nor, for Git, a full commit id); "
        "refusing an unverifiable download (set allow_unpinned to accept it)",
        error_code="INDEX_ENTRY_UNVERIFIED",
    )


# --- one download -------------------------------------------------------------------------------


def _too_many(source: str) -> PackFailure:
    return PackFailure(
        source=source,
        error=(
            f"an installation holds at most {MAX_PACKS_PER_INSTALLATION} packs, dependencies included; "
            "install the others in a second installation"
        ),
        error_code="TOO_MANY_PACKS",
        retriable=False,
    )


@dataclass
class _Fetched:
    """A source's bytes as fetched: in memory when they fit in one upload part, else at a staging key."""

    sha256: str
    body: bytes | None = None
    staging: S3Location | None = None

    def open(self, store: ObjectStore) -> BinaryIO:
        if self.body is not None:
            return io.BytesIO(self.body)
        assert self.staging is not None
        return store.open(self.staging)


def _fetch(resolved: ResolvedSource, context: DownloadContext, staging: str) -> _Fetched:
    """Read the source while hashing it. A source that fits in one upload part stays in memory (no
    S3 call); a larger one is streamed to ``staging`` (multipart, one part in memory)."""
    limit = context.settings.max_archive_bytes
    staged = False
    try:
        with resolved.open() as stream:
            first = _read_up_to(stream, IN_MEMORY_SOURCE_BYTES + 1)
            if len(first) <= IN_MEMORY_SOURCE_BYTES:
                if len(first) > limit:
                    raise SourceError(
                        f"the archive is larger than the {limit // 2**20} MiB limit", error_code="DOWNLOAD_TOO_LARGE"
                    )
                return _Fetched(hashlib.sha256(first).hexdigest(), body=first)
            staged = True
            prefixed = _Prefixed(first, stream)
            del first  # held by ``prefixed`` only, until the upload has read it
            stored = context.store.upload_stream(staging, cast(BinaryIO, prefixed), max_bytes=limit)
    except BaseException:
        if staged:
            context.store.delete(staging)
        raise
    return _Fetched(stored.sha256, staging=stored.location)


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        data = stream.read(size - len(buffer))
        if not data:
            break
        buffer += data
    return bytes(buffer)


class _Prefixed:
    """``first`` (already read from ``rest``), then the remainder of ``rest``."""

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        self._first, self._rest = first, rest

    def read(self, size: int = -1) -> bytes:
        if self._first:
            take = len(self._first) if size is None or size < 0 else size
            chunk, self._first = self._first[:take], self._first[take:]
            return chunk
        return self._rest.read(size)


def _store_canonical(
    key: str, spool: BinaryIO, canonical: CanonicalArchive, metadata: dict[str, str], store: ObjectStore
) -> tuple[StoredObject, bool]:
    """Write the canonical archive at its content-addressed key; whether this call created it.

    Written even when the key exists: content-addressed writes are idempotent, and an object
    already there is not trusted by its key (a damaged or replaced one is repaired). A small
    archive is written with one conditional PUT (``If-None-Match: *``), written again only when S3
    refuses it because an object is there; a large one (multipart) is looked up first, so that it
    is not uploaded twice."""
    if canonical.size < PART_SIZE:
        written = store.upload_stream(key, spool, max_bytes=canonical.size, metadata=metadata, if_absent=True)
        if written.created:
            return written, True
        spool.seek(0)
        return store.upload_stream(key, spool, max_bytes=canonical.size, metadata=metadata), False
    is_new = store.head(S3Location(store.bucket, key)) is None
    return store.upload_stream(key, spool, max_bytes=canonical.size, metadata=metadata), is_new


def _download_one(source: str, context: DownloadContext) -> DownloadedPack:
    resolved = classify(source, context)
    store = context.store
    staging = f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    fetched = _fetch(resolved, context, staging)
    try:
        source_checksum = f"sha256:{fetched.sha256}"
        if resolved.expected_checksum and resolved.expected_checksum != source_checksum:
            raise ChecksumMismatchError(
                f"{source}: the downloaded archive has checksum {source_checksum}, but the registry pins "
                f"{resolved.expected_checksum}; the archive was changed or corrupted"
            )
        with fetched.open(store) as body, tempfile.SpooledTemporaryFile(_SPOOL_MEMORY) as spool:
            canonical = write_canonical(body, cast(BinaryIO, spool), limits=context.archive_limits)
            spool.seek(0)
            manifest = _checked_manifest(source, resolved, canonical, cast(BinaryIO, spool), context)
            key = archive_key(canonical.sha256, CANONICAL_FORMAT)
            metadata = {"pack-ref": manifest.ref, "pack-version": manifest.version, "source-sha256": fetched.sha256}
            if resolved.git_commit:
                metadata["git-commit"] = resolved.git_commit
            spool.seek(0)
            written, is_new = _store_canonical(key, cast(BinaryIO, spool), canonical, metadata, store)
            if written.sha256 != canonical.sha256:
                raise TransientError(f"{source}: the canonical archive changed while it was stored; retry")
    finally:
        if fetched.staging is not None:
            store.delete(staging)
    return DownloadedPack(
        source=source,
        source_type=resolved.source_type,
        pack_ref=manifest.ref,
        pack_version=manifest.version,
        archive=f"s3://{store.bucket}/{key}",
        checksum=f"sha256:{canonical.sha256}",
        source_checksum=source_checksum,
        git_commit=resolved.git_commit,
        size_bytes=canonical.size,
        stored=is_new,
        warnings=resolved.warnings,
    )


def _checked_manifest(
    source: str, resolved: ResolvedSource, canonical: CanonicalArchive, spool: BinaryIO, context: DownloadContext
) -> PackManifest:
    """The pack.yaml of the canonical archive, read back as every later stage will read it (the
    same members as the original's check, or the canonical writer is wrong), and matched against
    what the registry entry promised."""
    archive = scan_archive(spool, limits=context.archive_limits)
    if archive.file_list != canonical.checked.file_list or archive.files != canonical.checked.files:
        raise ArchiveError(
            f"{source}: the canonical archive does not hold the members that were checked", error_code="ARCHIVE_CORRUPT"
        )
    manifest = read_pack(archive, strict=False).manifest
    if resolved.expected_ref and manifest.ref != resolved.expected_ref:
        raise SourceError(
            f"{source}: the archive contains pack {manifest.ref!r}, not {resolved.expected_ref!r}",
            error_code="PACK_REF_MISMATCH",
        )
    if resolved.expected_version and manifest.version != resolved.expected_version:
        raise SourceError(
            f"{source}: the archive contains version {manifest.version}, the index says {resolved.expected_version}",
            error_code="PACK_VERSION_MISMATCH",
        )
    return manifest


__all__ = ["ARCHIVE_PREFIX", "download_packs", "detect_format"]
