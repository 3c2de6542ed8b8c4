"""Opening a location a user or an index names: ``s3://`` objects, ``https://`` URLs (through
:mod:`attune_packs.sources.http`: checked, pinned, bounded) and local files (local stack only)."""

from __future__ import annotations

from contextlib import AbstractContextManager, closing
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import urljoin, urlparse

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.errors import SourceError
from attune_packs.s3_uri import parse_s3_uri
from attune_packs.settings import Settings
from attune_packs.sources.http import Deadline, HttpClient, NetworkPolicy

DEFAULT_TIMEOUT_SECONDS = 60.0  # a location opened without a request's own deadline
_WEB = frozenset({"http", "https"})


def open_location(
    location: str,
    store: ObjectStore,
    settings: Settings,
    *,
    http: HttpClient | None = None,
    deadline: Deadline | None = None,
    max_bytes: int | None = None,
) -> AbstractContextManager[BinaryIO]:
    """A readable stream of ``location``; web downloads follow ``http``'s policy (default: settings)."""
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        return closing(store.open(parse_s3_uri(location)))
    if scheme in _WEB:
        client = http or HttpClient(NetworkPolicy.from_settings(settings))
        response = client.open(
            location,
            deadline=deadline or Deadline(DEFAULT_TIMEOUT_SECONDS),
            max_bytes=settings.max_archive_bytes if max_bytes is None else max_bytes,
        )
        return cast(AbstractContextManager[BinaryIO], response)
    if scheme not in {"", "file"}:
        raise SourceError(f"{location!r}: the {scheme}: scheme is not allowed", error_code="SOURCE_URL_FORBIDDEN")
    return open_local(location, settings)


def open_local(location: str, settings: Settings) -> BinaryIO:
    if not settings.allow_local_sources:
        raise SourceError(
            f"{location!r}: local files are only readable by the local stack", error_code="SOURCE_URL_FORBIDDEN"
        )
    parsed = urlparse(location)
    try:
        path = Path(parsed.path if parsed.scheme == "file" else location).expanduser()
    except RuntimeError as exc:  # ~user that does not exist
        raise SourceError(f"{location!r}: {exc}", error_code="SOURCE_NOT_FOUND") from exc
    if not path.is_file():
        raise SourceError(f"{location!r}: no such file", error_code="SOURCE_NOT_FOUND")
    return path.open("rb")


def join_location(base: str, url: str) -> str:
    """Resolve ``url`` (as written in an index) relative to the index's own location.

    An index may not point to a more privileged place than its own: one fetched over HTTP(S) names
    only HTTP(S) URLs, one in S3 names S3 objects or HTTP(S) URLs; only a local index (local stack)
    names local files.
    """
    base_scheme = urlparse(base).scheme.lower()
    if base_scheme in _WEB:
        joined = urljoin(base, url)
    elif urlparse(url).scheme:
        joined = url
    elif base_scheme == "s3":
        location = parse_s3_uri(base)
        if url.startswith("/"):
            joined = f"s3://{location.bucket}/{url.lstrip('/')}"
        else:
            prefix = location.key.rsplit("/", 1)[0] + "/" if "/" in location.key else ""
            joined = f"s3://{location.bucket}/{prefix}{url}"
    elif url.startswith("/"):
        joined = url
    else:
        joined = str(Path(base).expanduser().parent / url)
    scheme = urlparse(joined).scheme.lower()
    allowed = _WEB if base_scheme in _WEB else _WEB | {"s3"} if base_scheme == "s3" else None
    if allowed is not None and scheme not in allowed:
        raise SourceError(
            f"registry index {base} points to {url!r}; an index at {base_scheme}:// may only name "
            f"{' or '.join(sorted(f'{s}://' for s in allowed))} locations",
            error_code="SOURCE_URL_FORBIDDEN",
        )
    return joined
