"""Pack archives for tests and benchmarks: tar.gz / tar / zip bytes from a mapping of files.

A pack is a mapping of member names to contents, written in order::

    tar_gz(pack_files("demo", "1.0.0"), root="demo/")                  # a valid pack under demo/
    tar_gz({"pack/pack.yaml": MANIFEST, "pack/etc": symlink("/etc")})  # a hostile member
    zip_bytes([("pack/a.txt", b"1"), ("pack/a.txt", b"2")])            # pairs keep duplicates

A content is ``str`` (written as UTF-8), ``bytes``, or an ``Entry`` for anything else: ``file(data,
mode=..., pax=...)``, ``directory()``, ``symlink(target)``, ``hardlink(target)``, ``device("char" |
"block" | "fifo")``, or ``stream(reader, size)`` for large members that should not sit in memory.
Names are written exactly as given: ``"../x"``, absolute paths, backslashes, and raw bytes as
surrogate escapes (``"pack/\\udcff.txt"`` is the byte 0xFF) reach the archive unchanged, so the
archive checks can be fed what an attacker would send. Archives are reproducible: mtime 0, owner 0,
gzip without a timestamp or file name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

Kind = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]
ArchiveType = Literal["tar.gz", "tar", "zip"]

TAR_FORMATS = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}
_ZIP_MODES = {
    "file": stat.S_IFREG | 0o644,
    "dir": stat.S_IFDIR | 0o755,
    "symlink": stat.S_IFLNK | 0o777,
    "char": stat.S_IFCHR | 0o644,
    "block": stat.S_IFBLK | 0o644,
    "fifo": stat.S_IFIFO | 0o644,
}
_DEVICE_NUMBERS = {"char": (1, 3), "block": (8, 0), "fifo": (0, 0)}  # /dev/null, /dev/sda


@dataclass(frozen=True)
class Entry:
    """One member that is not just a regular file's text or bytes."""

    kind: Kind = "file"
    data: bytes = b""
    target: str = ""  # what a link points to
    mode: int | None = None  # permission bits (tar) or the Unix mode stored in a zip's external attributes
    pax: Mapping[str, str] = field(default_factory=dict)  # extra PAX headers (tar only)
    reader: BinaryIO | None = None  # a stream of ``size`` bytes instead of ``data`` (tar only)
    size: int | None = None


Content = str | bytes | Entry
Files = Mapping[str, Content] | Iterable[tuple[str, Content]]


def file(data: str | bytes = b"", *, mode: int | None = None, pax: Mapping[str, str] | None = None) -> Entry:
    return Entry("file", data.encode() if isinstance(data, str) else data, mode=mode, pax=dict(pax or {}))


def directory(*, mode: int = 0o755) -> Entry:
    return Entry("dir", mode=mode)


def symlink(target: str) -> Entry:
    return Entry("symlink", target=target)


def hardlink(target: str) -> Entry:
    return Entry("hardlink", target=target)


def device(kind: Literal["char", "block", "fifo"] = "char") -> Entry:
    return Entry(kind)


def stream(reader: BinaryIO, size: int) -> Entry:
    """A regular file read from ``reader`` while the archive is written (for archives of hundreds of MB)."""
    return Entry("file", reader=reader, size=size)


# --- the files of a pack ---------------------------------------------------------------------------


def manifest(
    ref: str = "demo",
    version: str = "1.0.0",
    *,
    description: str | None = "test pack",
    dependencies: str = "",
    with_name: bool = False,
) -> str:
    """A ``pack.yaml``; ``dependencies`` is YAML text appended as is (e.g. ``"dependencies:\\n  - lib\\n"``)."""
    lines = [f"ref: {ref}"] + ([f"name: {ref}"] if with_name else []) + [f'version: "{version}"']
    if description is not None:
        lines.append(f"description: {description}")
    return "\n".join(lines) + "\n" + dependencies


def pack_files(
    ref: str = "demo",
    version: str = "1.0.0",
    *,
    description: str = "test pack",
    dependencies: str = "",
    requirements: str | None = None,
    action: str = "hello",
    extra: Mapping[str, Content] | None = None,
) -> dict[str, Content]:
    """A small valid pack: its manifest, one Python action ``action`` taking ``who``, and ``extra``."""
    files: dict[str, Content] = {
        "pack.yaml": manifest(ref, version, description=description, dependencies=dependencies, with_name=True),
        f"actions/{action}.yaml": f"name: {action}\nrunner_type: python-script\nentry_point: {action}.py\n"
        "parameters:\n  who: {type: string}\n",
        f"actions/{action}.py": "def run(who): return who\n",
    }
    if requirements is not None:
        files["requirements.txt"] = requirements
    files.update(extra or {})
    return files


# --- writing archives ------------------------------------------------------------------------------


def members(files: Files, root: str = "") -> list[tuple[str, Entry]]:
    """``files`` as (name, entry) pairs in order, each name prefixed with ``root``."""
    pairs = files.items() if isinstance(files, Mapping) else files
    return [(root + name, content if isinstance(content, Entry) else file(content)) for name, content in pairs]


