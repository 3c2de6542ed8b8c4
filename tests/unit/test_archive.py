"""Pack archives from untrusted sources (attune_packs.domain.archive).

Every archive is built in memory here; where tarfile or zipfile refuse to write something hostile,
the bytes are patched by hand.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import random
import stat
import struct
import subprocess
import sys
import tarfile
import textwrap
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from attune_packs.domain.archive import (
    ArchiveLimits,
    PackArchive,
    default_want,
    detect_format,
    extract_archive,
    scan_archive,
)
from attune_packs.domain.archive import extract as archive_extract
from attune_packs.errors import ArchiveError

MANIFEST = b"ref: demo\nname: demo\nversion: 1.0.0\n"
NO_RATIO = 1e12  # disables the ratio check where a test is about another limit
MEMBER_CODES = {
    "ARCHIVE_UNSAFE_PATH",
    "ARCHIVE_LINK_FORBIDDEN",
    "ARCHIVE_SPECIAL_FILE",
    "ARCHIVE_DUPLICATE_ENTRY",
    "ARCHIVE_DUPLICATE_MEMBER",
    "ARCHIVE_BAD_FILENAME",
    "ARCHIVE_FILE_TOO_LARGE",
}


# --- building archives in memory -----------------------------------------------------------------


def member(
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
    mode: int = 0o644,
    pax: dict[str, str] | None = None,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if pax:
        info.pax_headers = pax
    return info, data


def directory(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, kind=tarfile.DIRTYPE, mode=0o755)


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def tgz(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    return gzip.compress(tar_bytes(*members, fmt=fmt), mtime=0)


def tgz_pack(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A valid pack under ``pack/`` followed by ``members``."""
    return tgz(member("pack/pack.yaml", MANIFEST), *members, fmt=fmt)


def zinfo(name: str, *, mode: int | None = None, compress_type: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = compress_type
    if mode is not None:
        info.create_system = 3
        info.external_attr = mode << 16
    return info


def zip_bytes(*entries: tuple[str | zipfile.ZipInfo, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    raw = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are written on purpose
        with zipfile.ZipFile(raw, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return raw.getvalue()


def zip_pack(*entries: tuple[str | zipfile.ZipInfo, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    return zip_bytes(("pack/pack.yaml", MANIFEST), *entries, compression=compression)


def patched(data: bytes, old: bytes, new: bytes, *, count: int = 2) -> bytes:
    """Replace bytes the libraries would not write (same length: offsets stay valid)."""
    assert len(old) == len(new)
    assert data.count(old) == count, data.count(old)
    return data.replace(old, new)


_CENTRAL_FIELDS = {
    "flags": (8, "<H"),
    "method": (10, "<H"),
    "crc": (16, "<I"),
    "compress_size": (20, "<I"),
    "file_size": (24, "<I"),
    "header_offset": (42, "<I"),
}


def patch_central_directory(data: bytes, name: str, **fields: int) -> bytes:
    """Overwrite fields of one central-directory entry, as a hostile zip writer would."""
    out = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    count, _, position = struct.unpack("<HII", data[end + 10 : end + 20])
    for _ in range(count):
        assert out[position : position + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack("<HHH", out[position + 28 : position + 34])
        if out[position + 46 : position + 46 + name_length] == name.encode():
            for field, value in fields.items():
                offset, fmt = _CENTRAL_FIELDS[field]
                struct.pack_into(fmt, out, position + offset, value)
            return bytes(out)
        position += 46 + name_length + extra_length + comment_length
    raise AssertionError(f"{name} not in the central directory")


def noise(size: int, seed: int = 1) -> bytes:
    """Incompressible bytes, reproducibly."""
    return random.Random(seed).randbytes(size)


class ReadOnly:
    """A non-seekable stream, like an HTTP or S3 body: it only has ``read``."""

    def __init__(self, data: bytes, chunk: int | None = None) -> None:
        self._buffer = io.BytesIO(data)
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        if self._chunk is not None and (size < 0 or size > self._chunk):
            size = self._chunk
        return self._buffer.read(size)


def refused(data: bytes, limits: ArchiveLimits | None = None) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        scan_archive(io.BytesIO(data), limits=limits or ArchiveLimits())
    return caught.value


def listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


# --- the hostile archive suite (SECURITY.md catalogue items 1-8) ----------------------------------

Build = Callable[[], bytes]


def _directory_with_data(name: str, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    """A directory header that declares the size of ``data`` (tarfile reads the next header right after
    it; a reader that skips the declared size would read ``data`` instead)."""
    info, _ = directory(name)
    info.size = len(data)
    return [(info, b"")]


def _lying_zip() -> bytes:
    data = zip_pack(("pack/big.bin", bytes(100_000)))
    return patch_central_directory(data, "pack/big.bin", file_size=10)


def _overlapping_zip() -> bytes:
    data = zip_pack(("pack/a.txt", b"a" * 100), ("pack/b.txt", b"b" * 100))
    return patch_central_directory(data, "pack/a.txt", compress_size=5000)


def _shared_data_zip() -> bytes:
    data = zip_pack(("pack/a.txt", b"a" * 100), ("pack/b.txt", b"b" * 100))
    return patch_central_directory(data, "pack/b.txt", header_offset=0)


def _zip_unicode_path_mismatch() -> bytes:
    info = zinfo("pack/readme.txt")
    other = b"../../evil.txt"
    info.extra = struct.pack("<HHBI", 0x7075, 5 + len(other), 1, zlib.crc32(b"pack/readme.txt")) + other
    return zip_pack((info, b"hello"))


def _truncated_tgz() -> bytes:
    data = tgz_pack(member("pack/actions/run.py", noise(50_000)))
    return data[: len(data) // 2]


def _damaged_middle_header() -> bytes:
    raw = bytearray(
        tar_bytes(
            member("pack/pack.yaml", MANIFEST),
            member("pack/a.txt", b"a"),
            member("pack/b.txt", b"b"),
            fmt=tarfile.USTAR_FORMAT,
        )
    )
    second = raw.index(b"pack/a.txt")
    raw[second + 5] ^= 0xFF  # the header checksum no longer matches
    return gzip.compress(bytes(raw))


def _garbage_after_gzip() -> bytes:
    return tgz_pack() + b"this is not gzip data"


def _junk_after_tar_end() -> bytes:
    return gzip.compress(tar_bytes(member("pack/pack.yaml", MANIFEST)) + b"junk" * 100)


def _bad_gzip_crc() -> bytes:
    data = bytearray(tgz_pack(member("pack/a.txt", b"hello")))
    data[-8] ^= 0xFF  # the CRC-32 in the gzip trailer
    return bytes(data)


HOSTILE = [
    # 1. unsafe names
    ("tar-dotdot", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack/../../evil.sh", b"x")), None),
    ("tar-dotdot-inside", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack/a/../b.txt", b"x")), None),
    ("tar-absolute", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("/etc/cron.d/evil", b"x")), None),
    ("tar-backslash", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack\\..\\evil.txt", b"x")), None),
    ("tar-drive-letter", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("C:evil.txt", b"x")), None),
    (
        "tar-nul",
        "ARCHIVE_UNSAFE_PATH",
        lambda: tgz_pack(member("pack/x", b"x", pax={"path": "pack/a.txt\x00.yaml"})),
        None,
    ),
    ("tar-overlong", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack/" + "a" * 400, b"x")), None),
    ("tar-long-component", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack/" + "c" * 256, b"x")), None),
    ("tar-too-deep", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack/" + "d/" * 32 + "f", b"x")), None),
    ("tar-file-ending-in-slash", "ARCHIVE_UNSAFE_PATH", lambda: tgz_pack(member("pack/a/.", b"x")), None),
    ("zip-dotdot", "ARCHIVE_UNSAFE_PATH", lambda: zip_pack(("../evil.sh", b"x")), None),
    ("zip-absolute", "ARCHIVE_UNSAFE_PATH", lambda: zip_pack(("/tmp/evil", b"x")), None),
    ("zip-backslash", "ARCHIVE_UNSAFE_PATH", lambda: zip_pack(("pack\\..\\..\\evil", b"x")), None),
    ("zip-drive-letter", "ARCHIVE_UNSAFE_PATH", lambda: zip_pack(("c:/windows/evil", b"x")), None),
    (
        "zip-nul",
        "ARCHIVE_UNSAFE_PATH",
        lambda: patched(zip_pack(("pack/aQb.yaml", b"x"), compression=zipfile.ZIP_STORED), b"pack/aQb", b"pack/a\0b"),
        None,
    ),
    ("zip-overlong", "ARCHIVE_UNSAFE_PATH", lambda: zip_pack(("pack/" + "b" * 400, b"x")), None),
    ("zip-too-deep", "ARCHIVE_UNSAFE_PATH", lambda: zip_pack(("pack/" + "d/" * 32 + "f", b"x")), None),
    # 2. links
    (
        "tar-symlink-inside",
        "ARCHIVE_LINK_FORBIDDEN",
        lambda: tgz_pack(member("pack/link", kind=tarfile.SYMTYPE, linkname="pack.yaml")),
        None,
    ),
    (
        "tar-symlink-outside",
        "ARCHIVE_LINK_FORBIDDEN",
        lambda: tgz_pack(member("pack/link", kind=tarfile.SYMTYPE, linkname="../../../etc/passwd")),
        None,
    ),
    (
        "tar-symlink-absolute",
        "ARCHIVE_LINK_FORBIDDEN",
        lambda: tgz_pack(member("pack/link", kind=tarfile.SYMTYPE, linkname="/etc/shadow")),
        None,
    ),
    (
        "tar-hardlink",
        "ARCHIVE_LINK_FORBIDDEN",
        lambda: tgz_pack(member("pack/hard", kind=tarfile.LNKTYPE, linkname="pack/pack.yaml")),
        None,
    ),
    (
        "tar-hardlink-outside",
        "ARCHIVE_LINK_FORBIDDEN",
        lambda: tgz_pack(member("pack/hard", kind=tarfile.LNKTYPE, linkname="/etc/passwd")),
        None,
    ),
    (
        "zip-symlink",
        "ARCHIVE_LINK_FORBIDDEN",
        lambda: zip_pack((zinfo("pack/link", mode=stat.S_IFLNK | 0o777), b"../../etc/passwd")),
        None,
    ),
    # 3. special files
    (
        "tar-char-device",
        "ARCHIVE_SPECIAL_FILE",
        lambda: tgz_pack(member("pack/tty", kind=tarfile.CHRTYPE)),
        None,
    ),
    (
        "tar-block-device",
        "ARCHIVE_SPECIAL_FILE",
        lambda: tgz_pack(member("pack/sda", kind=tarfile.BLKTYPE)),
        None,
    ),
    ("tar-fifo", "ARCHIVE_SPECIAL_FILE", lambda: tgz_pack(member("pack/pipe", kind=tarfile.FIFOTYPE)), None),
    (
        "tar-gnu-sparse",
        "ARCHIVE_SPECIAL_FILE",
        lambda: tgz_pack(member("pack/sparse", kind=tarfile.GNUTYPE_SPARSE), fmt=tarfile.GNU_FORMAT),
        None,
    ),
    (
        "tar-contiguous",
        "ARCHIVE_SPECIAL_FILE",
        lambda: tgz_pack(member("pack/c", kind=tarfile.CONTTYPE)),
        None,
    ),
    ("tar-volume-label", "ARCHIVE_SPECIAL_FILE", lambda: tgz_pack(member("pack/v", kind=b"V")), None),
    (
        "zip-char-device",
        "ARCHIVE_SPECIAL_FILE",
        lambda: zip_pack((zinfo("pack/tty", mode=stat.S_IFCHR), b"")),
        None,
    ),
    (
        "zip-block-device",
        "ARCHIVE_SPECIAL_FILE",
        lambda: zip_pack((zinfo("pack/sd", mode=stat.S_IFBLK), b"")),
        None,
    ),
    (
        "zip-fifo",
        "ARCHIVE_SPECIAL_FILE",
        lambda: zip_pack((zinfo("pack/pipe", mode=stat.S_IFIFO), b"")),
        None,
    ),
    (
        "zip-socket",
        "ARCHIVE_SPECIAL_FILE",
        lambda: zip_pack((zinfo("pack/sock", mode=stat.S_IFSOCK), b"")),
        None,
    ),
    # 4. sizes
    (
        "tar-bomb-total",
        "ARCHIVE_TOO_LARGE",
        lambda: tgz_pack(*(member(f"pack/blob{i}.bin", noise(40_000, i)) for i in range(5))),
        ArchiveLimits(max_total_bytes=100_000, max_ratio=NO_RATIO),
    ),
    (
        "zip-bomb-total",
        "ARCHIVE_TOO_LARGE",
        lambda: zip_pack(*((f"pack/blob{i}.bin", noise(40_000, i)) for i in range(5))),
        ArchiveLimits(max_total_bytes=100_000, max_ratio=NO_RATIO),
    ),
    (
        "tar-bomb-ratio",
        "ARCHIVE_TOO_LARGE",
        lambda: tgz_pack(member("pack/zeros.bin", bytes(20 * 2**20))),
        None,
    ),
    ("zip-bomb-ratio", "ARCHIVE_TOO_LARGE", lambda: zip_pack(("pack/zeros.bin", bytes(20 * 2**20))), None),
    ("zip-header-understates-size", "ARCHIVE_TOO_LARGE", _lying_zip, None),
    (
        "tar-huge-pax-header",
        "ARCHIVE_TOO_LARGE",
        lambda: tgz_pack(member("pack/a.txt", b"a", pax={"comment": noise(1_200_000).hex()})),
        None,
    ),
    (
        "tar-too-many-files",
        "ARCHIVE_TOO_MANY_FILES",
        lambda: tgz_pack(*(member(f"pack/f{i}.txt", b"x") for i in range(10))),
        ArchiveLimits(max_files=5),
    ),
    (
        "zip-too-many-files",
        "ARCHIVE_TOO_MANY_FILES",
        lambda: zip_pack(*((f"pack/f{i}.txt", b"x") for i in range(10))),
        ArchiveLimits(max_files=5),
    ),
    (
        "tar-huge-member",
        "ARCHIVE_FILE_TOO_LARGE",
        lambda: tgz_pack(member("pack/big.bin", noise(5000))),
        ArchiveLimits(max_file_bytes=1000),
    ),
    (
        "zip-huge-member",
        "ARCHIVE_FILE_TOO_LARGE",
        lambda: zip_pack(("pack/big.bin", noise(5000))),
        ArchiveLimits(max_file_bytes=1000),
    ),
    (
        "tar-huge-manifest",
        "ARCHIVE_FILE_TOO_LARGE",
        lambda: tgz(member("pack/pack.yaml", noise(2**20 + 1))),
        None,
    ),
    # 5. duplicates
    (
        "tar-duplicate",
        "ARCHIVE_DUPLICATE_ENTRY",
        lambda: tgz_pack(member("pack/pack.yaml", b"ref: evil\n")),
        None,
    ),
    (
        "tar-duplicate-after-normalising",
        "ARCHIVE_DUPLICATE_ENTRY",
        lambda: tgz_pack(member("pack/a.txt", b"1"), member("./pack//a.txt", b"2")),
        None,
    ),
    (
        "tar-file-and-directory",
        "ARCHIVE_DUPLICATE_ENTRY",
        lambda: tgz_pack(member("pack/a", b"1"), directory("pack/a")),
        None,
    ),
    (
        "tar-file-used-as-directory",
        "ARCHIVE_DUPLICATE_ENTRY",
        lambda: tgz_pack(member("pack/a", b"1"), member("pack/a/b.txt", b"2")),
        None,
    ),
    ("zip-duplicate", "ARCHIVE_DUPLICATE_ENTRY", lambda: zip_pack(("pack/pack.yaml", b"ref: evil\n")), None),
    # 6. names that are not UTF-8 or contain control characters
    (
        "tar-not-utf8",
        "ARCHIVE_BAD_FILENAME",
        lambda: tgz_pack(member("pack/caf\udce9.yaml", b"x"), fmt=tarfile.GNU_FORMAT),
        None,
    ),
    (
        "zip-not-utf8",
        "ARCHIVE_BAD_FILENAME",
        lambda: patched(
            zip_pack(("pack/Q.yaml", b"x"), compression=zipfile.ZIP_STORED), b"pack/Q.yaml", b"pack/\xe9.yaml"
        ),
        None,
    ),
    (
        "zip-utf8-flag-but-invalid",
        "ARCHIVE_BAD_FILENAME",
        lambda: patched(
            zip_pack(("pack/\u00e9.yaml", b"x"), compression=zipfile.ZIP_STORED), b"/\xc3\xa9.", b"/\xff\xfe."
        ),
        None,
    ),
    ("zip-unicode-path-field-differs", "ARCHIVE_BAD_FILENAME", _zip_unicode_path_mismatch, None),
    ("tar-newline", "ARCHIVE_BAD_FILENAME", lambda: tgz_pack(member("pack/a\nb.yaml", b"x")), None),
    ("tar-escape-code", "ARCHIVE_BAD_FILENAME", lambda: tgz_pack(member("pack/\x1b[31mred.txt", b"x")), None),
    ("zip-control-char", "ARCHIVE_BAD_FILENAME", lambda: zip_pack(("pack/bell\x07.txt", b"x")), None),
    ("zip-c1-control-char", "ARCHIVE_BAD_FILENAME", lambda: zip_pack(("pack/x\u009b.txt", b"x")), None),
    # 7. corrupt data and formats that are not ours
    ("tar-truncated", "ARCHIVE_CORRUPT", _truncated_tgz, None),
    ("tar-damaged-middle-header", "ARCHIVE_CORRUPT", _damaged_middle_header, None),
    ("tar-junk-after-end", "ARCHIVE_CORRUPT", _junk_after_tar_end, None),
    ("gzip-garbage-after-end", "ARCHIVE_CORRUPT", _garbage_after_gzip, None),
    ("gzip-bad-crc", "ARCHIVE_CORRUPT", _bad_gzip_crc, None),
    ("gzip-of-html", "ARCHIVE_CORRUPT", lambda: gzip.compress(b"<html><body>Not Found</body></html>"), None),
    ("gzip-magic-then-random", "ARCHIVE_CORRUPT", lambda: b"\x1f\x8b" + noise(4000), None),
    ("zip-magic-then-random", "ARCHIVE_CORRUPT", lambda: b"PK\x03\x04" + noise(4000), None),
    (
        "zip-truncated",
        "ARCHIVE_CORRUPT",
        lambda: zip_pack(("pack/a.bin", noise(20_000)))[:-200],
        None,
    ),
    (
        "zip-bad-crc",
        "ARCHIVE_CORRUPT",
        lambda: patch_central_directory(zip_pack(("pack/a.txt", b"hello")), "pack/a.txt", crc=1234),
        None,
    ),
    ("zip-overlapping-members", "ARCHIVE_CORRUPT", _overlapping_zip, None),
    ("zip-members-share-data", "ARCHIVE_CORRUPT", _shared_data_zip, None),
    ("random-bytes", "ARCHIVE_UNSUPPORTED_FORMAT", lambda: b"\x00\x13" + noise(4000), None),
    (
        "html-error-page",
        "ARCHIVE_UNSUPPORTED_FORMAT",
        lambda: b"\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n",
        None,
    ),
    ("plain-tar", "ARCHIVE_UNSUPPORTED_FORMAT", lambda: tar_bytes(member("pack/pack.yaml", MANIFEST)), None),
    (
        "bzip2-tar",
        "ARCHIVE_UNSUPPORTED_FORMAT",
        lambda: bz2.compress(tar_bytes(member("pack/pack.yaml", MANIFEST))),
        None,
    ),
    ("empty-file", "ARCHIVE_UNSUPPORTED_FORMAT", lambda: b"", None),
    (
        "zip-bzip2-member",
        "ARCHIVE_UNSUPPORTED_FORMAT",
        lambda: zip_pack((zinfo("pack/a.txt", compress_type=zipfile.ZIP_BZIP2), b"hello")),
        None,
    ),
    (
        "zip-encrypted-member",
        "ARCHIVE_UNSUPPORTED_FORMAT",
        lambda: patch_central_directory(zip_pack(("pack/a.txt", b"hello")), "pack/a.txt", flags=0x1),
        None,
    ),
    # 28. names equal for a person or a file system (Unicode NFC/NFD, case)
    (
        "tar-manifest-twice-by-case",
        "ARCHIVE_DUPLICATE_MEMBER",
        lambda: tgz_pack(member("pack/Pack.yaml", MANIFEST)),
        None,
    ),
    (
        "tar-nfc-and-nfd",
        "ARCHIVE_DUPLICATE_MEMBER",
        lambda: tgz_pack(member("pack/caf\u00e9.yaml", b"a: 1\n"), member("pack/cafe\u0301.yaml", b"a: 2\n")),
        None,
    ),
    (
        "tar-actions-by-case",
        "ARCHIVE_DUPLICATE_MEMBER",
        lambda: tgz_pack(member("pack/actions/Run.yaml", b"a"), member("pack/actions/run.yaml", b"b")),
        None,
    ),
    (
        "tar-folders-by-case",
        "ARCHIVE_DUPLICATE_MEMBER",
        lambda: tgz_pack(member("pack/Actions/a.yaml", b"a"), member("pack/actions/b.yaml", b"b")),
        None,
    ),
    (
        "zip-nfd-folder-and-nfc-file",
        "ARCHIVE_DUPLICATE_MEMBER",
        lambda: zip_pack(("pack/re\u0301sume\u0301/a.txt", b"a"), ("pack/r\u00e9sum\u00e9", b"b")),
        None,
    ),
    (
        "zip-manifest-twice-by-case",
        "ARCHIVE_DUPLICATE_MEMBER",
        lambda: zip_pack(("pack/PACK.YAML", MANIFEST)),
        None,
    ),
    # 27. entries two readers see differently
    (
        "zip-folder-flag-carrying-data",
        "ARCHIVE_CORRUPT",
        lambda: zip_pack((zinfo("pack/requirements.txt", mode=stat.S_IFDIR | 0o755), b"-e git+https://x/y\n")),
        None,
    ),
    (
        "tar-folder-carrying-data",
        "ARCHIVE_CORRUPT",
        lambda: tgz_pack(*_directory_with_data("pack/requirements.txt", b"--index-url https://evil/\n")),
        None,
    ),
    # 8. no pack root, or several
    ("tar-no-manifest", "PACK_MANIFEST_MISSING", lambda: tgz(member("pack/README.md", b"hi")), None),
    ("tar-manifest-too-deep", "PACK_MANIFEST_MISSING", lambda: tgz(member("a/b/pack.yaml", MANIFEST)), None),
    ("tar-manifest-is-directory", "PACK_MANIFEST_MISSING", lambda: tgz(directory("pack.yaml")), None),
    ("tar-empty", "PACK_MANIFEST_MISSING", lambda: tgz(), None),
    ("gzip-of-nothing", "PACK_MANIFEST_MISSING", lambda: gzip.compress(b""), None),
    ("zip-no-manifest", "PACK_MANIFEST_MISSING", lambda: zip_bytes(("README.md", b"hi")), None),
    ("zip-empty", "PACK_MANIFEST_MISSING", lambda: zip_bytes(), None),
    (
        "tar-root-and-pack-dir",
        "PACK_ROOT_AMBIGUOUS",
        lambda: tgz(member("pack.yaml", MANIFEST), member("pack/pack.yaml", MANIFEST)),
        None,
    ),
    (
        "tar-two-folders",
        "PACK_ROOT_AMBIGUOUS",
        lambda: tgz(member("one/pack.yaml", MANIFEST), member("two/pack.yaml", MANIFEST)),
        None,
    ),
    (
        "zip-two-folders",
        "PACK_ROOT_AMBIGUOUS",
        lambda: zip_bytes(("one/pack.yaml", MANIFEST), ("two/pack.yaml", MANIFEST)),
        None,
    ),
]


def _hostile_params() -> list[object]:
    return [pytest.param(build, code, limits, id=name) for name, code, build, limits in HOSTILE]


@pytest.mark.parametrize(("build", "code", "limits"), _hostile_params())
def test_hostile_archive_is_refused(build: Build, code: str, limits: ArchiveLimits | None) -> None:
    error = refused(build(), limits)

    assert error.error_code == code, error.message
    assert error.message
    assert not error.retriable
    if code in MEMBER_CODES:
        assert error.message.startswith("archive member ")
        assert error.details["member"]


@pytest.mark.parametrize(("build", "code", "limits"), _hostile_params())
def test_hostile_archive_extracts_nothing(
    build: Build, code: str, limits: ArchiveLimits | None, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()

    with pytest.raises(ArchiveError) as caught:
        extract_archive(io.BytesIO(build()), dest, limits=limits or ArchiveLimits())

    assert caught.value.error_code == code
    assert list(dest.iterdir()) == []
    assert listing(tmp_path) == ["dest"]


@pytest.mark.parametrize(("build", "code", "limits"), _hostile_params())
def test_hostile_archive_is_refused_from_a_non_seekable_stream(
    build: Build, code: str, limits: ArchiveLimits | None
) -> None:
    with pytest.raises(ArchiveError) as caught:
        scan_archive(ReadOnly(build(), chunk=7000), limits=limits or ArchiveLimits())  # type: ignore[arg-type]

    assert caught.value.error_code == code


def test_the_hostile_suite_covers_every_catalogue_code() -> None:
    assert {code for _, code, _, _ in HOSTILE} == {
        "ARCHIVE_UNSAFE_PATH",
        "ARCHIVE_LINK_FORBIDDEN",
        "ARCHIVE_SPECIAL_FILE",
        "ARCHIVE_TOO_LARGE",
        "ARCHIVE_TOO_MANY_FILES",
        "ARCHIVE_FILE_TOO_LARGE",
        "ARCHIVE_DUPLICATE_ENTRY",
        "ARCHIVE_DUPLICATE_MEMBER",
        "ARCHIVE_BAD_FILENAME",
        "ARCHIVE_CORRUPT",
        "ARCHIVE_UNSUPPORTED_FORMAT",
        "PACK_MANIFEST_MISSING",
        "PACK_ROOT_AMBIGUOUS",
    }


# --- messages ------------------------------------------------------------------------------------


def test_message_shows_control_characters_escaped() -> None:
    error = refused(tgz_pack(member("pack/\x1b[2Jclear.txt", b"x")))

    assert "\x1b" not in error.message
    assert "'pack/\\x1b[2Jclear.txt'" in error.message
    assert "control characters" in error.message
    assert error.details == {"member": "'pack/\\x1b[2Jclear.txt'"}


def test_message_names_the_member_and_the_problem() -> None:
    error = refused(tgz_pack(member("pack/../../etc/passwd", b"x")))

    assert error.message.startswith("archive member 'pack/../../etc/passwd': ")
    assert "'..'" in error.message
    assert error.details == {"member": "pack/../../etc/passwd"}
    assert error.to_dict()["error_code"] == "ARCHIVE_UNSAFE_PATH"


def test_link_message_shows_the_target() -> None:
    error = refused(tgz_pack(member("pack/link", kind=tarfile.SYMTYPE, linkname="../../secret")))

    assert "'../../secret'" in error.message


def test_huge_manifest_message_names_the_path() -> None:
    error = refused(zip_pack(("pack/actions/big.yaml", noise(2**20 + 1))))

    assert error.error_code == "ARCHIVE_FILE_TOO_LARGE"
    assert "'actions/big.yaml'" in error.message


def test_overlong_name_is_shortened_in_the_message() -> None:
    error = refused(tgz_pack(member("pack/" + "x" * 5000, b"x")))

    assert error.error_code == "ARCHIVE_UNSAFE_PATH"
    assert "5005 characters" in error.message
    assert len(error.message) < 400


# --- format detection and wanted files -----------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x1f\x8b\x08\x00", "tar.gz"),
        (b"PK\x03\x04\x14\x00", "zip"),
        (b"PK\x05\x06\x00\x00", "zip"),
    ],
)
def test_detect_format_by_magic_bytes(head: bytes, expected: str) -> None:
    assert detect_format(head) == expected


@pytest.mark.parametrize(
    ("head", "hint"),
    [
        (b"", "empty"),
        (b"  <html>", "HTML"),
        (b"BZh91AY&SY", "bzip2"),
        (b"pack.yaml\x00\x00\x00", "starts with"),
        (b"PK\x07\x08", "starts with"),
        (b"\x1f", "starts with"),
    ],
)
def test_detect_format_refuses_anything_else(head: bytes, hint: str) -> None:
    with pytest.raises(ArchiveError) as caught:
        detect_format(head)

    assert caught.value.error_code == "ARCHIVE_UNSUPPORTED_FORMAT"
    assert hint in caught.value.message


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("pack.yaml", True),
        ("requirements.txt", True),
        ("requirements-tests.txt", True),
        ("package.json", True),
        ("package-lock.json", True),
        ("npm-shrinkwrap.json", True),
        ("config.schema.yaml", True),
        ("actions/run.yaml", True),
        ("actions/workflows/deploy.yaml", True),
        ("sensors/watch.yml", True),
        ("triggers/t.json", True),
        ("rules/r.yaml", True),
        ("workflows/w.yaml", True),
        ("policies/p.yaml", True),
        ("runtimes/r.yaml", True),
        ("permission_sets/admin.yaml", True),
        ("queues/q.yaml", True),
        ("actions/run.py", False),
        ("README.md", False),
        ("docs/pack.yaml", False),
        ("other/actions/x.yaml", False),
        ("actions", False),
        ("tests/requirements.txt", False),
    ],
)
def test_default_want(path: str, wanted: bool) -> None:
    assert default_want(path) is wanted


# --- happy paths ---------------------------------------------------------------------------------

PACK_FILES: dict[str, bytes] = {
    "pack.yaml": MANIFEST,
    "requirements.txt": b"requests==2.32.3\n",
    "actions/run.yaml": b"name: run\n",
    "actions/run.py": b"print('hi')\n",
    "actions/workflows/deploy.yaml": b"version: 1.0\n",
    "sensors/watch.yml": b"name: watch\n",
    "README.md": b"# demo\n",
}


def pack_members(prefix: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    members = [directory(prefix.rstrip("/"))] if prefix not in ("", "./") else []
    return members + [member(prefix + path, data) for path, data in PACK_FILES.items()]


def pack_zip(prefix: str) -> bytes:
    return zip_bytes(*((prefix + path, data) for path, data in PACK_FILES.items()))


EXPECTED_WANTED = {path: data for path, data in PACK_FILES.items() if path not in ("actions/run.py", "README.md")}


@pytest.mark.parametrize(
    ("data", "root"),
    [
        pytest.param(lambda: tgz(*pack_members("")), "", id="tar-top-level"),
        pytest.param(lambda: tgz(*pack_members("demo-1.2.3/")), "demo-1.2.3/", id="tar-single-folder"),
        pytest.param(lambda: tgz(*pack_members("pack/")), "pack/", id="tar-pack-folder"),
        pytest.param(
            lambda: tgz(member("LICENSE", b"MIT"), *pack_members("pack/")),
            "pack/",
            id="tar-pack-folder-with-extras",
        ),
        pytest.param(lambda: tgz(directory("."), *pack_members("./")), "", id="tar-dot-slash"),
        pytest.param(lambda: pack_zip(""), "", id="zip-top-level"),
        pytest.param(lambda: pack_zip("demo-main/"), "demo-main/", id="zip-single-folder"),
        pytest.param(lambda: pack_zip("pack/"), "pack/", id="zip-pack-folder"),
    ],
)
def test_scan_finds_the_pack_root(data: Callable[[], bytes], root: str) -> None:
    raw = data()
    archive = scan_archive(io.BytesIO(raw))

    assert archive.root == root
    assert archive.file_list == sorted(PACK_FILES)
    assert archive.files == EXPECTED_WANTED
    assert archive.compressed_bytes == len(raw)
    assert archive.total_bytes >= sum(len(content) for content in PACK_FILES.values())


def test_scan_reports_format_counts_and_sizes() -> None:
    raw = tgz(directory("demo"), member("demo/pack.yaml", MANIFEST), member("demo/a.txt", b"12345"))

    archive = scan_archive(io.BytesIO(raw))

    assert archive == PackArchive(
        format="tar.gz",
        root="demo/",
        files={"pack.yaml": MANIFEST},
        file_list=["a.txt", "pack.yaml"],
        total_bytes=len(MANIFEST) + 5,
        file_count=3,
        compressed_bytes=len(raw),
    )
    assert scan_archive(io.BytesIO(pack_zip(""))).format == "zip"


def test_want_filters_and_rekeys_relative_to_the_root() -> None:
    raw = tgz(*pack_members("demo/"), member("demo/actions/run.sh", b"#!/bin/sh\n"))
    seen: list[str] = []

    def want(path: str) -> bool:
        seen.append(path)
        return path.endswith(".sh") or path == "README.md"

    archive = scan_archive(io.BytesIO(raw), want=want)

    assert archive.files == {"README.md": b"# demo\n", "actions/run.sh": b"#!/bin/sh\n"}
    assert "actions/run.sh" in seen  # asked relative to the would-be root


def test_files_outside_the_root_are_validated_but_not_returned() -> None:
    raw = tgz(member("LICENSE", b"MIT"), member("docs/pack.txt", b"x"), *pack_members("pack/"))

    archive = scan_archive(io.BytesIO(raw), want=lambda path: True)

    assert archive.root == "pack/"
    assert "LICENSE" not in archive.files and "LICENSE" not in archive.file_list
    assert archive.file_list == sorted(PACK_FILES)
    assert archive.file_count == 1 + 1 + 1 + len(PACK_FILES)


def test_big_file_wanted_only_under_another_root_is_not_an_error() -> None:
    # Relative to "docs/", this would be "actions/big.json": wanted, and too big to keep.
    raw = tgz(member("pack.yaml", MANIFEST), member("docs/actions/big.json", noise(2**20 + 10)))

    archive = scan_archive(io.BytesIO(raw))

    assert archive.root == ""
    assert "docs/actions/big.json" in archive.file_list
    assert archive.files == {"pack.yaml": MANIFEST}


def test_directories_may_repeat() -> None:
    raw = tgz(
        directory("pack"),
        member("pack/actions/a.yaml", b"a: 1\n"),
        directory("pack/actions"),
        directory("pack/actions/"),
        member("pack/pack.yaml", MANIFEST),
    )

    archive = scan_archive(io.BytesIO(raw))

    assert archive.file_list == ["actions/a.yaml", "pack.yaml"]
    assert archive.file_count == 5


@pytest.mark.parametrize("build", [lambda: tgz(*pack_members("demo/")), lambda: pack_zip("demo/")], ids=["tar", "zip"])
def test_non_seekable_stream(build: Callable[[], bytes]) -> None:
    raw = build()

    archive = scan_archive(ReadOnly(raw, chunk=1000))  # type: ignore[arg-type]

    assert archive.root == "demo/"
    assert archive.files == EXPECTED_WANTED
    assert archive.compressed_bytes == len(raw)


def test_non_seekable_zip_larger_than_the_limit_is_refused_while_spooling() -> None:
    raw = zip_pack(("pack/blob.bin", noise(50_000)))

    with pytest.raises(ArchiveError) as caught:
        scan_archive(ReadOnly(raw), limits=ArchiveLimits(max_total_bytes=20_000))  # type: ignore[arg-type]

    assert caught.value.error_code == "ARCHIVE_TOO_LARGE"


@pytest.mark.parametrize("build", [lambda: tgz(*pack_members("")), lambda: pack_zip("")], ids=["tar", "zip"])
def test_stream_is_read_from_its_current_position(build: Callable[[], bytes]) -> None:
    prefix = b"ignored header bytes"
    stream = io.BytesIO(prefix + build())
    stream.seek(len(prefix))

    archive = scan_archive(stream)

    assert archive.files == EXPECTED_WANTED


def test_github_style_tarball_with_a_pax_global_header() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "0" * 40}) as tar:
        for info, data in pack_members("owner-demo-0123abc/"):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)

    archive = scan_archive(io.BytesIO(gzip.compress(raw.getvalue())))

    assert archive.root == "owner-demo-0123abc/"
    assert archive.files == EXPECTED_WANTED


def test_kept_files_are_capped_together() -> None:
    raw = tgz_pack(*(member(f"pack/actions/a{i}.json", noise(1000, i)) for i in range(5)))

    error = refused(raw, ArchiveLimits(max_kept_total_bytes=3000))

    assert error.error_code == "ARCHIVE_TOO_LARGE"
    assert "metadata files" in error.message


def test_multi_member_gzip_and_zero_padding_are_accepted() -> None:
    raw = tar_bytes(*pack_members("pack/"))
    data = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + bytes(100)

    assert scan_archive(io.BytesIO(data)).files == EXPECTED_WANTED


def test_zip_without_utf8_flag_but_utf8_name_is_accepted() -> None:
    raw = patched(zip_pack(("pack/QQ.txt", b"x"), compression=zipfile.ZIP_STORED), b"/QQ.", "/\u00e9.".encode())

    assert "\u00e9.txt" in scan_archive(io.BytesIO(raw)).file_list


def test_utf8_names_are_accepted() -> None:
    raw = tgz_pack(member("pack/docs/caf\u00e9-\u65e5\u672c.md", b"x"))

    assert "docs/caf\u00e9-\u65e5\u672c.md" in scan_archive(io.BytesIO(raw)).file_list


def test_names_are_reported_and_extracted_in_nfc(tmp_path: Path) -> None:
    raw = tgz_pack(member("pack/docs/cafe\u0301.md", b"x"), directory("pack/re\u0301sume\u0301/"))

    assert scan_archive(io.BytesIO(raw)).file_list == ["docs/caf\u00e9.md", "pack.yaml"]
    extract_archive(io.BytesIO(raw), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["docs", "pack.yaml", "r\u00e9sum\u00e9"]
    assert os.listdir(tmp_path / "docs") == ["caf\u00e9.md"]


def test_names_differing_only_in_case_are_one_name_but_exact_duplicates_keep_their_code() -> None:
    by_case = refused(tgz_pack(member("pack/README.md", b"a"), member("pack/readme.md", b"b")))
    exact = refused(tgz_pack(member("pack/README.md", b"a"), member("pack/README.md", b"b")))

    assert (by_case.error_code, exact.error_code) == ("ARCHIVE_DUPLICATE_MEMBER", "ARCHIVE_DUPLICATE_ENTRY")
    assert "'pack/readme.md' and 'pack/README.md'" in by_case.message


def test_errors_from_the_callers_stream_pass_through_unchanged() -> None:
    class Failing(ReadOnly):
        def read(self, size: int = -1) -> bytes:
            if self._buffer.tell() > 2000:
                raise ConnectionResetError("peer went away")
            return super().read(min(size, 500) if size >= 0 else 500)

    with pytest.raises(ConnectionResetError):
        scan_archive(Failing(tgz_pack(member("pack/blob.bin", noise(20_000)))))  # type: ignore[arg-type]


# --- extraction ----------------------------------------------------------------------------------


def test_extract_writes_exactly_the_pack_root(tmp_path: Path) -> None:
    raw = tgz(member("LICENSE", b"MIT"), directory("pack/empty"), *pack_members("pack/"))

    archive = extract_archive(io.BytesIO(raw), tmp_path)

    assert archive.root == "pack/"
    assert listing(tmp_path) == sorted(
        ["README.md", "actions", "actions/run.py", "actions/run.yaml", "actions/workflows"]
        + ["actions/workflows/deploy.yaml", "empty", "pack.yaml", "requirements.txt", "sensors"]
        + ["sensors/watch.yml"]
    )
    for path, content in PACK_FILES.items():
        assert (tmp_path / path).read_bytes() == content
    assert archive.files == EXPECTED_WANTED


@pytest.mark.parametrize("build", [lambda: tgz(*pack_members("")), lambda: pack_zip("")], ids=["tar", "zip"])
def test_extract_top_level_root(build: Callable[[], bytes], tmp_path: Path) -> None:
    extract_archive(ReadOnly(build()), tmp_path)  # type: ignore[arg-type]

    assert {path for path in listing(tmp_path) if (tmp_path / path).is_file()} == set(PACK_FILES)


def test_extract_sets_modes_and_keeps_only_the_owner_exec_bit(tmp_path: Path) -> None:
    raw = tgz(
        directory("pack"),
        member("pack/pack.yaml", MANIFEST, mode=0o666),
        member("pack/actions/run.sh", b"#!/bin/sh\n", mode=0o4775),
        member("pack/actions/data.txt", b"x", mode=0o070),
    )

    extract_archive(io.BytesIO(raw), tmp_path)

    def mode(path: str) -> int:
        return stat.S_IMODE((tmp_path / path).stat().st_mode)

    assert mode("pack.yaml") == 0o644
    assert mode("actions/run.sh") == 0o755
    assert mode("actions/data.txt") == 0o644
    assert mode("actions") == 0o755


def test_extract_zip_keeps_exec_bit(tmp_path: Path) -> None:
    raw = zip_pack((zinfo("pack/run.sh", mode=stat.S_IFREG | 0o755), b"#!/bin/sh\n"))

    extract_archive(io.BytesIO(raw), tmp_path)

    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "pack.yaml").stat().st_mode) == 0o644


def test_extract_handles_an_entry_named_like_its_staging_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def predictable_mkdtemp(prefix: str, dir: Path) -> str:
        staging = Path(dir) / f"{prefix}x"
        staging.mkdir()
        return str(staging)

    monkeypatch.setattr(archive_extract.tempfile, "mkdtemp", predictable_mkdtemp)
    raw = tgz(member("pack.yaml", MANIFEST), member(".attune-extract-x/a.txt", b"a"))

    extract_archive(io.BytesIO(raw), tmp_path)

    assert listing(tmp_path) == [".attune-extract-x", ".attune-extract-x/a.txt", "pack.yaml"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: tgz(*pack_members("pack/"), member("pack/zz-link", kind=tarfile.SYMTYPE, linkname="/etc")),
        lambda: patch_central_directory(
            zip_bytes(*((f"pack/{p}", d) for p, d in PACK_FILES.items()), ("pack/zz.txt", b"last")),
            "pack/zz.txt",
            crc=0,
        ),
    ],
    ids=["tar-link-after-files", "zip-bad-crc-after-files"],
)
def test_extract_failure_after_files_were_written_leaves_dest_empty(build: Callable[[], bytes], tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        extract_archive(io.BytesIO(build()), tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_extract_requires_an_existing_empty_directory(tmp_path: Path) -> None:
    raw = tgz(*pack_members(""))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "file").write_text("x")

    for dest in (tmp_path / "full", tmp_path / "missing", tmp_path / "file"):
        with pytest.raises(ValueError):
            extract_archive(io.BytesIO(raw), dest)

    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert listing(tmp_path) == ["file", "full", "full/keep.txt"]


def test_extract_into_a_symlinked_destination_stays_inside_it(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)

    extract_archive(io.BytesIO(tgz(*pack_members("x/"))), tmp_path / "alias")

    assert (real / "pack.yaml").read_bytes() == MANIFEST
    assert listing(tmp_path).count("real/pack.yaml") == 1


# --- bombs cannot take the process down ----------------------------------------------------------

_BOMB_SCRIPT = textwrap.dedent(
    """
    import io, resource, sys, tarfile, zipfile, zlib
    from attune_packs.domain.archive import scan_archive
    from attune_packs.errors import ArchiveError

    SIZE = 600 * 2**20  # of zeros: never held in memory, only streamed through
    ZEROS = bytes(2**20)

    def tar_gz_bomb():
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = []
        manifest = tarfile.TarInfo("pack/pack.yaml")
        manifest.size = 10
        parts.append(compressor.compress(manifest.tobuf() + b"ref: bomb\\n" + bytes(502)))
        zeros = tarfile.TarInfo("pack/zeros.bin")
        zeros.size = SIZE
        parts.append(compressor.compress(zeros.tobuf()))
        for _ in range(SIZE // len(ZEROS)):
            parts.append(compressor.compress(ZEROS))
        parts.append(compressor.compress(bytes(1024)) + compressor.flush())
        return b"".join(parts)

    def zip_bomb():
        raw = io.BytesIO()
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            archive.writestr("pack/pack.yaml", "ref: bomb\\n")
            with archive.open("pack/zeros.bin", "w") as handle:
                for _ in range(SIZE // len(ZEROS)):
                    handle.write(ZEROS)
        return raw.getvalue()

    bomb = tar_gz_bomb() if sys.argv[1] == "tar.gz" else zip_bomb()
    assert len(bomb) < 8 * 2**20, len(bomb)
    try:
        scan_archive(io.BytesIO(bomb))
    except ArchiveError as error:
        print(error.error_code)
    # VmHWM belongs to this process image; ru_maxrss would carry the forking parent's peak over exec.
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(peak_kib)
    """
)


def _limit_memory() -> None:
    import resource

    limit = 512 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is only enforced on Linux")
@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_600_mib_bomb_under_a_memory_limit(fmt: str) -> None:
    layers = Path(__file__).resolve().parents[2] / "layers" / "shared"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(layers), os.environ.get("PYTHONPATH")])),
    }

    result = subprocess.run(
        [sys.executable, "-c", _BOMB_SCRIPT, fmt],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=_limit_memory,
    )

    assert result.returncode == 0, result.stderr
    code, peak_kib = result.stdout.split()
    assert code == "ARCHIVE_TOO_LARGE"
    assert int(peak_kib) < 200 * 1024  # far below both the limit and the 600 MiB of zeros
