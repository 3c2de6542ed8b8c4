"""The fetched pack file, checked before dulwich inflates anything (object and delta sizes against
the limits, damaged packs refused), and the errors damaged Git data becomes."""

from __future__ import annotations

import struct
import zlib
from typing import IO

from attune_packs.errors import ArchiveError, SourceError
from attune_packs.sources.git.limits import CHUNK, GitLimits
from attune_packs.sources.http import Deadline

_OBJ_COMMIT, _OBJ_TREE, _OBJ_BLOB, _OBJ_TAG, _OFS_DELTA, _REF_DELTA = 1, 2, 3, 4, 6, 7


# --- failures of damaged Git data -----------------------------------------------------------------


def dulwich_failures() -> tuple[type[BaseException], ...]:
    """What dulwich raises for damaged or hostile data (its errors share no base class)."""
    from dulwich.errors import ApplyDeltaError, ChecksumMismatch, GitProtocolError, ObjectFormatException
    from dulwich.pack import UnresolvedDeltas

    return (
        GitProtocolError,
        ChecksumMismatch,
        ApplyDeltaError,
        ObjectFormatException,
        UnresolvedDeltas,
        AssertionError,
        KeyError,
        ValueError,
        struct.error,
        zlib.error,
    )


def git_failure(url: str, exc: BaseException) -> SourceError:
    return SourceError(f"fetching {url} failed: {exc}", error_code="GIT_FETCH_FAILED")


# --- the pack: checked before dulwich inflates it -------------------------------------------------


class _PackCursor:
    """Forward reads over a pack file, in bounded steps."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._buffer = b""
        self._pos = 0
        self.offset = 0  # bytes consumed from the start of the file

    def _refill(self) -> bool:
        more = self._file.read(CHUNK)
        if not more:
            return False
        self._buffer = self._buffer[self._pos :] + more
        self._pos = 0
        return True

    def take(self, size: int) -> bytes:
        while len(self._buffer) - self._pos < size:
            if not self._refill():
                raise corrupt_pack("it ends in the middle of an object")
        data = self._buffer[self._pos : self._pos + size]
        self._pos += size
        self.offset += size
        return data

    def inflate(self, declared: int, keep: int) -> bytes:
        """Inflate one zlib stream, checking it yields exactly ``declared`` bytes; return its first ``keep``."""
        inflater = zlib.decompressobj()
        produced = 0
        head = b""
        while not inflater.eof:
            if self._pos >= len(self._buffer) and not self._refill():
                raise corrupt_pack("it ends in the middle of compressed data")
            data = memoryview(self._buffer)[self._pos :]
            try:
                out = inflater.decompress(data, CHUNK)
            except zlib.error as exc:
                raise corrupt_pack(f"compressed data is damaged ({exc})") from exc
            consumed = len(data) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            self._pos += consumed
            self.offset += consumed
            produced += len(out)
            if produced > declared:
                raise corrupt_pack("an object inflates to more than its header declares")
            if len(head) < keep:
                head += out[: keep - len(head)]
        if produced != declared:
            raise corrupt_pack("an object inflates to less than its header declares")
        return head

    def at_end(self) -> bool:
        return self._pos >= len(self._buffer) and not self._refill()


def corrupt_pack(problem: str) -> SourceError:
    return SourceError(f"the Git server sent a damaged pack: {problem}", error_code="GIT_FETCH_FAILED")


def _varint_size(data: bytes) -> tuple[int, int]:
    """A delta header size (little-endian base-128) and the bytes it used."""
    size = shift = used = 0
    for byte in data:
        used += 1
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return size, used
    raise corrupt_pack("a delta header is truncated")


def check_pack(file: IO[bytes], limits: GitLimits, *, oid_length: int = 20, deadline: Deadline | None = None) -> int:
    """Walk every object header of a pack before anything is inflated in memory; return the object count.

    Refuses (``ARCHIVE_FILE_TOO_LARGE`` / ``ARCHIVE_TOO_LARGE`` / ``ARCHIVE_TOO_MANY_FILES``) objects
    whose declared size, or whose delta result size, is over the limits, so that neither a zlib bomb
    nor a delta bomb is ever expanded; refuses damaged packs (``GIT_FETCH_FAILED``).
    """
    file.seek(0)
    cursor = _PackCursor(file)
    header = cursor.take(12)
    version: int
    count: int
    signature, version, count = header[:4], *struct.unpack(">II", header[4:])
    if signature != b"PACK" or version not in (2, 3):
        raise corrupt_pack("it is not a version 2 or 3 pack file")
    if count > limits.max_objects:
        raise ArchiveError(
            f"the repository has {count} objects at this commit; at most {limits.max_objects} are allowed",
            error_code="ARCHIVE_TOO_MANY_FILES",
        )
    total = 0
    for _ in range(count):
        if deadline is not None and deadline.expired():
            raise deadline.error("checking the fetched Git objects")
        byte = cursor.take(1)[0]
        kind = (byte >> 4) & 0x07
        size = byte & 0x0F
        shift = 4
        while byte & 0x80:
            byte = cursor.take(1)[0]
            size |= (byte & 0x7F) << shift
            shift += 7
            if shift > 70:
                raise corrupt_pack("an object header is too long")
        if kind == _OFS_DELTA:
            byte = cursor.take(1)[0]
            steps = 0
            while byte & 0x80:
                byte = cursor.take(1)[0]
                steps += 1
                if steps > 10:
                    raise corrupt_pack("a delta offset is too long")
        elif kind == _REF_DELTA:
            cursor.take(oid_length)
        elif kind not in (_OBJ_COMMIT, _OBJ_TREE, _OBJ_BLOB, _OBJ_TAG):
            raise corrupt_pack(f"it holds an object of unknown type {kind}")
        _check_object_size(size, limits)
        head = cursor.inflate(size, keep=20 if kind in (_OFS_DELTA, _REF_DELTA) else 0)
        if kind in (_OFS_DELTA, _REF_DELTA):
            _, used = _varint_size(head)
            size, _ = _varint_size(head[used:])  # the size of the object the delta produces
            _check_object_size(size, limits)
        total += size
        if total > limits.max_total_bytes:
            raise ArchiveError(
                f"the repository's files at this commit add up to more than {limits.max_total_bytes} bytes",
                error_code="ARCHIVE_TOO_LARGE",
            )
    cursor.take(oid_length)  # the pack checksum (verified by dulwich)
    if not cursor.at_end():
        raise corrupt_pack("data follows the pack checksum")
    return count


def _check_object_size(size: int, limits: GitLimits) -> None:
    if size > limits.max_object_bytes:
        raise ArchiveError(
            f"the repository holds an object of {size} bytes; one file may be at most {limits.max_object_bytes} bytes",
            error_code="ARCHIVE_FILE_TOO_LARGE",
        )
