"""Safe reading of pack archives (``.tar.gz``/``.tgz`` and ``.zip``) from untrusted sources.

Nothing in an archive is trusted: not its name, not its headers, not the sizes they declare.

* The format is detected from the first bytes (gzip -> tar.gz, ``PK\\x03\\x04``/``PK\\x05\\x06`` -> zip),
  never from a file name.
* tar.gz is read strictly forward, so the stream may be a non-seekable HTTP or S3 body. The gzip layer
  is decoded here, in small steps, and handed to :mod:`tarfile` in ``r|`` mode: every byte tarfile
  sees has been counted, a tar header (PAX records, GNU long names) may not exceed 1 MiB, and the
  compression ratio is judged on everything produced, headers included. After the end-of-archive
  marker only zero padding may follow, so a damaged header cannot silently cut the archive short.
* zip uses the stream directly when it is seekable and otherwise spools it (at most
  ``max_total_bytes``). :mod:`zipfile` only parses the central directory; member data is read from
  the local headers and inflated here, ignoring the declared size: a member that unpacks to more
  than its header says is refused (``ARCHIVE_TOO_LARGE``), one that unpacks to less, fails its CRC,
  overlaps another member or names itself differently in its local header is ``ARCHIVE_CORRUPT``.
  Only "stored" and "deflate" members are accepted (bzip2/lzma decoders cannot bound their output).
* Every member is validated before use (see :func:`_normalise` and :class:`_Scanner`); links, devices,
  FIFOs and any other special entry are refused, never skipped.

Decisions a caller should know:

* A directory may appear more than once (explicitly, or implied by the files under it); a path that
  is a file twice, or both a file and a directory, is ``ARCHIVE_DUPLICATE_ENTRY``. Paths are compared
  after normalisation (``./a``, ``a`` and ``a//`` are the same) but without case folding or Unicode
  normalisation.
* ``.`` and empty components are dropped (``tar -C dir .`` archives work); ``..`` anywhere is refused.
* A zip name without the UTF-8 flag must still decode as UTF-8 (ASCII names always do).
* Pack root candidates are ``pack.yaml`` at the top level and ``<dir>/pack.yaml`` for every top-level
  directory (``pack/`` is one of them); exactly one candidate must exist.
* ``file_count`` counts every member, directories included (the same count ``max_files`` limits);
  ``total_bytes`` is the data of every member, inside the pack root or not.
* For tar.gz the ratio is judged on the whole decompressed stream (headers and padding included);
  for zip on member data against the archive's size.
* Files kept in memory are capped one by one (``max_kept_file_bytes``; a wanted file over it is
  ``ARCHIVE_FILE_TOO_LARGE``) and together (``max_kept_total_bytes``, ``ARCHIVE_TOO_LARGE``).
* Errors raised by the caller's stream (a failed download) propagate unchanged.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Literal, cast

from attune_packs.errors import ArchiveError

__all__ = [
    "ArchiveFormat",
    "ArchiveLimits",
    "PackArchive",
    "default_want",
    "detect_format",
    "extract_archive",
    "scan_archive",
]

ArchiveFormat = Literal["tar.gz", "zip"]
_MemberKind = Literal["file", "dir", "link", "special"]

_MiB = 2**20
_CHUNK = 64 * 1024
_HEAD_BYTES = 64  # peeked for detection and for a helpful message
_RATIO_GRACE_BYTES = 1 * _MiB  # the ratio is only judged once more than this has been produced
_TAR_HEADER_ALLOWANCE = 1 * _MiB  # one tar header, PAX records and GNU long names included
_TAR_METADATA_BUDGET = 64 * _MiB  # all tar headers and padding together
_TAR_TRAILER_ALLOWANCE = 1 * _MiB  # zero padding accepted after the end-of-archive marker
_RECENT_BYTES = 64 * 1024  # decompressed bytes remembered to inspect where tarfile stopped
_SPOOL_MEMORY = 8 * _MiB
_ZIP_DIRECTORY_BYTES_PER_MEMBER = 1024  # central directory budget per allowed member
_ZIP_EOCD_SEARCH = 22 + 0xFFFF  # end-of-central-directory record plus the longest comment
_ZIP_FLAG_ENCRYPTED = 0x1
_ZIP_FLAG_UTF8 = 0x800
_ZIP_UNICODE_PATH_FIELD = 0x7075
_MAX_NAME_BYTES = 255  # one path component (NAME_MAX)
_SHOWN_NAME_CHARS = 200
_DETAIL_NAME_CHARS = 1000

_WANTED_FILES = frozenset(
    {
        "pack.yaml",
        "requirements.txt",
        "requirements-tests.txt",
        "package.json",
        "package-lock.json",
        "npm-shrinkwrap.json",
        "config.schema.yaml",
    }
)
_COMPONENT_DIRS = frozenset(
    {
        "actions",
        "sensors",
        "triggers",
        "rules",
        "workflows",
        "policies",
        "runtimes",
        "permission_sets",
        "queues",
    }
)
_COMPONENT_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may cost. Sizes are judged on bytes actually produced, never on headers."""

    max_files: int = 10_000  # members (files + dirs)
    max_total_bytes: int = 512 * _MiB  # uncompressed bytes actually produced
    max_file_bytes: int = 128 * _MiB  # one member
    max_ratio: float = 200.0  # uncompressed / compressed, only enforced once more than 1 MiB is produced
    max_path_length: int = 400
    max_depth: int = 32
    max_kept_file_bytes: int = 1 * _MiB  # a file kept in memory (see ``want``)
    max_kept_total_bytes: int = 64 * _MiB  # all files kept in memory together


