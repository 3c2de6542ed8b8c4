"""What every archive format shares: limits, member names, and the scanner that validates members
in archive order, accounts for their bytes and keeps the wanted files."""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol

from attune_packs.errors import ArchiveError
from attune_packs.models import COMPONENT_TYPES

ArchiveFormat = Literal["tar.gz", "zip"]
_MemberKind = Literal["file", "dir", "link", "special"]

_MiB = 2**20
_CHUNK = 64 * 1024
_RATIO_GRACE_BYTES = 1 * _MiB  # the ratio is only judged once more than this has been produced
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
_COMPONENT_DIRS = frozenset(COMPONENT_TYPES)  # one folder per component type, named as the type
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


DEFAULT_LIMITS = ArchiveLimits()


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


class MemberSink(Protocol):
    """Where the scanner puts the members it accepted (a directory on disk, a canonical archive)."""

    def make_dir(self, path: str, name: str) -> None: ...

    def create_file(self, path: str, name: str, *, executable: bool) -> contextlib.AbstractContextManager[BinaryIO]: ...


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
        raise _error("ARCHIVE_UNSAFE_PATH", "the name contains a NUL byte, which can hide its real name", name)
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
            "the name contains a backslash; archives must separate folders with '/' (was it made by a Windows tool?)",
            name,
        )
    if name.startswith("/"):
        raise _error("ARCHIVE_UNSAFE_PATH", "the name is an absolute path; members must be relative to the pack", name)
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        raise _error(
            "ARCHIVE_UNSAFE_PATH",
            "the name starts with a Windows drive letter; members must be relative to the pack",
            name,
        )
    raw_parts = name.split("/")
    if ".." in raw_parts:
        raise _error("ARCHIVE_UNSAFE_PATH", "the name contains '..', which could write outside the pack folder", name)
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
        writer: MemberSink | None,
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
        self.spellings: dict[str, str] = {}  # folded name -> the member's path as first spelt
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
        if not path:
            return path
        self._claim_spelling(path, name)
        path = unicodedata.normalize("NFC", path)
        self._claim(path, name, is_dir=kind == "dir")
        return path

    def _claim_spelling(self, path: str, name: str) -> None:
        """The path and each folder above it must be the only one of that name for a person or a file
        system: names equal after Unicode NFC normalisation and case folding are one name."""
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            spelt = "/".join(parts[:depth])
            first = self.spellings.setdefault(_folded(spelt), spelt)
            if first != spelt:
                raise _error(
                    "ARCHIVE_DUPLICATE_MEMBER",
                    f"{spelt!r} and {first!r} are the same name once Unicode-normalised and case-folded "
                    "(as case-insensitive file systems and people compare them); rename one of them",
                    name,
                )

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
                raise _error("ARCHIVE_DUPLICATE_ENTRY", f"it lies inside {ancestor!r}, which is also a file", name)
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
        if compressed is not None and self.total > _RATIO_GRACE_BYTES and self.total > limits.max_ratio * compressed:
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


def _folded(path: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def _ratio_error(limits: ArchiveLimits, name: str | None) -> ArchiveError:
    return _error(
        "ARCHIVE_TOO_LARGE",
        f"the archive expands to more than {limits.max_ratio:g} times its compressed size (a decompression bomb?)",
        name,
    )
