"""Git repositories over HTTPS as pack sources, in pure Python (dulwich; Lambda has no git binary).

A Git source becomes an ordinary pack archive: the commit's tree is written as a ``tar.gz`` byte
stream that goes through the same pipeline as any downloaded archive (staging upload while hashing,
:func:`attune_packs.domain.archive.scan_archive`, content-addressed key). Nothing is checked out or
extracted to disk; only the fetched pack file (compressed Git objects, capped) is spooled, in memory
up to 16 MiB and in an anonymous temporary file beyond.

Safety, in order:

1. Before any network access or subprocess (there is none anyway): the URL must be ``https`` (or
   ``http`` where allowed), with no credentials, no ``..``, nothing option-like or control characters;
   remote helpers (``ext::``), ``file://``, ``ssh://``, ``git://`` and scp-style addresses are
   ``SOURCE_URL_FORBIDDEN``. Refs follow ``git check-ref-format`` and may not start with ``-``
   (``REF_INVALID``).
2. Every HTTP request dulwich makes goes through :class:`attune_packs.sources.http.HttpClient` (address
   checks, pinning, redirects, deadline, byte cap). Dumb-HTTP servers are refused.
3. The fetch is shallow (``depth=1``) and asks for exactly one object (with no ``have`` lines a
   thin pack cannot refer to anything outside itself; one that does is refused), with no
   submodules (gitlinks are skipped with a warning) and no hooks (nothing is ever executed).
4. Before dulwich inflates anything, :func:`check_pack` walks the pack's object headers and refuses
   objects or delta results over the limits (a zlib or delta "bomb" would otherwise be inflated in
   memory). dulwich bounds each inflation by the declared size.
5. Tree entries are validated while the tree is walked (names, depth, counts); symlinks become tar
   symlinks, which the archive scanner refuses like any other link.

The archive is deterministic for a commit (sorted tree order, the commit time as mtime, owner 0,
gzip header without time or name, a PAX global header carrying the commit id as ``git archive``
does), so downloading the same commit twice yields the same checksum and stores nothing new.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast
from urllib.parse import urlsplit

from attune_packs.domain.archive import ArchiveLimits
from attune_packs.errors import ArchiveError, AttuneError, SourceError
from attune_packs.sources.http import Deadline, HttpClient, HttpResponse, Target, parse_target

__all__ = [
    "GitArchive",
    "GitLimits",
    "WantedObject",
    "archive_from_pack",
    "check_git_url",
    "check_pack",
    "chunk_stream",
    "check_ref",
    "open_git_archive",
    "select_ref",
    "split_git_source",
    "tar_gz_from_pack",
]

_MiB = 2**20
_SPOOL_MEMORY = 16 * _MiB
_MAX_REF_LENGTH = 255
_MAX_REQUEST_BODY = 1 * _MiB
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ABBREVIATED_SHA = re.compile(r"[0-9a-f]{7,63}")
_VERSION_LIKE = re.compile(r"\d+(\.\d+)*([-+][0-9A-Za-z.-]+)?")
_SCP_LIKE = re.compile(r"^[^/:@\s]+@[^/:\s]+:|^[A-Za-z0-9.-]+:(?!//)[^\s]")
_FORBIDDEN_SCHEMES = {
    "file": "file://",
    "ssh": "ssh://",
    "git+ssh": "ssh://",
    "ssh+git": "ssh://",
    "git": "git://",
    "ftp": "ftp://",
    "ftps": "ftps://",
    "rsync": "rsync://",
}
_REF_FORBIDDEN_CHARS = set("~^:?*[\\")

_OBJ_COMMIT, _OBJ_TREE, _OBJ_BLOB, _OBJ_TAG, _OFS_DELTA, _REF_DELTA = 1, 2, 3, 4, 6, 7
_MODE_DIR, _MODE_LINK, _MODE_GITLINK = 0o040000, 0o120000, 0o160000
_RECORD = 20 * 512  # tar record size: archives end on a record boundary
_CHUNK = 1 * _MiB


@dataclass(frozen=True)
class GitLimits:
    """What fetching one commit may cost."""

    max_pack_bytes: int = 512 * _MiB  # the compressed pack as received
    max_objects: int = 200_000
    max_object_bytes: int = 128 * _MiB  # any one object, delta results included
    max_total_bytes: int = 576 * _MiB  # all objects inflated, delta results counted
    max_files: int = 10_000  # tree entries (files and folders)
    max_depth: int = 32

    @classmethod
    def for_archives(cls, limits: ArchiveLimits, *, max_pack_bytes: int) -> GitLimits:
        return cls(
            max_pack_bytes=max_pack_bytes,
            max_object_bytes=limits.max_file_bytes,
            max_total_bytes=limits.max_total_bytes + 64 * _MiB,  # trees and the commit on top of files
            max_files=limits.max_files,
            max_depth=limits.max_depth,
        )


# --- checks before any network access ------------------------------------------------------------


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def check_ref(ref: str) -> str:
    """A branch, tag or commit name that cannot be mistaken for an option or a revision expression."""

    def invalid(problem: str) -> SourceError:
        return SourceError(f"Git ref {ref!r} is refused: {problem}", error_code="REF_INVALID")

    if not ref:
        raise invalid("it is empty")
    if len(ref) > _MAX_REF_LENGTH:
        raise invalid(f"it is longer than {_MAX_REF_LENGTH} characters")
    if ref.startswith("-"):
        raise invalid("it starts with '-', which a Git command would read as an option")
    if _has_control_or_space(ref):
        raise invalid("it contains spaces, newlines or other control characters")
    if ".." in ref:
        raise invalid("it contains '..'")
    if "@{" in ref or ref == "@":
        raise invalid("it contains '@{' (reflog syntax)")
    bad = sorted(_REF_FORBIDDEN_CHARS.intersection(ref))
    if bad:
        raise invalid(f"it contains {' '.join(repr(c) for c in bad)}, which Git does not allow in names")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise invalid("it has an empty path component")
    if ref.endswith(".") or ref.endswith(".lock"):
        raise invalid("it ends with '.' or '.lock'")
    if any(part.startswith(".") for part in ref.split("/")):
        raise invalid("a component starts with '.'")
    return ref


def check_git_url(url: str, *, allow_http: bool) -> Target:
    """Refuse every transport but https (and http where allowed) and anything option-like."""

    def forbidden(problem: str) -> SourceError:
        return SourceError(f"Git source {url!r} is refused: {problem}", error_code="SOURCE_URL_FORBIDDEN")

    if url.startswith("-"):
        raise forbidden("it starts with '-', which a Git command would read as an option")
    if "::" in url.split("/", 1)[0]:
        raise forbidden("Git remote helpers (ext::, fd:: and the like) can run commands; use https://")
    if _has_control_or_space(url):
        raise forbidden("it contains spaces, newlines or other control characters")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in _FORBIDDEN_SCHEMES:
        raise forbidden(f"the {_FORBIDDEN_SCHEMES[scheme]} transport is not allowed; use https://")
    if not scheme and _SCP_LIKE.match(url):
        raise forbidden("scp-style SSH addresses (user@host:path) are not allowed; use https://")
    if ".." in url:
        raise forbidden("it contains '..'")
    target = parse_target(url, allow_http=allow_http)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise forbidden("a repository URL has no query string or fragment")
    return target


def split_git_source(source: str) -> tuple[str, str | None]:
    """``https://host/org/repo.git@v1.2.0`` -> (``https://host/org/repo.git``, ``v1.2.0``)."""
    scheme, separator, rest = source.partition("://")
    if not separator:
        return source, None
    netloc, slash, path = rest.partition("/")
    if "@" not in path:
        return source, None
    path, _, ref = path.partition("@")
    return f"{scheme}://{netloc}{slash}{path}", ref


