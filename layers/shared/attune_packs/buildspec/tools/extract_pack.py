"""Unpacks a stored pack archive in the build: the canonical format only, after checking its digest.

The download stage stores every pack as a *canonical archive* (see
:mod:`attune_packs.domain.archive.canonical`): ustar headers in gzip, folders and regular files only,
canonical order, NFC names, fixed modes, owners and times, no PAX record but ``path``. The stored
object is named by the sha256 of its bytes, so this module first checks that digest, then reads the
archive with :mod:`tarfile` (the parser the checker uses) and refuses any member the canonical writer
would not have written, so the build unpacks exactly the members the checker accepted. GNU tar and
``python -m zipfile`` are never used on pack archives: on crafted originals they disagree with the
checker (issue 12). Standard library only: the build runs it as a command of its tools
(``python3 "$TOOLS" extract ARCHIVE DEST ARCHIVE_URI``).

A refusal raises :class:`ExtractError` (a failed command in the build, its message in the build
log): ``ARCHIVE_DIGEST_MISMATCH`` (the bytes are not the ones their key names) or
``ARCHIVE_NOT_CANONICAL`` (anything the canonical writer never writes).
"""

from __future__ import annotations

import hashlib
import tarfile
import unicodedata
from pathlib import Path

MODES = {tarfile.REGTYPE: (0o644, 0o755), tarfile.DIRTYPE: (0o755,)}
FIXED = (0, 0, 0, "", "", "")  # owner, group, time, owner and group names, link name


class ExtractError(Exception):
    pass


def extract(archive: Path, dest: Path, key: str | None = None) -> list[str]:
    """Write the archive's members under ``dest`` (an existing, empty folder); return the names
    written, in archive order (folders end with ``/``). ``key`` is the stored object's key or URI
    (``.../archives/sha256/<hex>.tar.gz``) or just the hex digest: the bytes must have that sha256."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if key and digest != key.rsplit("/", 1)[-1].split(".")[0].lower():
        raise ExtractError(f"ARCHIVE_DIGEST_MISMATCH: {archive} has sha256 {digest}")
    if not dest.is_dir() or any(dest.iterdir()):
        raise ExtractError(f"{dest} must be an existing, empty folder")
    written: list[str] = []
    last: list[bytes] = []  # the previous member's path, split: each must sort after it
    folded: set[str] = set()  # the members' case-folded NFC names: no two may collide
    with tarfile.open(archive, "r:gz", encoding="utf-8", errors="strict") as tar:
        for member in tar:
            name = member.name
            order = [part.encode() for part in name.split("/")]
            fixed = (member.uid, member.gid, member.mtime, member.uname, member.gname, member.linkname)
            if (
                member.mode not in MODES.get(member.type, ())
                or set(member.pax_headers) - {"path"}
                or fixed != FIXED
                or (member.isdir() and member.size)
                or order <= last
                or unicodedata.normalize("NFC", name.casefold()) in folded
                or {"", ".", ".."} & set(name.split("/"))
                or "\\" in name
                or not name.isprintable()
                or unicodedata.normalize("NFC", name) != name
                or not (dest / name).parent.is_dir()
            ):
                raise ExtractError(f"ARCHIVE_NOT_CANONICAL: the canonical writer never writes the member {name!r}")
            folded.add(unicodedata.normalize("NFC", name.casefold()))
            last = order
            tar.extract(member, dest)  # a checked member: no filter needed, modes kept
            written.append(name + "/" if member.isdir() else name)
    return written
