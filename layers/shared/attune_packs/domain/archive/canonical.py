"""The canonical archive: exactly the members the checker accepted, written one way only.

After the download stage has checked an archive, it stores the *canonical* archive instead of the
user's bytes, so every later reader (the dependencies stage, the buildspec's extractor, pack tests,
registration) reads the member list the checker accepted, whatever the original's headers said.

The format is the smallest one every reader agrees on:

* gzip without file name or timestamp (``mtime`` 0), around a POSIX ustar stream;
* the pack root's contents only, at the top level (the stored archive's root is ``""``);
* regular files and folders only, every folder listed (also those only implied by their files),
  in the order of their path components (a folder before what it holds), names in NFC;
* owner and group 0 without names, ``mtime`` 0, folders ``0755``, files ``0644`` or ``0755`` (when
  the original had the owner's execute bit);
* a name of at most 100 bytes sits in the ustar name field; a longer one in a PAX ``path`` record
  (the only PAX record ever written), with its first 100 bytes in the name field; the ustar prefix
  field is always empty;
* two zero blocks end the stream, padded with zeros to a multiple of 10,240 bytes.

:mod:`attune_packs.buildspec.extract_pack` reads this format (and nothing else) in the build.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO, cast

from attune_packs.domain.archive.checks import _CHUNK, DEFAULT_LIMITS, ArchiveLimits, PackArchive, default_want
from attune_packs.domain.archive.readers import _read

__all__ = ["CANONICAL_FORMAT", "CanonicalArchive", "canonical_members", "write_canonical"]

CANONICAL_FORMAT = "tar.gz"

BLOCK = 512
RECORD = 20 * BLOCK
NAME_FIELD = 100
_SPOOL_MEMORY = 8 * 2**20


@dataclass
class _Stored:
    offset: int
    size: int
    executable: bool


@dataclass
class _Collector:
    """A :class:`~attune_packs.domain.archive.checks.MemberSink` that keeps accepted members in a
    spool file (data) and an index (names), so they can be written in canonical order afterwards."""

    spool: IO[bytes]
    files: dict[str, _Stored] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def make_dir(self, path: str, name: str) -> None:
        self.dirs.add(path)

    @contextlib.contextmanager
    def create_file(self, path: str, name: str, *, executable: bool) -> Iterator[BinaryIO]:
        offset = self.spool.seek(0, 2)
        yield cast(BinaryIO, self.spool)
        self.files[path] = _Stored(offset, self.spool.tell() - offset, executable)


@dataclass
class CanonicalArchive:
    checked: PackArchive  # the original as the checker read it
    sha256: str  # of the canonical bytes
    size: int  # canonical bytes
    members: list[str]  # what the canonical archive holds, in its order ("dir/" for folders)


def canonical_members(files: list[str], dirs: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Folders (``"a/"``) and files in canonical order: every folder above a file is listed."""
    folders = set(dirs)
    for path in files:
        parts = path.split("/")
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    entries = [(path.split("/"), path + "/") for path in folders if path] + [(p.split("/"), p) for p in files]
    return [name for _, name in sorted(entries, key=lambda entry: [part.encode() for part in entry[0]])]


def write_canonical(stream: BinaryIO, out: BinaryIO, *, limits: ArchiveLimits = DEFAULT_LIMITS) -> CanonicalArchive:
    """Check ``stream`` (any accepted format) and write its canonical archive to ``out``."""
    with tempfile.TemporaryFile() as spool:
        collector = _Collector(spool)
        checked = _read(stream, limits, default_want, collector)
        root = checked.root
        files = {path[len(root) :]: stored for path, stored in collector.files.items() if path.startswith(root)}
        dirs = {path[len(root) :].rstrip("/") for path in collector.dirs if path.startswith(root)}
        members = canonical_members(sorted(files), dirs)
        hashing = _HashingWriter(out)
        with gzip.GzipFile(filename="", mode="wb", fileobj=cast(IO[bytes], hashing), compresslevel=6, mtime=0) as gz:
            written = 0
            for name in members:
                stored = files.get(name)
                written += _write_member(gz, name, stored, spool)
            gz.write(bytes(2 * BLOCK + (-(written + 2 * BLOCK)) % RECORD))
    return CanonicalArchive(checked, hashing.digest.hexdigest(), hashing.size, members)


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


def _write_member(gz: gzip.GzipFile, name: str, stored: _Stored | None, spool: IO[bytes]) -> int:
    encoded = name.encode("utf-8")
    written = 0
    if len(encoded) > NAME_FIELD:
        record = _pax_record(b"path", encoded)
        header = _header(b"././@PaxHeader", size=len(record), mode=0o644, typeflag=b"x")
        block = record + bytes(-len(record) % BLOCK)
        gz.write(header + block)
        written += len(header) + len(block)
        encoded = _cut(encoded)
    if stored is None:
        header = _header(encoded, size=0, mode=0o755, typeflag=b"5")
        gz.write(header)
        return written + len(header)
    header = _header(encoded, size=stored.size, mode=0o755 if stored.executable else 0o644, typeflag=b"0")
    gz.write(header)
    spool.seek(stored.offset)
    left = stored.size
    while left:
        chunk = spool.read(min(_CHUNK, left))
        if not chunk:
            raise OSError("the spooled member data ended early")
        gz.write(chunk)
        left -= len(chunk)
    padding = bytes(-stored.size % BLOCK)
    gz.write(padding)
    return written + len(header) + stored.size + len(padding)


def _cut(encoded: bytes) -> bytes:
    """The first bytes of a long name that fit the ustar name field, cut at a character boundary."""
    cut = encoded[:NAME_FIELD]
    return cut.decode("utf-8", "ignore").encode("utf-8")


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length = len(str(length).encode()) + len(body)
    return str(length).encode() + body


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _header(name: bytes, *, size: int, mode: int, typeflag: bytes) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = _octal(mode, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(0, 12)
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[329:337] = _octal(0, 8)
    header[337:345] = _octal(0, 8)
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)