# --- choosing the commit -------------------------------------------------------------------------


@dataclass(frozen=True)
class WantedObject:
    sha: bytes  # hex object id (a commit or an annotated tag)
    name: str  # what it was found as: "refs/tags/v1.2.0", "HEAD", or the commit id
    advertised: bool  # the server listed it (unadvertised commits need server support)


def select_ref(refs: Mapping[bytes, bytes], ref: str | None, *, url: str = "the repository") -> WantedObject:
    """The object ``ref`` names among the server's refs: tags first, then branches (as git rev-parse)."""
    if ref is None or ref == "HEAD":
        head = refs.get(b"HEAD")
        if head is None:
            raise SourceError(
                f"{url} has no default branch (HEAD); name a branch, tag or commit with @ref or ref_spec",
                error_code="GIT_REF_NOT_FOUND",
            )
        return WantedObject(head, "HEAD", True)
    lowered = ref.lower()
    if _FULL_SHA.fullmatch(lowered):
        sha = lowered.encode()
        return WantedObject(sha, lowered, sha in set(refs.values()))
    candidates = [ref] if ref.startswith("refs/") else [f"refs/tags/{ref}", f"refs/heads/{ref}"]
    if _VERSION_LIKE.fullmatch(ref):
        candidates.append(f"refs/tags/v{ref}")  # StackStorm Exchange tags versions as v1.2.3
    for name in candidates:
        sha = refs.get(name.encode())
        if sha is not None:
            return WantedObject(sha, name, True)
    if _ABBREVIATED_SHA.fullmatch(lowered):
        problem = "abbreviated commit ids cannot be resolved on a server: give all 40 hex digits"
    else:
        tags = sorted(k.decode(errors="replace")[10:] for k in refs if k.startswith(b"refs/tags/"))
        problem = "there is no such branch or tag" + (f" (tags: {', '.join(tags[:10])})" if tags else "")
    raise SourceError(f"{url}: ref {ref!r} not found: {problem}", error_code="GIT_REF_NOT_FOUND")


