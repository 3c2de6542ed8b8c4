"""Extraction into a directory: every member created under a private staging directory, following nothing."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from attune_packs.domain.archive.checks import DEFAULT_LIMITS, ArchiveLimits, PackArchive, _error, default_want
from attune_packs.domain.archive.readers import _read


def extract_archive(
    stream: BinaryIO,
    dest: Path,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> PackArchive:
    """Validate an archive while writing the pack root's contents (only) into ``dest``.

    ``dest`` must be an existing, empty directory (else ``ValueError``). Everything is first written
    to a private staging directory inside ``dest``, then the pack root's entries are moved up. On any
    error ``dest`` is emptied again and the error re-raised.
    """
    dest = Path(dest)
    if not dest.is_dir():
        raise ValueError(f"{dest} is not an existing directory")
    if any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty")
    real_dest = dest.resolve()
    try:
        staging = Path(tempfile.mkdtemp(prefix=".attune-extract-", dir=real_dest))
        with _Writer(staging) as writer:
            archive = _read(stream, limits, default_want, writer)
        _promote(staging, archive.root, real_dest)
    except BaseException:
        _empty_directory(real_dest)
        raise
    return archive


# --- extraction ----------------------------------------------------------------------------------


class _Writer:
    """Creates members under a private staging directory, one ``dir_fd`` step at a time, following
    nothing (``O_NOFOLLOW``, ``O_EXCL``). Directories are 0o755, files 0o644 or 0o755."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        os.close(self._root_fd)

    def _check_inside(self, path: str, name: str) -> list[str]:
        if not (self.root / path).resolve().is_relative_to(self.root):
            raise _error("ARCHIVE_UNSAFE_PATH", "the member would be written outside the destination", name)
        return path.split("/")

    def _open_dirs(self, parts: list[str]) -> int:
        fd = os.dup(self._root_fd)
        try:
            for part in parts:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    created = True
                except FileExistsError:
                    created = False
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = child
                if created:
                    os.fchmod(fd, 0o755)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_dir(self, path: str, name: str) -> None:
        fd = self._open_dirs(self._check_inside(path, name))
        try:
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)

    def create_file(self, path: str, name: str, *, executable: bool) -> BinaryIO:
        parts = self._check_inside(path, name)
        parent = self._open_dirs(parts[:-1])
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(parts[-1], flags, 0o600, dir_fd=parent)
        finally:
            os.close(parent)
        try:
            os.fchmod(fd, 0o755 if executable else 0o644)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "wb")


def _promote(staging: Path, root: str, dest: Path) -> None:
    """Move the pack root's entries from ``staging`` (inside ``dest``) up into ``dest``."""
    names = os.listdir(staging / root)
    while staging.name in names:  # a pack entry happens to share the staging directory's name
        moved = staging.with_name(f".attune-extract-{secrets.token_hex(8)}")
        os.rename(staging, moved)
        staging = moved
    source = staging / root
    for name in names:
        os.rename(source / name, dest / name)
    shutil.rmtree(staging)


def _empty_directory(directory: Path) -> None:
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
