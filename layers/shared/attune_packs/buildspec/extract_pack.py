"""Unpacks a stored pack archive in the build: the canonical format only, after checking its digest.

The download stage stores every pack as a *canonical archive* (see
:mod:`attune_packs.domain.archive.canonical`): gzip around ustar headers, folders and regular files
only, in canonical order, NFC names, PAX ``path`` records for long names and nothing else. This
reader accepts exactly that and refuses anything else, so the build never reads an archive
differently from the checker that accepted its members (GNU tar and ``python -m zipfile`` do, on
crafted originals). It uses the standard library only: the build runs it as a single file
(``python3 extract_pack.py ARCHIVE DEST SHA256``), and it also runs as
``python -m attune_packs.buildspec.extract_pack``.

Refusals exit with status 2 and one line on stderr: ``ARCHIVE_DIGEST_MISMATCH`` (the bytes are not
the ones their key names) or ``ARCHIVE_NOT_CANONICAL`` (anything the canonical writer never writes).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import unicodedata
from pathlib import Path
from typing import BinaryIO

BLOCK = 512
CHUNK = 64 * 1024
MAX_PAX_BYTES = 64 * 1024
# type flag -> the modes the canonical writer gives it
MODES = {b"0": (0o644, 0o755), b"5": (0o755,), b"x": (0o644,)}
# header fields that are always zero: owner, group, mtime, device numbers, then every unused byte
ZERO_NUMBERS = ((108, 116), (116, 124), (136, 148), (329, 337), (337, 345))
ZERO_BYTES = ((157, 257), (265, 329), (345, 512))


class ExtractError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def refuse(message: str) -> ExtractError:
    return ExtractError("ARCHIVE_NOT_CANONICAL", message)


def extract(archive: Path, dest: Path, expected_sha256: str | None = None) -> list[str]:
    """Write the archive's members under ``dest`` (an existing, empty folder); return the names
    written in archive order (folders end with ``/``)."""
    if expected_sha256 is not None:
        digest = hashlib.sha256()
        with open(archive, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected_sha256.lower():
            raise ExtractError("ARCHIVE_DIGEST_MISMATCH", f"{archive} has sha256 {digest.hexdigest()}")
    if not dest.is_dir() or any(dest.iterdir()):
        raise refuse(f"{dest} must be an existing, empty folder")
    root = dest.resolve()
    written: list[str] = []
    previous: list[bytes] = []
    folded: set[str] = set()
    with gzip.open(archive, "rb") as stream:
        while entry := _next_entry(stream):
            name, typeflag, size, mode = entry
            key = [part.encode() for part in name.rstrip("/").split("/")]
            fold = unicodedata.normalize("NFC", name.rstrip("/").casefold())
            if key <= previous or fold in folded:
                raise refuse(f"{name!r} is out of order or repeats a name")
            previous = key
            folded.add(fold)
            _write(stream, root, name, typeflag, size, mode)
            written.append(name)
        while chunk := stream.read(CHUNK):
            if chunk.count(0) != len(chunk):
                raise refuse("data follows the end of the archive")
    return written


def _next_entry(stream: BinaryIO) -> tuple[str, bytes, int, int] | None:
    header = _read(stream, BLOCK)
    if header == bytes(BLOCK):
        if _read(stream, BLOCK) != bytes(BLOCK):
            raise refuse("data follows an end-of-archive block")
        return None
    name, typeflag, size, mode = _parse_header(header)
    if typeflag == b"x":
        record = _read(stream, size + (-size % BLOCK))[:size] if size <= MAX_PAX_BYTES else b""
        length, _, text = record.partition(b" ")
        if not length.isdigit() or int(length) != size or not text.startswith(b"path=") or text[-1:] != b"\n":
            raise refuse("a PAX header holds anything but one path record")
        long_name = text[5:-1].decode("utf-8")
        name, typeflag, size, mode = _parse_header(_read(stream, BLOCK))
        if typeflag == b"x" or not long_name.startswith(name):
            raise refuse("a PAX path does not match its header")
        name = long_name
    parts = name.split("/")
    is_dir = typeflag == b"5"
    if is_dir == (parts[-1] != "") or any(part in ("", ".", "..") for part in parts[: -1 if is_dir else None]):
        raise refuse(f"{name!r} is not a canonical member name")
    if "\\" in name or unicodedata.normalize("NFC", name) != name or not name.isprintable():
        raise refuse(f"{name!r} is not a canonical member name")
    return name, typeflag, size, mode


def _parse_header(header: bytes) -> tuple[str, bytes, int, int]:
    numbers = [_number(header[start:end]) for start, end in ((100, 108), (124, 136), (148, 156), *ZERO_NUMBERS)]
    mode, size, checksum = numbers[:3]
    typeflag = header[156:157]
    if (
        header[257:265] != b"ustar\x0000"
        or checksum != sum(header[:148]) + 8 * 32 + sum(header[156:])
        or any(numbers[3:])
        or any(any(header[start:end]) for start, end in ZERO_BYTES)
        or mode not in MODES.get(typeflag, ())
        or (typeflag == b"5" and size)
    ):
        raise refuse(f"a header is not one the canonical writer writes ({header[:100]!r})")
    return header[:100].rstrip(b"\0").decode("utf-8"), typeflag, size, mode


def _number(field: bytes) -> int:
    text = field.rstrip(b"\0 ")
    if not text or text.strip(b"01234567"):
        raise refuse(f"a header field {field!r} is not an octal number")
    return int(text, 8)


def _write(stream: BinaryIO, root: Path, name: str, typeflag: bytes, size: int, mode: int) -> None:
    target = root / name.rstrip("/")
    if target.parent.resolve() != target.parent or not target.parent.is_dir():
        raise refuse(f"{name!r} comes before its folder or leaves {root}")
    if typeflag == b"5":
        os.mkdir(target, 0o755)
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        left = size
        while left:
            left -= out.write(_read(stream, min(CHUNK, left)))
        os.fchmod(out.fileno(), mode)
    _read(stream, -size % BLOCK)


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise refuse("the archive ends early")
    return data


def main(argv: list[str]) -> int:
    """``ARCHIVE DEST [SHA256]``: exit status 2 and one line on stderr when refused."""
    try:
        extract(Path(argv[0]), Path(argv[1]), argv[2] if len(argv) > 2 else None)
    except (ExtractError, OSError, EOFError, UnicodeDecodeError) as exc:
        print(f"the pack archive cannot be unpacked: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