def _ref_prefixes(ref: str | None) -> list[bytes] | None:
    """What to ask the server to list (protocol v2 filters on its side)."""
    if ref is None or ref == "HEAD":
        return [b"HEAD"]
    if _FULL_SHA.fullmatch(ref.lower()):
        return None
    if ref.startswith("refs/"):
        return [ref.encode()]
    prefixes = [b"refs/tags/" + ref.encode(), b"refs/heads/" + ref.encode()]
    if _VERSION_LIKE.fullmatch(ref):
        prefixes.append(b"refs/tags/v" + ref.encode())
    return prefixes


# --- dulwich over attune_packs.sources.http ----------------------------------------------------------------


def _http_git_client_class() -> type[Any]:
    from dulwich.client import AbstractHttpGitClient

    class NetHttpGitClient(AbstractHttpGitClient):  # type: ignore[misc]
        """dulwich's smart-HTTP client with every request made by :class:`HttpClient`."""

        def __init__(self, base_url: str, http: HttpClient, deadline: Deadline, max_bytes: int) -> None:
            super().__init__(base_url, dumb=False, thin_packs=True, quiet=True, include_tags=False)
            self._http = http
            self._deadline = deadline
            self._max_bytes = max_bytes

        def _http_request(
            self,
            url: str,
            headers: dict[str, str] | None = None,
            data: bytes | Iterator[bytes] | None = None,
            raise_for_status: bool = True,
        ) -> tuple[HttpResponse, Any]:
            body = None
            if data is not None:
                body = data if isinstance(data, bytes) else _bounded_join(data)
            response = self._http.open(
                url,
                deadline=self._deadline,
                max_bytes=self._max_bytes,
                method="POST" if body is not None else "GET",
                headers=dict(headers or {}),
                body=body,
            )
            content_type = response.content_type or ""
            if "/info/refs" in urlsplit(url).path and not content_type.startswith("application/x-git-"):
                response.close()
                raise SourceError(
                    f"{url} is not a smart-HTTP Git server (content type {content_type or 'none'}); "
                    "dumb HTTP repositories are not supported",
                    error_code="GIT_FETCH_FAILED",
                )
            return response, response.read

    return NetHttpGitClient


