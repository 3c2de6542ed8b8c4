"""Opening a location a user or an index names: ``s3://`` objects, local files (local stack
only) and, through :mod:`attune_packs.net`, HTTPS URLs (not yet: refused with a clear code)."""

from __future__ import annotations

from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlparse

from attune_packs.adapters.s3 import ObjectStore, parse_s3_uri
from attune_packs.errors import SourceError
from attune_packs.settings import Settings


def open_location(location: str, store: ObjectStore, settings: Settings) -> AbstractContextManager[BinaryIO]:
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        return closing(store.open(parse_s3_uri(location)))
    if parsed.scheme in {"http", "https"}:
        raise SourceError(
            f"{location}: fetching over HTTP(S) is not supported by this version yet",
            error_code="SOURCE_TYPE_UNSUPPORTED",
        )
    if parsed.scheme not in {"", "file"}:
        raise SourceError(
            f"{location!r}: the {parsed.scheme}: scheme is not allowed", error_code="SOURCE_URL_FORBIDDEN"
        )
    return open_local(location, settings)


def open_local(location: str, settings: Settings) -> AbstractContextManager[BinaryIO]:
    parsed = urlparse(location)
    path = Path(parsed.path if parsed.scheme == "file" else location).expanduser()
    if not settings.allow_local_sources:
        raise SourceError(
            f"{location!r}: local files are only readable by the local stack", error_code="SOURCE_URL_FORBIDDEN"
        )
    if not path.is_file():
        raise SourceError(f"{location!r}: no such file", error_code="SOURCE_NOT_FOUND")
    return path.open("rb")


def join_location(base: str, url: str) -> str:
    """Resolve ``url`` (as written in an index) relative to the index's own location."""
    if urlparse(url).scheme or url.startswith("/"):
        return url
    if base.startswith("s3://"):
        location = parse_s3_uri(base)
        prefix = location.key.rsplit("/", 1)[0] + "/" if "/" in location.key else ""
        return f"s3://{location.bucket}/{prefix}{url}"
    if urlparse(base).scheme in {"http", "https"}:
        return urljoin(base, url)
    return str(Path(base).expanduser().parent / url)