@dataclass
class PackArchive:
    format: ArchiveFormat
    root: str  # pack root prefix inside the archive: "" or "name/" or "pack/"
    files: dict[str, bytes]  # path relative to root -> content, for files where want(path) is True
    file_list: list[str]  # every regular file under the root, relative to it, sorted
    total_bytes: int  # uncompressed bytes of all members
    file_count: int  # all members, directories included
    compressed_bytes: int  # bytes read from the stream


def default_want(path: str) -> bool:
    """Whether a file (path relative to the pack root) is kept in memory: manifests and metadata."""
    if path in _WANTED_FILES:
        return True
    top, sep, rest = path.partition("/")
    return bool(sep) and top in _COMPONENT_DIRS and rest.endswith(_COMPONENT_SUFFIXES)


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
    limits: ArchiveLimits = ArchiveLimits(),
    want: Callable[[str], bool] = default_want,
) -> PackArchive:
    """Validate every member of an archive and return its pack root, file list and wanted files."""
    return _read(stream, limits, want, None)


def extract_archive(
    stream: BinaryIO,
    dest: Path,
    *,
    limits: ArchiveLimits = ArchiveLimits(),
) -> PackArchive:
    """Validate an archive while writing the pack root's contents (only) into ``dest``.

    ``dest`` must be an existing, empty directory (else ``ValueError``). Everything is first written
    to a private staging directory inside ``dest``, then the pack root's entries are moved up. On any
    error ``dest`` is emptied again and the error re-raised.
    """
    dest = Path(dest)
    if not dest.is_dir():
        raise ValueError(f"{dest} is not an existing directory")
    if any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty")
    real_dest = dest.resolve()
    try:
        staging = Path(tempfile.mkdtemp(prefix=".attune-extract-", dir=real_dest))
        with _Writer(staging) as writer:
            archive = _read(stream, limits, default_want, writer)
        _promote(staging, archive.root, real_dest)
    except BaseException:
        _empty_directory(real_dest)
        raise
    return archive


# --- errors --------------------------------------------------------------------------------------


def _show(member: str | bytes) -> str:
    """A member name for a message: repr-escaped (control characters visible) and bounded."""
    text = repr(member)
    return text if len(text) <= _SHOWN_NAME_CHARS else text[:_SHOWN_NAME_CHARS] + "..."


def _detail(member: str | bytes) -> str:
    if isinstance(member, str) and member.isprintable():
        text = member
    else:
        text = repr(member)
    return text[:_DETAIL_NAME_CHARS]


def _error(code: str, problem: str, member: str | bytes | None = None) -> ArchiveError:
    if member is None:
        return ArchiveError(problem, error_code=code)
    return ArchiveError(
        f"archive member {_show(member)}: {problem}", error_code=code, details={"member": _detail(member)}
    )


