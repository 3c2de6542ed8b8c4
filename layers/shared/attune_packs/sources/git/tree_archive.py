"""From a commit's tree to a deterministic ``tar.gz`` stream: the tree walked and validated, blobs
streamed one at a time, and the :class:`GitArchive` a fetched pack becomes."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast

from attune_packs.errors import ArchiveError, SourceError
from attune_packs.sources.git.limits import CHUNK, GitLimits
from attune_packs.sources.git.packfile import check_pack, corrupt_pack, dulwich_failures, git_failure
from attune_packs.sources.git.refs import WantedObject
from attune_packs.sources.http import Deadline

_MODE_DIR, _MODE_LINK, _MODE_GITLINK = 0o040000, 0o120000, 0o160000
_RECORD = 20 * 512  # tar record size: archives end on a record boundary


# --- from the commit's tree to a tar.gz stream ----------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: str
    mode: int
    sha: bytes


def _tree_entries(pack: Any, tree_sha: bytes, limits: GitLimits, warnings: list[str]) -> list[_Entry]:
    """Every entry under the tree in a fixed (git) order, validated; submodules skipped with a warning."""
    from dulwich.objects import Tree

    entries: list[_Entry] = []

    def walk(sha: bytes, prefix: str, depth: int) -> None:
        if depth > limits.max_depth:
            raise ArchiveError(
                f"the repository nests folders more than {limits.max_depth} levels deep ({prefix!r})",
                error_code="ARCHIVE_UNSAFE_PATH",
            )
        tree = _object(pack, sha)
        if not isinstance(tree, Tree):
            raise corrupt_pack(f"{sha.decode()} should be a tree")
        try:
            items = list(tree.iteritems())
        except dulwich_failures() as exc:
            raise corrupt_pack(f"tree {sha.decode()} cannot be read ({exc})") from exc
        for item in items:
            name = _entry_name(item.path, prefix)
            path = prefix + name
            if item.mode == _MODE_GITLINK:
                warnings.append(f"submodule {path!r} was not fetched (submodules are not supported)")
                continue
            entries.append(_Entry(path, item.mode, item.sha))
            if len(entries) > limits.max_files:
                raise ArchiveError(
                    f"the repository has more than {limits.max_files} files and folders",
                    error_code="ARCHIVE_TOO_MANY_FILES",
                )
            if item.mode == _MODE_DIR:
                walk(item.sha, path + "/", depth + 1)

    walk(tree_sha, "", 1)
    return entries


def _entry_name(raw: bytes, prefix: str) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(
            f"the repository has a file name that is not UTF-8 ({prefix}{raw!r}); rename it",
            error_code="ARCHIVE_BAD_FILENAME",
        ) from None
    if name in ("", ".", "..") or "/" in name or "\x00" in name or name.lower() == ".git":
        raise ArchiveError(
            f"the repository's tree holds an impossible entry {prefix}{name!r}", error_code="ARCHIVE_UNSAFE_PATH"
        )
    return name


def _object(pack: Any, sha: bytes) -> Any:
    try:
        return pack[sha]
    except KeyError:
        raise corrupt_pack(f"object {sha.decode()} is missing") from None
    except dulwich_failures() as exc:
        raise corrupt_pack(f"object {sha.decode()} cannot be read ({exc})") from exc


class _Sink:
    """Collects what the gzip writer produces until the generator hands it on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return out


