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

Modules:

* :mod:`~attune_packs.sources.git.refs`: ref and URL checks (before any network access) and
  choosing the object a ref names (:func:`check_ref`, :func:`check_git_url`, :func:`select_ref`);
* :mod:`~attune_packs.sources.git.fetch`: the smart-HTTP fetch through
  :class:`~attune_packs.sources.http.HttpClient`, and :func:`open_git_archive`;
* :mod:`~attune_packs.sources.git.packfile`: :func:`check_pack`, the pack walked before anything is
  inflated;
* :mod:`~attune_packs.sources.git.tree_archive`: the commit's tree as a deterministic tar.gz stream
  (:func:`tar_gz_from_pack`, :func:`archive_from_pack`, :class:`GitArchive`);
* :mod:`~attune_packs.sources.git.limits`: :class:`GitLimits`, what one fetch may cost.
"""

from attune_packs.sources.git.fetch import open_git_archive
from attune_packs.sources.git.limits import GitLimits
from attune_packs.sources.git.packfile import check_pack
from attune_packs.sources.git.refs import WantedObject, check_git_url, check_ref, select_ref, split_git_source
from attune_packs.sources.git.tree_archive import GitArchive, archive_from_pack, chunk_stream, tar_gz_from_pack

__all__ = [
    "GitArchive",
    "GitLimits",
    "WantedObject",
    "archive_from_pack",
    "check_git_url",
    "check_pack",
    "check_ref",
    "chunk_stream",
    "open_git_archive",
    "select_ref",
    "split_git_source",
    "tar_gz_from_pack",
]