def _as_bytes(name: str) -> bytes:
    """A tar name read with ``surrogateescape`` back to the bytes in the archive."""
    return name.encode("utf-8", "surrogateescape")


# --- member names --------------------------------------------------------------------------------


def _is_control(char: str) -> bool:
    return char < " " or "\x7f" <= char <= "\x9f"


def _normalise(name: str, *, is_dir: bool, limits: ArchiveLimits) -> str:
    """The member's path as ``a/b/c`` (``""`` for the archive's own root directory), or an error."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _error(
            "ARCHIVE_BAD_FILENAME",
            "the name is not valid UTF-8; rename the file using UTF-8 (or plain ASCII) characters",
            _as_bytes(name),
        ) from None
    if "\x00" in name:
        raise _error(
            "ARCHIVE_UNSAFE_PATH", "the name contains a NUL byte, which can hide its real name", name
        )
    if any(_is_control(char) for char in name):
        raise _error(
            "ARCHIVE_BAD_FILENAME",
            "the name contains control characters (newlines, escape codes...); rename the file",
            name,
        )
    if len(name) > limits.max_path_length:
        raise _error(
            "ARCHIVE_UNSAFE_PATH",
            f"the name is {len(name)} characters long; at most {limits.max_path_length} are allowed",
            name,
        )
    if "\\" in name:
        raise _error(
            "ARCHIVE_UNSAFE_PATH",
            "the name contains a backslash; archives must separate folders with '/' "
            "(was it made by a Windows tool?)",
            name,
        )
    if name.startswith("/"):
        raise _error(
            "ARCHIVE_UNSAFE_PATH", "the name is an absolute path; members must be relative to the pack", name
        )
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        raise _error(
            "ARCHIVE_UNSAFE_PATH",
            "the name starts with a Windows drive letter; members must be relative to the pack",
            name,
        )
    raw_parts = name.split("/")
    if ".." in raw_parts:
        raise _error(
            "ARCHIVE_UNSAFE_PATH", "the name contains '..', which could write outside the pack folder", name
        )
    if not is_dir and raw_parts[-1] in ("", "."):
        raise _error("ARCHIVE_UNSAFE_PATH", "a file name must not be empty or end with '/' or '.'", name)
    parts = [part for part in raw_parts if part not in ("", ".")]
    if any(len(part.encode("utf-8")) > _MAX_NAME_BYTES for part in parts):
        raise _error(
            "ARCHIVE_UNSAFE_PATH",
            f"a file or folder name is longer than {_MAX_NAME_BYTES} bytes, which file systems refuse",
            name,
        )
    if len(parts) > limits.max_depth:
        raise _error(
            "ARCHIVE_UNSAFE_PATH",
            f"the name is nested {len(parts)} levels deep; at most {limits.max_depth} are allowed",
            name,
        )
    return "/".join(parts)


# --- the scanner: what every format shares -------------------------------------------------------


class _Scanner:
    """Validates members in archive order, accounts for their bytes and keeps wanted files.

    The pack root is only known at the end (tar is streamed), so a file is kept when ``want`` accepts
    it relative to any possible root (the archive top level or its first directory) and re-keyed by
    :meth:`finish`.
    """

    def __init__(
        self,
        limits: ArchiveLimits,
        want: Callable[[str], bool],
        writer: _Writer | None,
        compressed_size: int | None,
    ) -> None:
        self.limits = limits
        self.want = want
        self.writer = writer
        self.compressed_size = compressed_size  # known up front for zip; tar judges the ratio itself
        self.members = 0
        self.total = 0
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        self.kept: dict[str, bytes] = {}
        self.kept_bytes = 0
        self.too_big_to_keep: dict[str, int] = {}

    def begin(self, name: str, kind: _MemberKind, what: str = "") -> str:
        """Count, validate and claim one member; return its normalised path."""
        self.members += 1
        if self.members > self.limits.max_files:
            raise _error(
                "ARCHIVE_TOO_MANY_FILES",
                f"the archive has more than {self.limits.max_files} members (files and directories)",
                name,
            )
        path = _normalise(name, is_dir=kind == "dir", limits=self.limits)
        if kind == "link":
            raise _error(
                "ARCHIVE_LINK_FORBIDDEN",
                f"{what} are not allowed in packs; include a copy of the file instead",
                name,
            )
        if kind == "special":
            raise _error(
                "ARCHIVE_SPECIAL_FILE",
                f"it is a {what}; packs may only contain regular files and directories",
                name,
            )
        if path:
            self._claim(path, name, is_dir=kind == "dir")
        return path

    def _claim(self, path: str, name: str, *, is_dir: bool) -> None:
        if path in self.files:
            problem = f"{path!r} is both a file and a directory" if is_dir else f"{path!r} appears twice"
            raise _error("ARCHIVE_DUPLICATE_ENTRY", problem, name)
        if path in self.dirs and not is_dir:
            raise _error("ARCHIVE_DUPLICATE_ENTRY", f"{path!r} is both a directory and a file", name)
        parts = path.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
        for ancestor in ancestors:
            if ancestor in self.files:
                raise _error(
                    "ARCHIVE_DUPLICATE_ENTRY", f"it lies inside {ancestor!r}, which is also a file", name
                )
        self.dirs.update(ancestors)
        (self.dirs if is_dir else self.files).add(path)

    def add_dir(self, path: str, name: str) -> None:
        if path and self.writer is not None:
            self.writer.make_dir(path, name)

    def add_file(self, path: str, name: str, chunks: Iterator[bytes], *, executable: bool) -> None:
        keep = self._wanted_under_some_root(path)
        kept: list[bytes] = []
        size = 0
        with contextlib.ExitStack() as stack:
            sink = None
            if self.writer is not None:
                sink = stack.enter_context(self.writer.create_file(path, name, executable=executable))
            for chunk in chunks:
                size += len(chunk)
                self._account(len(chunk), size, name)
                if keep and size > self.limits.max_kept_file_bytes:
                    keep = False
                    kept.clear()
                    self.too_big_to_keep[path] = size
                if keep:
                    kept.append(chunk)
                if sink is not None:
                    sink.write(chunk)
        if path in self.too_big_to_keep:
            self.too_big_to_keep[path] = size
        if keep:
            self.kept_bytes += size
            if self.kept_bytes > self.limits.max_kept_total_bytes:
                raise _error(
                    "ARCHIVE_TOO_LARGE",
                    f"the pack's metadata files (manifests, component YAML/JSON) exceed "
                    f"{self.limits.max_kept_total_bytes} bytes together",
                    name,
                )
            self.kept[path] = b"".join(kept)

    def _wanted_under_some_root(self, path: str) -> bool:
        if self.want(path):
            return True
        _, sep, below_top = path.partition("/")
        return bool(sep) and self.want(below_top)

    def _account(self, produced: int, member_size: int, name: str) -> None:
        limits = self.limits
        self.total += produced
        if member_size > limits.max_file_bytes:
            raise _error(
                "ARCHIVE_FILE_TOO_LARGE",
                f"the file unpacks to more than {limits.max_file_bytes} bytes (the limit for one file)",
                name,
            )
        if self.total > limits.max_total_bytes:
            raise _error(
                "ARCHIVE_TOO_LARGE",
                f"the archive unpacks to more than {limits.max_total_bytes} bytes in total",
                name,
            )
        compressed = self.compressed_size
        if (
            compressed is not None
            and self.total > _RATIO_GRACE_BYTES
            and self.total > limits.max_ratio * compressed
        ):
            raise _ratio_error(limits, name)

    def finish(self, archive_format: ArchiveFormat, compressed_bytes: int) -> PackArchive:
        root = self._find_root()
        wanted: dict[str, bytes] = {}
        for path in sorted(self.too_big_to_keep):
            relative = path[len(root) :]
            if path.startswith(root) and self.want(relative):
                raise _error(
                    "ARCHIVE_FILE_TOO_LARGE",
                    f"{relative!r} is {self.too_big_to_keep[path]} bytes; pack metadata files may be at most "
                    f"{self.limits.max_kept_file_bytes} bytes",
                    path,
                )
        for path in sorted(self.kept):
            relative = path[len(root) :]
            if path.startswith(root) and self.want(relative):
                wanted[relative] = self.kept[path]
        return PackArchive(
            format=archive_format,
            root=root,
            files=wanted,
            file_list=sorted(path[len(root) :] for path in self.files if path.startswith(root)),
            total_bytes=self.total,
            file_count=self.members,
            compressed_bytes=compressed_bytes,
        )

    def _find_root(self) -> str:
        if self.members == 0:
            raise _error("PACK_MANIFEST_MISSING", "the archive is empty")
        candidates = [""] if "pack.yaml" in self.files else []
        candidates += sorted(
            path.removesuffix("pack.yaml")
            for path in self.files
            if path.count("/") == 1 and path.endswith("/pack.yaml")
        )
        if not candidates:
            raise _error(
                "PACK_MANIFEST_MISSING",
                "the archive has no pack.yaml: put it at the top level or in a single top-level folder",
            )
        if len(candidates) > 1:
            shown = ", ".join(repr(candidate + "pack.yaml") for candidate in candidates)
            raise _error(
                "PACK_ROOT_AMBIGUOUS",
                f"the archive has several pack roots ({shown}); an archive must hold exactly one pack",
            )
        return candidates[0]


def _ratio_error(limits: ArchiveLimits, name: str | None) -> ArchiveError:
    return _error(
        "ARCHIVE_TOO_LARGE",
        f"the archive expands to more than {limits.max_ratio:g} times its compressed size "
        "(a decompression bomb?)",
        name,
    )


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
    stream: BinaryIO, limits: ArchiveLimits, want: Callable[[str], bool], writer: _Writer | None
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
    source: _Source, limits: ArchiveLimits, want: Callable[[str], bool], writer: _Writer | None
) -> PackArchive:
    gz = _GzipStream(source, limits)
    scanner = _Scanner(limits, want, writer, compressed_size=None)
    gz.limit = _TAR_HEADER_ALLOWANCE
    with _tar_errors(source):
        try:
            tar = tarfile.open(
                fileobj=cast(IO[bytes], gz), mode="r|", encoding="utf-8", errors="surrogateescape"
            )
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


# --- zip -----------------------------------------------------------------------------------------


def _spool(source: _Source, limits: ArchiveLimits) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
    try:
        size = 0
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > limits.max_total_bytes:
                raise _error(
                    "ARCHIVE_TOO_LARGE", f"the zip archive is larger than {limits.max_total_bytes} bytes"
                )
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool


def _check_zip_directory(fp: BinaryIO, start: int, end: int, limits: ArchiveLimits) -> None:
    """Refuse a central directory too big for ``max_files`` before zipfile loads it into memory."""
    tail_length = min(end - start, _ZIP_EOCD_SEARCH)
    fp.seek(end - tail_length)
    tail = fp.read(tail_length)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return  # zipfile reports it
    _, _, _, _, entries, directory_size, _, _ = struct.unpack("<4s4H2LH", tail[at : at + 22])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        record = tail[max(at - 20 - 56, 0) : max(at - 20, 0)]
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries, directory_size = struct.unpack("<QQ", record[32:48])
    if entries > limits.max_files:
        raise _error(
            "ARCHIVE_TOO_MANY_FILES",
            f"the zip directory lists {entries} members; at most {limits.max_files} are allowed",
        )
    if directory_size > limits.max_files * _ZIP_DIRECTORY_BYTES_PER_MEMBER:
        raise _error(
            "ARCHIVE_TOO_MANY_FILES",
            f"the zip central directory is {directory_size} bytes, too large for "
            f"{limits.max_files} members",
        )


def _read_zip(
    fp: BinaryIO,
    start: int,
    end: int,
    limits: ArchiveLimits,
    want: Callable[[str], bool],
    writer: _Writer | None,
) -> PackArchive:
    archive_size = end - start
    try:
        _check_zip_directory(fp, start, end, limits)
        archive = zipfile.ZipFile(fp)
    except UnicodeDecodeError as exc:
        raise _error(
            "ARCHIVE_BAD_FILENAME", "the name is marked as UTF-8 but is not valid UTF-8", exc.object
        ) from exc
    except NotImplementedError as exc:
        raise _error(
            "ARCHIVE_UNSUPPORTED_FORMAT", f"the zip archive uses an unsupported feature ({exc})"
        ) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, struct.error) as exc:
        raise _error("ARCHIVE_CORRUPT", f"the zip archive is corrupt or truncated ({exc})") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_files:
            raise _error(
                "ARCHIVE_TOO_MANY_FILES",
                f"the archive has more than {limits.max_files} members (files and directories)",
                infos[limits.max_files].orig_filename,
            )
        data_ends = _zip_data_ends(infos, archive.start_dir)
        scanner = _Scanner(limits, want, writer, compressed_size=archive_size)
        for info in infos:
            name, raw_name = _zip_name(info)
            mode = info.external_attr >> 16
            kind, what = _zip_kind(name, mode)
            path = scanner.begin(name, kind, what)
            if kind == "dir":
                scanner.add_dir(path, name)
                continue
            chunks = _zip_chunks(fp, info, name, raw_name, data_ends[info.header_offset])
            scanner.add_file(path, name, chunks, executable=bool(mode & stat.S_IXUSR))
    return scanner.finish("zip", archive_size)


def _zip_data_ends(infos: list[zipfile.ZipInfo], directory_start: int) -> dict[int, int]:
    """For each local header offset, where the next member (or the central directory) begins."""
    owners: dict[int, zipfile.ZipInfo] = {}
    for info in infos:
        if info.header_offset in owners:
            raise _error(
                "ARCHIVE_CORRUPT",
                f"the member shares its data with {_show(owners[info.header_offset].orig_filename)} "
                "(an overlapping zip bomb?)",
                info.orig_filename,
            )
        owners[info.header_offset] = info
    offsets = sorted(owners)
    return dict(zip(offsets, [*offsets[1:], directory_start], strict=False))


def _zip_name(info: zipfile.ZipInfo) -> tuple[str, bytes]:
    """The member's name and its bytes in the central directory; UTF-8 only."""
    name = info.orig_filename
    if info.flag_bits & _ZIP_FLAG_UTF8:
        raw = name.encode("utf-8")
    else:
        problem = "the name is not valid UTF-8; rename the file using UTF-8 (or plain ASCII) characters"
        try:
            raw = name.encode("cp437")  # zipfile decoded the raw bytes as cp437, a bijection
        except UnicodeEncodeError:
            raise _error("ARCHIVE_BAD_FILENAME", problem, name) from None
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _error("ARCHIVE_BAD_FILENAME", problem, raw) from None
    unicode_path = _zip_unicode_path(info.extra)
    if unicode_path is not None and unicode_path != name:
        raise _error(
            "ARCHIVE_BAD_FILENAME",
            f"the member has a second, different name {_show(unicode_path)} in its Unicode Path field",
            name,
        )
    return name, raw


