"""Safe reading of pack archives (``.tar.gz``/``.tgz`` and ``.zip``) from untrusted sources.

Nothing in an archive is trusted: not its name, not its headers, not the sizes they declare.

* The format is detected from the first bytes (gzip -> tar.gz, ``PK\\x03\\x04``/``PK\\x05\\x06`` -> zip),
  never from a file name.
* tar.gz is read strictly forward, so the stream may be a non-seekable HTTP or S3 body. The gzip layer
  is decoded here, in small steps, and handed to :mod:`tarfile` in ``r|`` mode: every byte tarfile
  sees has been counted, a tar header (PAX records, GNU long names) may not exceed 1 MiB, and the
  compression ratio is judged on everything produced, headers included. After the end-of-archive
  marker only zero padding may follow, so a damaged header cannot silently cut the archive short.
* zip uses the stream directly when it is seekable and otherwise spools it (at most
  ``max_total_bytes``). :mod:`zipfile` only parses the central directory; member data is read from
  the local headers and inflated here, ignoring the declared size: a member that unpacks to more
  than its header says is refused (``ARCHIVE_TOO_LARGE``), one that unpacks to less, fails its CRC,
  overlaps another member or names itself differently in its local header is ``ARCHIVE_CORRUPT``.
  Only "stored" and "deflate" members are accepted (bzip2/lzma decoders cannot bound their output).
* Every member is validated before use (see :func:`_normalise` and :class:`_Scanner`); links, devices,
  FIFOs and any other special entry are refused, never skipped.

Decisions a caller should know:

* A directory may appear more than once (explicitly, or implied by the files under it); a path that
  is a file twice, or both a file and a directory, is ``ARCHIVE_DUPLICATE_ENTRY``. Paths are compared
  after normalisation (``./a``, ``a`` and ``a//`` are the same). Two paths (or folders above them)
  that differ in spelling but are equal after Unicode NFC normalisation and case folding (``pack.yaml``
  and ``Pack.yaml``; ``café`` in NFC and NFD) are ``ARCHIVE_DUPLICATE_MEMBER``. Accepted paths are
  reported (and written) in NFC.
* A folder entry that carries data (a zip entry flagged as a folder, a tar directory header with a
  size) is ``ARCHIVE_CORRUPT``: readers disagree on what it is.
* ``.`` and empty components are dropped (``tar -C dir .`` archives work); ``..`` anywhere is refused.
* A zip name without the UTF-8 flag must still decode as UTF-8 (ASCII names always do).
* Pack root candidates are ``pack.yaml`` at the top level and ``<dir>/pack.yaml`` for every top-level
  directory (``pack/`` is one of them); exactly one candidate must exist.
* ``file_count`` counts every member, directories included (the same count ``max_files`` limits);
  ``total_bytes`` is the data of every member, inside the pack root or not.
* For tar.gz the ratio is judged on the whole decompressed stream (headers and padding included);
  for zip on member data against the archive's size.
* Files kept in memory are capped one by one (``max_kept_file_bytes``; a wanted file over it is
  ``ARCHIVE_FILE_TOO_LARGE``) and together (``max_kept_total_bytes``, ``ARCHIVE_TOO_LARGE``).
* Errors raised by the caller's stream (a failed download) propagate unchanged.
"""

from attune_packs.domain.archive.canonical import (
    CANONICAL_FORMAT,
    CanonicalArchive,
    canonical_members,
    write_canonical,
)
from attune_packs.domain.archive.checks import ArchiveFormat, ArchiveLimits, PackArchive, default_want
from attune_packs.domain.archive.extract import extract_archive
from attune_packs.domain.archive.readers import detect_format, scan_archive

__all__ = [
    "CANONICAL_FORMAT",
    "ArchiveFormat",
    "CanonicalArchive",
    "ArchiveLimits",
    "PackArchive",
    "canonical_members",
    "default_want",
    "detect_format",
    "extract_archive",
    "scan_archive",
    "write_canonical",
]