def _bounded_join(parts: Iterator[bytes]) -> bytes:
    body = bytearray()
    for part in parts:
        body += part
        if len(body) > _MAX_REQUEST_BODY:
            raise SourceError("a Git request grew larger than 1 MiB", error_code="GIT_FETCH_FAILED")
    return bytes(body)


def _dulwich_failures() -> tuple[type[BaseException], ...]:
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


def _git_failure(url: str, exc: BaseException) -> SourceError:
    return SourceError(f"fetching {url} failed: {exc}", error_code="GIT_FETCH_FAILED")


def _fetch(
    url: str, ref: str | None, http: HttpClient, deadline: Deadline, limits: GitLimits, spool: IO[bytes]
) -> tuple[WantedObject, Any]:
    """Fetch the one wanted object (depth 1) into ``spool``; return it and the object format."""
    from dulwich.object_format import get_object_format
    from dulwich.object_store import ObjectStoreGraphWalker

    client = _http_git_client_class()(url, http, deadline, limits.max_pack_bytes)
    chosen: list[WantedObject] = []
    received = 0

    def determine_wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        wanted = select_ref(refs, ref, url=url)
        chosen.append(wanted)
        return [wanted.sha]

    def write(data: bytes) -> int:
        nonlocal received
        received += len(data)
        if received > limits.max_pack_bytes:
            raise SourceError(
                f"{url}: the repository's data at this commit is larger than {limits.max_pack_bytes} bytes",
                error_code="DOWNLOAD_TOO_LARGE",
            )
        spool.write(data)
        return len(data)

    walker = ObjectStoreGraphWalker([], lambda _sha: [])
    try:
        result = client.fetch_pack("", determine_wants, walker, write, depth=1, ref_prefix=_ref_prefixes(ref))
    except AttuneError as exc:
        if chosen and not chosen[0].advertised and exc.error_code in ("DOWNLOAD_HTTP_ERROR", "GIT_FETCH_FAILED"):
            raise _unadvertised(url, chosen[0]) from exc
        raise
    except _dulwich_failures() as exc:
        if chosen and not chosen[0].advertised:
            raise _unadvertised(url, chosen[0]) from exc
        raise _git_failure(url, exc) from exc
    if not chosen:
        raise SourceError(f"{url}: the server listed no refs", error_code="GIT_FETCH_FAILED")
    return chosen[0], get_object_format(getattr(result, "object_format", None))


def _unadvertised(url: str, wanted: WantedObject) -> SourceError:
    return SourceError(
        f"{url}: the server refused commit {wanted.name}: it does not exist, or it is not the tip of a "
        "branch or tag and this server does not serve such commits; name a branch or tag instead",
        error_code="GIT_REF_NOT_FOUND",
    )


# --- the pack: checked before dulwich inflates it -------------------------------------------------