def _zip_unicode_path(extra: bytes) -> str | None:
    """The Info-ZIP Unicode Path (0x7075) some tools prefer to the member name, if present."""
    at = 0
    while at + 4 <= len(extra):
        field_id, length = struct.unpack("<HH", extra[at : at + 4])
        if field_id == _ZIP_UNICODE_PATH_FIELD and length >= 5:
            return extra[at + 9 : at + 4 + length].decode("utf-8", "surrogateescape")
        at += 4 + length
    return None


def _zip_kind(name: str, mode: int) -> tuple[_MemberKind, str]:
    file_type = stat.S_IFMT(mode)
    if file_type == stat.S_IFLNK:
        return "link", "symbolic links"
    if file_type == stat.S_IFDIR or (file_type in (0, stat.S_IFREG) and name.endswith("/")):
        return "dir", ""
    if file_type in (0, stat.S_IFREG):
        return "file", ""
    described = {
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFIFO: "FIFO (named pipe)",
        stat.S_IFSOCK: "socket",
    }
    return "special", described.get(file_type, f"special file (mode {file_type:#o})")


def _zip_chunks(
    fp: BinaryIO, info: zipfile.ZipInfo, name: str, raw_name: bytes, data_end: int
) -> Iterator[bytes]:
    """Check a member's local header, then return its data inflated in bounded chunks."""
    if info.flag_bits & _ZIP_FLAG_ENCRYPTED:
        raise _error(
            "ARCHIVE_UNSUPPORTED_FORMAT", "the member is encrypted; packs must not be encrypted", name
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _error(
            "ARCHIVE_UNSUPPORTED_FORMAT",
            f"the member uses compression method {info.compress_type}; only 'stored' and 'deflate' "
            "are accepted",
            name,
        )
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise _error("ARCHIVE_CORRUPT", "the member's local header is missing", name)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    if fp.read(name_length) != raw_name:
        raise _error(
            "ARCHIVE_CORRUPT", "the member's local header gives a different name than the zip directory", name
        )
    data_start = info.header_offset + 30 + name_length + extra_length
    if data_start + info.compress_size > data_end:
        raise _error(
            "ARCHIVE_CORRUPT", "the member's data overlaps another member (an overlapping zip bomb?)", name
        )
    fp.seek(data_start)
    return _inflate(fp, info, name)


def _inflate(fp: BinaryIO, info: zipfile.ZipInfo, name: str) -> Iterator[bytes]:
    decoder = zlib.decompressobj(wbits=-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    remaining = info.compress_size
    pending = b""
    produced = 0
    crc = 0
    while True:
        if not pending and remaining > 0:
            pending = fp.read(min(_CHUNK, remaining))
            if not pending:
                raise _error("ARCHIVE_CORRUPT", "the member's data ends early (truncated archive?)", name)
            remaining -= len(pending)
        if decoder is None:
            out, pending = pending, b""
        else:
            try:
                out = decoder.decompress(pending, _CHUNK)
            except zlib.error as exc:
                problem = f"the member's compressed data is corrupt ({exc})"
                raise _error("ARCHIVE_CORRUPT", problem, name) from exc
            pending = decoder.unconsumed_tail
        if out:
            produced += len(out)
            if produced > info.file_size:
                raise _error(
                    "ARCHIVE_TOO_LARGE",
                    f"the member unpacks to more than the {info.file_size} bytes its header declares",
                    name,
                )
            crc = zlib.crc32(out, crc)
            yield out
        if decoder is not None and decoder.eof:
            break
        if not out and not pending and remaining == 0:
            if decoder is not None:
                raise _error("ARCHIVE_CORRUPT", "the member's compressed data is incomplete", name)
            break
    if produced != info.file_size:
        raise _error(
            "ARCHIVE_CORRUPT",
            f"the member unpacks to {produced} bytes but its header declares {info.file_size}",
            name,
        )
    if crc != info.CRC:
        raise _error("ARCHIVE_CORRUPT", "the member's data does not match its CRC-32 checksum", name)


# --- extraction ----------------------------------------------------------------------------------


class _Writer:
    """Creates members under a private staging directory, one ``dir_fd`` step at a time, following
    nothing (``O_NOFOLLOW``, ``O_EXCL``). Directories are 0o755, files 0o644 or 0o755."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.close(self._root_fd)

    def _check_inside(self, path: str, name: str) -> list[str]:
        if not (self.root / path).resolve().is_relative_to(self.root):
            raise _error("ARCHIVE_UNSAFE_PATH", "the member would be written outside the destination", name)
        return path.split("/")

    def _open_dirs(self, parts: list[str]) -> int:
        fd = os.dup(self._root_fd)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    created = True
                except FileExistsError:
                    created = False
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = child
                if created:
                    os.fchmod(fd, 0o755)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_dir(self, path: str, name: str) -> None:
        fd = self._open_dirs(self._check_inside(path, name))
        try:
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)

    def create_file(self, path: str, name: str, *, executable: bool) -> BinaryIO:
        parts = self._check_inside(path, name)
        parent = self._open_dirs(parts[:-1])
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(parts[-1], flags, 0o600, dir_fd=parent)
        finally:
            os.close(parent)
        try:
            os.fchmod(fd, 0o755 if executable else 0o644)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "wb")


def _promote(staging: Path, root: str, dest: Path) -> None:
    """Move the pack root's entries from ``staging`` (inside ``dest``) up into ``dest``."""
    names = os.listdir(staging / root)
    while staging.name in names:  # a pack entry happens to share the staging directory's name
        moved = staging.with_name(f".attune-extract-{secrets.token_hex(8)}")
        os.rename(staging, moved)
        staging = moved
    source = staging / root
    for name in names:
        os.rename(source / name, dest / name)
    shutil.rmtree(staging)


def _empty_directory(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