def tar_gz_from_pack(
    pack: Any, commit: Any, limits: GitLimits, *, deadline: Deadline | None = None
) -> tuple[Iterator[bytes], list[str]]:
    """The commit's tree as ``tar.gz`` chunks (about 1 MiB each), and warnings found on the way.

    The tree is walked (and validated) up front; blobs are read one at a time while streaming.
    """
    warnings: list[str] = []
    entries = _tree_entries(pack, commit.tree, limits, warnings)
    commit_id = commit.id.decode()
    mtime = int(commit.commit_time)

    def chunks() -> Iterator[bytes]:
        sink = _Sink()
        written = 0
        with gzip.GzipFile(fileobj=cast(BinaryIO, sink), mode="wb", compresslevel=6, mtime=0, filename="") as gz:

            def put(data: bytes) -> None:
                nonlocal written
                gz.write(data)
                written += len(data)

            put(tarfile.TarInfo.create_pax_global_header({"comment": commit_id}))
            for entry in entries:
                if deadline is not None and deadline.expired():
                    raise deadline.error("writing the Git commit as an archive")
                info = tarfile.TarInfo(entry.path)
                info.mtime = mtime
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                data = b""
                if entry.mode == _MODE_DIR:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                elif entry.mode == _MODE_LINK:
                    info.type, info.mode = tarfile.SYMTYPE, 0o777
                    info.linkname = _object(pack, entry.sha).as_raw_string().decode("utf-8", "replace")
                elif entry.mode & 0o170000 == 0o100000:
                    info.type, info.mode = tarfile.REGTYPE, 0o755 if entry.mode & 0o100 else 0o644
                    data = _object(pack, entry.sha).as_raw_string()
                    info.size = len(data)
                else:
                    raise corrupt_pack(f"{entry.path!r} has an unknown file mode {entry.mode:o}")
                put(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"))
                for start in range(0, len(data), CHUNK):
                    put(data[start : start + CHUNK])
                    if sink.size >= CHUNK:
                        yield sink.drain()
                if len(data) % 512:
                    put(b"\0" * (512 - len(data) % 512))
                if sink.size >= CHUNK:
                    yield sink.drain()
            put(b"\0" * 1024)  # end-of-archive marker
            if written % _RECORD:
                put(b"\0" * (_RECORD - written % _RECORD))
        yield sink.drain()

    return chunks(), warnings


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not len(self._pending):
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def chunk_stream(chunks: Iterator[bytes]) -> BinaryIO:
    """A readable binary stream over an iterator of chunks (``read(n)`` returns ``n`` bytes until the end)."""
    return cast(BinaryIO, io.BufferedReader(_ChunkReader(chunks), buffer_size=CHUNK))


# --- the archive of a fetched pack ----------------------------------------------------------------


@dataclass
class GitArchive:
    commit: str  # full commit id
    resolved_ref: str  # what the ref was found as ("refs/tags/v1.2.0", "HEAD", a commit id)
    stream: BinaryIO  # the commit's tree as tar.gz
    warnings: list[str] = field(default_factory=list)


def _load_pack(spool: IO[bytes], object_format: Any) -> Any:
    from dulwich.pack import MemoryPackIndex, Pack, PackData

    spool.flush()
    spool.seek(0)
    data = PackData.from_file(spool, object_format)
    try:
        data.check()  # the trailing checksum covers everything received
        index = MemoryPackIndex.for_pack(data)
        return Pack.from_objects(data, index)
    except BaseException:
        data.close()
        raise


def _peel_to_commit(pack: Any, wanted: WantedObject, url: str) -> Any:
    from dulwich.objects import Commit, Tag

    obj = _object(pack, wanted.sha)
    for _ in range(10):
        if not isinstance(obj, Tag):
            break
        obj = _object(pack, obj.object[1])
    if not isinstance(obj, Commit):
        raise SourceError(
            f"{url}: {wanted.name} names a {type(obj).__name__.lower()}, not a commit", error_code="GIT_REF_NOT_FOUND"
        )
    return obj


@contextmanager
def archive_from_pack(
    pack_file: IO[bytes],
    wanted: WantedObject,
    object_format: Any,
    *,
    url: str,
    limits: GitLimits,
    deadline: Deadline | None = None,
) -> Iterator[GitArchive]:
    """The tar.gz stream of the commit ``wanted`` names, from a fetched pack file (checked first)."""
    check_pack(pack_file, limits, oid_length=object_format.oid_length, deadline=deadline)
    try:
        pack = _load_pack(pack_file, object_format)
    except dulwich_failures() as exc:
        raise git_failure(url, exc) from exc
    try:
        commit = _peel_to_commit(pack, wanted, url)
        chunks, warnings = tar_gz_from_pack(pack, commit, limits, deadline=deadline)
        yield GitArchive(commit.id.decode(), wanted.name, chunk_stream(chunks), warnings)
    finally:
        pack.close()