class _PackCursor:
    """Forward reads over a pack file, in bounded steps."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._buffer = b""
        self._pos = 0
        self.offset = 0  # bytes consumed from the start of the file

    def _refill(self) -> bool:
        more = self._file.read(_CHUNK)
        if not more:
            return False
        self._buffer = self._buffer[self._pos :] + more
        self._pos = 0
        return True

    def take(self, size: int) -> bytes:
        while len(self._buffer) - self._pos < size:
            if not self._refill():
                raise _corrupt_pack("it ends in the middle of an object")
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
                raise _corrupt_pack("it ends in the middle of compressed data")
            data = memoryview(self._buffer)[self._pos :]
            try:
                out = inflater.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise _corrupt_pack(f"compressed data is damaged ({exc})") from exc
            consumed = len(data) - len(inflater.unconsumed_tail) - len(inflater.unused_data)
            self._pos += consumed
            self.offset += consumed
            produced += len(out)
            if produced > declared:
                raise _corrupt_pack("an object inflates to more than its header declares")
            if len(head) < keep:
                head += out[: keep - len(head)]
        if produced != declared:
            raise _corrupt_pack("an object inflates to less than its header declares")
        return head

    def at_end(self) -> bool:
        return self._pos >= len(self._buffer) and not self._refill()


def _corrupt_pack(problem: str) -> SourceError:
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
    raise _corrupt_pack("a delta header is truncated")


def check_pack(file: IO[bytes], limits: GitLimits, *, oid_length: int = 20, deadline: Deadline | None = None) -> int:
    """Walk every object header of a pack before anything is inflated in memory; return the object count.

    Refuses (``ARCHIVE_FILE_TOO_LARGE`` / ``ARCHIVE_TOO_LARGE`` / ``ARCHIVE_TOO_MANY_FILES``) objects
    whose declared size, or whose delta result size, is over the limits, so that neither a zlib bomb
    nor a delta bomb is ever expanded; refuses damaged packs (``GIT_FETCH_FAILED``).
    """
    file.seek(0)
    cursor = _PackCursor(file)
    header = cursor.take(12)
    signature, version, count = header[:4], *struct.unpack(">II", header[4:])
    if signature != b"PACK" or version not in (2, 3):
        raise _corrupt_pack("it is not a version 2 or 3 pack file")
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
                raise _corrupt_pack("an object header is too long")
        if kind == _OFS_DELTA:
            byte = cursor.take(1)[0]
            steps = 0
            while byte & 0x80:
                byte = cursor.take(1)[0]
                steps += 1
                if steps > 10:
                    raise _corrupt_pack("a delta offset is too long")
        elif kind == _REF_DELTA:
            cursor.take(oid_length)
        elif kind not in (_OBJ_COMMIT, _OBJ_TREE, _OBJ_BLOB, _OBJ_TAG):
            raise _corrupt_pack(f"it holds an object of unknown type {kind}")
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
        raise _corrupt_pack("data follows the pack checksum")
    return count


def _check_object_size(size: int, limits: GitLimits) -> None:
    if size > limits.max_object_bytes:
        raise ArchiveError(
            f"the repository holds an object of {size} bytes; one file may be at most {limits.max_object_bytes} bytes",
            error_code="ARCHIVE_FILE_TOO_LARGE",
        )


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
            raise _corrupt_pack(f"{sha.decode()} should be a tree")
        try:
            items = list(tree.iteritems())
        except _dulwich_failures() as exc:
            raise _corrupt_pack(f"tree {sha.decode()} cannot be read ({exc})") from exc
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
        raise _corrupt_pack(f"object {sha.decode()} is missing") from None
    except _dulwich_failures() as exc:
        raise _corrupt_pack(f"object {sha.decode()} cannot be read ({exc})") from exc


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
                    raise _corrupt_pack(f"{entry.path!r} has an unknown file mode {entry.mode:o}")
                put(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"))
                for start in range(0, len(data), _CHUNK):
                    put(data[start : start + _CHUNK])
                    if sink.size >= _CHUNK:
                        yield sink.drain()
                if len(data) % 512:
                    put(b"\0" * (512 - len(data) % 512))
                if sink.size >= _CHUNK:
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
    return cast(BinaryIO, io.BufferedReader(_ChunkReader(chunks), buffer_size=_CHUNK))


# --- the whole thing ------------------------------------------------------------------------------


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
    except _dulwich_failures() as exc:
        raise _git_failure(url, exc) from exc
    try:
        commit = _peel_to_commit(pack, wanted, url)
        chunks, warnings = tar_gz_from_pack(pack, commit, limits, deadline=deadline)
        yield GitArchive(commit.id.decode(), wanted.name, chunk_stream(chunks), warnings)
    finally:
        pack.close()


@contextmanager
def open_git_archive(
    url: str, ref: str | None, *, http: HttpClient, deadline: Deadline, limits: GitLimits
) -> Iterator[GitArchive]:
    """Fetch ``ref`` (default: the default branch) of the repository at ``url`` as a tar.gz stream."""
    check_git_url(url, allow_http=http.policy.allow_http)
    if ref is not None:
        check_ref(ref)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
        wanted, object_format = _fetch(url, ref, http, deadline, limits, spool)
        with archive_from_pack(spool, wanted, object_format, url=url, limits=limits, deadline=deadline) as archive:
            yield archive