def tar_info(name: str, entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = _TAR_TYPES[entry.kind]
    info.mode = entry.mode if entry.mode is not None else (0o755 if entry.kind == "dir" else 0o644)
    info.linkname = entry.target
    if entry.kind == "file":
        info.size = entry.size if entry.reader is not None and entry.size is not None else len(entry.data)
    if entry.kind in _DEVICE_NUMBERS:
        info.devmajor, info.devminor = _DEVICE_NUMBERS[entry.kind]
    info.pax_headers = dict(entry.pax)
    return info


def write_tar(out: BinaryIO, files: Files, *, root: str = "", fmt: str = "pax") -> None:
    """Write an uncompressed tar of ``files`` to ``out`` (a file or a ``gzip.GzipFile``)."""
    with tarfile.open(
        fileobj=out, mode="w", format=TAR_FORMATS[fmt], encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for name, entry in members(files, root):
            info = tar_info(name, entry)
            body = entry.reader if entry.reader is not None else io.BytesIO(entry.data)
            tar.addfile(info, body if info.isreg() else None)


def tar_bytes(files: Files, *, root: str = "", fmt: str = "pax") -> bytes:
    out = io.BytesIO()
    write_tar(out, files, root=root, fmt=fmt)
    return out.getvalue()


def tar_gz(files: Files, *, root: str = "", fmt: str = "pax", level: int = 9) -> bytes:
    out = io.BytesIO()
    with _gzip(out, level) as gz:
        gz.write(tar_bytes(files, root=root, fmt=fmt))
    return out.getvalue()


def write_tar_gz(path: Path, files: Files, *, root: str = "", level: int = 9) -> Path:
    """Stream a tar.gz to ``path`` without holding it in memory (for ``stream`` members)."""
    with path.open("wb") as raw, _gzip(raw, level) as gz:
        write_tar(gz, files, root=root)  # type: ignore[arg-type]  # GzipFile is a binary stream
    return path


def _gzip(out: BinaryIO, level: int) -> gzip.GzipFile:
    """gzip with neither a timestamp nor a file name in its header: the same bytes on every run."""
    return gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0, compresslevel=level)


class _RawNameInfo(zipfile.ZipInfo):
    """A zip entry whose name may hold raw bytes (surrogate escapes), written without the UTF-8 flag."""

    __slots__ = ()

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's own hook
        try:
            return super()._encodeFilenameFlags()  # type: ignore[misc]
        except UnicodeEncodeError:
            return self.filename.encode("utf-8", "surrogateescape"), self.flag_bits


def zip_info(name: str, entry: Entry, compression: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    if entry.kind == "hardlink" or entry.pax or entry.reader is not None:
        raise ValueError(f"a zip cannot hold {name!r} as given (hard links, PAX headers and streams are tar only)")
    if entry.kind == "dir" and not name.endswith("/"):
        name += "/"
    info = _RawNameInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED if entry.kind == "dir" else compression
    if entry.kind != "file" or entry.mode is not None:
        info.create_system = 3  # Unix: the external attributes hold a mode
        mode = _ZIP_MODES[entry.kind]
        if entry.mode is not None:
            mode = entry.mode if stat.S_IFMT(entry.mode) else stat.S_IFMT(mode) | entry.mode
        info.external_attr = mode << 16 | (0x10 if entry.kind == "dir" else 0)
    return info


def zip_bytes(files: Files, *, root: str = "", compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which tests write on purpose
        with zipfile.ZipFile(out, "w", compression) as archive:
            for name, entry in members(files, root):
                data = entry.target.encode("utf-8", "surrogateescape") if entry.kind == "symlink" else entry.data
                archive.writestr(zip_info(name, entry, compression), data)
    return out.getvalue()


def archive_bytes(files: Files, archive_type: ArchiveType = "tar.gz", *, root: str = "") -> bytes:
    if archive_type == "zip":
        return zip_bytes(files, root=root)
    return tar_gz(files, root=root) if archive_type == "tar.gz" else tar_bytes(files, root=root)


def write_pack(
    folder: Path,
    ref: str,
    version: str = "1.0.0",
    files: Files | None = None,
    *,
    archive_type: ArchiveType = "tar.gz",
    root: str | None = None,
    file_name: str | None = None,
) -> Path:
    """Write ``<ref>-<version>.<archive_type>`` (or ``file_name``) holding ``files`` under ``<ref>/``.

    Without ``files``, the pack is ``pack_files(ref, version)``.
    """
    content = pack_files(ref, version) if files is None else files
    path = folder / (file_name or f"{ref}-{version}.{archive_type}")
    path.write_bytes(archive_bytes(content, archive_type, root=f"{ref}/" if root is None else root))
    return path


def stored_archive_key(body: bytes) -> str:
    """Where the download stage stores an archive: under the sha256 of its bytes (readers verify it)."""
    return f"archives/sha256/{hashlib.sha256(body).hexdigest()}.tar.gz"


if TYPE_CHECKING:
    from attune_packs.domain.archive import PackArchive


def in_memory_archive(files: Mapping[str, str | bytes]) -> PackArchive:
    """A pack root as the archive reader hands it on (files already read), for tests of what reads a
    pack's files without an archive around them."""
    from attune_packs.domain.archive import PackArchive

    encoded = {name: data.encode() if isinstance(data, str) else data for name, data in files.items()}
    return PackArchive(
        format="tar.gz",
        root="",
        files=encoded,
        file_list=sorted(encoded),
        total_bytes=0,
        file_count=len(encoded),
        compressed_bytes=0,
    )
