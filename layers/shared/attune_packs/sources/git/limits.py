"""What fetching one Git commit may cost (:class:`GitLimits`), and the sizes the Git modules share."""

from __future__ import annotations

from dataclasses import dataclass

from attune_packs.domain.archive import ArchiveLimits

MiB = 2**20
CHUNK = 1 * MiB  # the step in which packs are read and archives written


@dataclass(frozen=True)
class GitLimits:
    """What fetching one commit may cost."""

    max_pack_bytes: int = 512 * MiB  # the compressed pack as received
    max_objects: int = 200_000
    max_object_bytes: int = 128 * MiB  # any one object, delta results included
    max_total_bytes: int = 576 * MiB  # all objects inflated, delta results counted
    max_files: int = 10_000  # tree entries (files and folders)
    max_depth: int = 32

    @classmethod
    def for_archives(cls, limits: ArchiveLimits, *, max_pack_bytes: int) -> GitLimits:
        return cls(
            max_pack_bytes=max_pack_bytes,
            max_object_bytes=limits.max_file_bytes,
            max_total_bytes=limits.max_total_bytes + 64 * MiB,  # trees and the commit on top of files
            max_files=limits.max_files,
            max_depth=limits.max_depth,
        )
