"""Reading archives: format detection, the counted source stream, and tar.gz read strictly forward."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO, cast

from attune_packs.domain.archive.checks import (
    _CHUNK,
    _RATIO_GRACE_BYTES,
    DEFAULT_LIMITS,
    ArchiveFormat,
    ArchiveLimits,
    MemberSink,
    PackArchive,
    _error,
    _MemberKind,
    _MiB,
    _ratio_error,
    _Scanner,
    _show,
    default_want,
)
from attune_packs.domain.archive.zip_reader import _read_zip
from attune_packs.errors import ArchiveError

_HEAD_BYTES = 64  # peeked for detection and for a helpful message
_TAR_HEADER_ALLOWANCE = 1 * _MiB  # one tar header, PAX records and GNU long names included
_TAR_METADATA_BUDGET = 64 * _MiB  # all tar headers and padding together
_TAR_TRAILER_ALLOWANCE = 1 * _MiB  # zero padding accepted after the end-of-archive marker
_RECENT_BYTES = 64 * 1024  # decompressed bytes remembered to inspect where tarfile stopped
_SPOOL_MEMORY = 8 * _MiB


def detect_format(head: bytes) -> ArchiveFormat:
    """The archive format from its first bytes (magic numbers only; file names are not consulted)."""
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if not head:
        problem = "the file is empty"
    elif head.lstrip()[:1] == b"<":
        problem = "it looks like an HTML or XML page (an error page instead of the archive?)"
    elif head[:3] == b"BZh":
        problem = "it is bzip2-compressed"
    else:
        problem = f"it starts with {head[:8]!r}"
    raise ArchiveError(
        f"not a .tar.gz or .zip archive: {problem}; packs must be gzip-compressed tar (.tar.gz/.tgz) or zip",
        error_code="ARCHIVE_UNSUPPORTED_FORMAT",
    )


def scan_archive(
    stream: BinaryIO,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    want: Callable[[str], bool] = default_want,
) -> PackArchive:
    """Validate every member of an archive and return its pack root, file list and wanted files."""
    return _read(stream, limits, want, None)


# --- reading -------------------------------------------------------------------------------------


class _Source:
    """The caller's stream read forward: peeked bytes are served first and every byte is counted.

    An exception raised by the caller's stream is remembered, so a failing download is re-raised as
    it is and never mistaken for a corrupt archive.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._head = b""
        self.consumed = 0
        self.failure: BaseException | None = None

    def _pull(self, size: int) -> bytes:
        try:
            chunk = self._stream.read(size)
        except BaseException as exc:
            self.failure = exc
            raise
        return chunk or b""

    def peek(self, size: int) -> bytes:
        while len(self._head) < size:
            chunk = self._pull(size - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head[:size]

    def read(self, size: int) -> bytes:
        if self._head:
            chunk, self._head = self._head[:size], self._head[size:]
        else:
            chunk = self._pull(size)
        self.consumed += len(chunk)
        return chunk


def _is_seekable(stream: BinaryIO) -> bool:
    seekable = getattr(stream, "seekable", None)
    if not callable(seekable):
        return False
    try:
        return bool(seekable())
    except (OSError, ValueError):
        return False


def _read(
    stream: BinaryIO, limits: ArchiveLimits, want: Callable[[str], bool], writer: MemberSink | None
) -> PackArchive:
    seekable = _is_seekable(stream)
    start = stream.tell() if seekable else 0
    source = _Source(stream)
    if detect_format(source.peek(_HEAD_BYTES)) == "tar.gz":
        return _read_tar(source, limits, want, writer)
    if seekable:
        end = stream.seek(0, os.SEEK_END)
        stream.seek(start)
        return _read_zip(stream, start, end, limits, want, writer)
    with _spool(source, limits) as spool:
        end = spool.seek(0, os.SEEK_END)
        spool.seek(0)
        return _read_zip(cast(BinaryIO, spool), 0, end, limits, want, writer)


# --- tar.gz --------------------------------------------------------------------------------------


class _GzipStream:
    """The source's gzip data, decoded in small steps for :mod:`tarfile` (``r|`` mode).

    One call never produces more than was asked for, so a bomb cannot allocate a big buffer. Every
    produced byte is counted: the compression ratio is judged on them all, and while tarfile parses a
    header, :attr:`limit` caps how far it may read. The last bytes handed out are remembered so the
    data where tarfile stopped can be inspected.
    """

    def __init__(self, source: _Source, limits: ArchiveLimits) -> None:
        self._source = source
        self._limits = limits
        self._decoder: zlib._Decompress | None = zlib.decompressobj(wbits=31)
        self._input = b""
        self._recent = bytearray()
        self.produced = 0
        self.limit: int | None = None
        self.member: str | None = None  # the member being read, for messages

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if size == 0:
            return b""
        out = self._decode(min(size, _CHUNK))
        self.produced += len(out)
        self._recent += out
        if len(self._recent) > 2 * _RECENT_BYTES:
            del self._recent[:-_RECENT_BYTES]
        if self.limit is not None and self.produced > self.limit:
            raise _error(
                "ARCHIVE_TOO_LARGE",
                f"a tar header (PAX records or a GNU long name) is larger than {_TAR_HEADER_ALLOWANCE} bytes",
            )
        ceiling = self._limits.max_ratio * self._source.consumed
        if self.produced > _RATIO_GRACE_BYTES and self.produced > ceiling:
            raise _ratio_error(self._limits, self.member)
        return out

    def since(self, position: int) -> bytes | None:
        """The bytes already handed out from ``position`` on, if they are still remembered."""
        first = self.produced - len(self._recent)
        if position < first:
            return None
        return bytes(self._recent[position - first :])

    def _decode(self, size: int) -> bytes:
        while True:
            if self._decoder is None:  # between gzip members: only zero padding or another member
                if not self._input:
                    self._input = self._source.read(_CHUNK)
                    if not self._input:
                        return b""
                self._input = self._input.lstrip(b"\0")
                if not self._input:
                    continue
                self._decoder = zlib.decompressobj(wbits=31)
            at_end = False
            if not self._input:
                self._input = self._source.read(_CHUNK)
                at_end = not self._input
            try:
                out = self._decoder.decompress(self._input, size)
            except zlib.error as exc:
                raise _error("ARCHIVE_CORRUPT", f"the gzip data is corrupt ({exc})", self.member) from exc
            if self._decoder.eof:
                self._input = self._decoder.unused_data
                self._decoder = None
            else:
                self._input = self._decoder.unconsumed_tail
            if out:
                return out
            if at_end and self._decoder is not None:
                raise _error(
                    "ARCHIVE_CORRUPT",
                    "the gzip data ends early: the archive is truncated (an interrupted download?)",
                    self.member,
                )


@contextlib.contextmanager
def _tar_errors(source: _Source) -> Iterator[None]:
    """Map tarfile's parse errors to ``ARCHIVE_CORRUPT`` (the caller's own stream errors pass)."""
    try:
        yield
    except (tarfile.TarError, EOFError, ValueError, OverflowError, struct.error) as exc:
        if source.failure is not None:
            raise
        raise _error("ARCHIVE_CORRUPT", f"the tar data is corrupt ({exc})") from exc


def _read_tar(
    source: _Source, limits: ArchiveLimits, want: Callable[[str], bool], writer: MemberSink | None
) -> PackArchive:
    gz = _GzipStream(source, limits)
    scanner = _Scanner(limits, want, writer, compressed_size=None)
    gz.limit = _TAR_HEADER_ALLOWANCE
    with _tar_errors(source):
        try:
            tar = tarfile.open(fileobj=cast(IO[bytes], gz), mode="r|", encoding="utf-8", errors="surrogateescape")
        except tarfile.ReadError as exc:
            if gz.produced == 0 and source.failure is None:
                raise _error("PACK_MANIFEST_MISSING", "the archive is empty") from exc
            raise
    with tar:
        while True:
            gz.member = None
            gz.limit = gz.produced + _TAR_HEADER_ALLOWANCE
            with _tar_errors(source):
                info = tar.next()
            gz.limit = None
            if info is None:
                break
            if gz.produced - scanner.total > _TAR_METADATA_BUDGET:
                raise _error(
                    "ARCHIVE_TOO_LARGE",
                    f"the tar headers take more than {_TAR_METADATA_BUDGET} bytes together",
                    info.name,
                )
            _scan_tar_member(tar, info, scanner, source, gz)
        gz.member = None
        _check_tar_end(tar, gz)
    return scanner.finish("tar.gz", source.consumed)


def _tar_kind(info: tarfile.TarInfo) -> tuple[_MemberKind, str]:
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and info.sparse is None:
        return "file", ""
    if info.type == tarfile.DIRTYPE:
        return "dir", ""
    if info.type == tarfile.SYMTYPE:
        return "link", f"symbolic links (this one points to {_show(info.linkname)})"
    if info.type == tarfile.LNKTYPE:
        return "link", f"hard links (this one points to {_show(info.linkname)})"
    described = {
        tarfile.CHRTYPE: "character device",
        tarfile.BLKTYPE: "block device",
        tarfile.FIFOTYPE: "FIFO (named pipe)",
        tarfile.CONTTYPE: "contiguous file (tar type '7')",
        tarfile.GNUTYPE_SPARSE: "GNU sparse file",
    }
    if info.type in described:
        return "special", described[info.type]
    if info.sparse is not None:
        return "special", "sparse file"
    return "special", f"tar entry of type {info.type!r}"


def _scan_tar_member(
    tar: tarfile.TarFile, info: tarfile.TarInfo, scanner: _Scanner, source: _Source, gz: _GzipStream
) -> None:
    name = info.name
    gz.member = name
    kind, what = _tar_kind(info)
    path = scanner.begin(name, kind, what)
    if kind == "dir":
        if info.size:
            raise _error("ARCHIVE_CORRUPT", f"the folder entry carries {info.size} bytes of data", name)
        scanner.add_dir(path, name)
        return
    if info.size < 0:
        raise _error("ARCHIVE_CORRUPT", "the tar header declares a negative size", name)
    scanner.add_file(path, name, _tar_chunks(tar, info, source), executable=bool(info.mode & stat.S_IXUSR))


def _tar_chunks(tar: tarfile.TarFile, info: tarfile.TarInfo, source: _Source) -> Iterator[bytes]:
    with _tar_errors(source):
        handle = tar.extractfile(info)
    if handle is None:
        raise _error("ARCHIVE_CORRUPT", "the member has no data", info.name)
    while True:
        with _tar_errors(source):
            chunk = handle.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def _check_tar_end(tar: tarfile.TarFile, gz: _GzipStream) -> None:
    """Where tarfile stopped, only zeros may follow: anything else is a damaged header or junk."""
    stopped_at = tar.offset
    rest = gz.since(stopped_at)
    if rest is None:
        raise _error("ARCHIVE_CORRUPT", f"the tar data cannot be checked after byte {stopped_at}")
    seen = 0
    while rest:
        if rest.count(0) != len(rest):
            raise _error(
                "ARCHIVE_CORRUPT",
                f"the tar data has a damaged header or stray data at byte {stopped_at}; "
                "the archive may be truncated or corrupt",
            )
        seen += len(rest)
        if seen > _TAR_TRAILER_ALLOWANCE:
            raise _error(
                "ARCHIVE_CORRUPT",
                f"more than {_TAR_TRAILER_ALLOWANCE} bytes follow the end of the tar archive",
            )
        rest = gz.read(_CHUNK)


def _spool(source: _Source, limits: ArchiveLimits) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
    try:
        size = 0
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > limits.max_total_bytes:
                raise _error("ARCHIVE_TOO_LARGE", f"the zip archive is larger than {limits.max_total_bytes} bytes")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool
