"""zip archives: the central directory bounded before zipfile loads it, member data inflated here."""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from attune_packs.domain.archive.checks import (
    _CHUNK,
    ArchiveLimits,
    MemberSink,
    PackArchive,
    _error,
    _MemberKind,
    _Scanner,
    _show,
)

_ZIP_DIRECTORY_BYTES_PER_MEMBER = 1024  # central directory budget per allowed member
_ZIP_EOCD_SEARCH = 22 + 0xFFFF  # end-of-central-directory record plus the longest comment
_ZIP_FLAG_ENCRYPTED = 0x1
_ZIP_FLAG_UTF8 = 0x800
_ZIP_UNICODE_PATH_FIELD = 0x7075


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
            f"the zip central directory is {directory_size} bytes, too large for {limits.max_files} members",
        )


def _read_zip(
    fp: BinaryIO,
    start: int,
    end: int,
    limits: ArchiveLimits,
    want: Callable[[str], bool],
    writer: MemberSink | None,
) -> PackArchive:
    archive_size = end - start
    try:
        _check_zip_directory(fp, start, end, limits)
        archive = zipfile.ZipFile(fp)
    except UnicodeDecodeError as exc:
        raise _error("ARCHIVE_BAD_FILENAME", "the name is marked as UTF-8 but is not valid UTF-8", exc.object) from exc
    except NotImplementedError as exc:
        raise _error("ARCHIVE_UNSUPPORTED_FORMAT", f"the zip archive uses an unsupported feature ({exc})") from exc
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
                if info.file_size:
                    problem = f"the entry is flagged as a folder but carries {info.file_size} bytes of data"
                    raise _error("ARCHIVE_CORRUPT", problem, name)
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


def _zip_chunks(fp: BinaryIO, info: zipfile.ZipInfo, name: str, raw_name: bytes, data_end: int) -> Iterator[bytes]:
    """Check a member's local header, then return its data inflated in bounded chunks."""
    if info.flag_bits & _ZIP_FLAG_ENCRYPTED:
        raise _error("ARCHIVE_UNSUPPORTED_FORMAT", "the member is encrypted; packs must not be encrypted", name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _error(
            "ARCHIVE_UNSUPPORTED_FORMAT",
            f"the member uses compression method {info.compress_type}; only 'stored' and 'deflate' are accepted",
            name,
        )
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise _error("ARCHIVE_CORRUPT", "the member's local header is missing", name)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    if fp.read(name_length) != raw_name:
        raise _error("ARCHIVE_CORRUPT", "the member's local header gives a different name than the zip directory", name)
    data_start = info.header_offset + 30 + name_length + extra_length
    if data_start + info.compress_size > data_end:
        raise _error("ARCHIVE_CORRUPT", "the member's data overlaps another member (an overlapping zip bomb?)", name)
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
