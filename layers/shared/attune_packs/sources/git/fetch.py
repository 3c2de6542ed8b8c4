"""The smart-HTTP fetch: dulwich's client with every request made by the download's
:class:`~attune_packs.sources.http.HttpClient`, a shallow fetch of one object into a capped spool,
and :func:`open_git_archive`, the whole way from a URL to an archive stream."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import urlsplit

from attune_packs.errors import AttuneError, SourceError
from attune_packs.sources.git.limits import GitLimits, MiB
from attune_packs.sources.git.packfile import dulwich_failures, git_failure
from attune_packs.sources.git.refs import WantedObject, check_git_url, check_ref, ref_prefixes, select_ref
from attune_packs.sources.git.tree_archive import GitArchive, archive_from_pack
from attune_packs.sources.http import Deadline, HttpClient, HttpResponse

_SPOOL_MEMORY = 16 * MiB
_MAX_REQUEST_BODY = 1 * MiB


# --- dulwich over attune_packs.sources.http ----------------------------------------------------------------


def _http_git_client_class() -> type[Any]:
    from dulwich.client import AbstractHttpGitClient

    class NetHttpGitClient(AbstractHttpGitClient):
        """dulwich's smart-HTTP client with every request made by :class:`HttpClient`."""

        def __init__(self, base_url: str, http: HttpClient, deadline: Deadline, max_bytes: int) -> None:
            super().__init__(base_url, dumb=False, thin_packs=True, quiet=True, include_tags=False)
            self._http = http
            self._deadline = deadline
            self._max_bytes = max_bytes

        # dulwich declares urllib3's HTTPResponse as the result, but reads only what HttpResponse also
        # carries (status, content_type, redirect_location, headers, close) and the read callable.
        def _http_request(  # type: ignore[override]
            self,
            url: str,
            headers: dict[str, str] | None = None,
            data: bytes | Iterator[bytes] | None = None,
            raise_for_status: bool = True,
        ) -> tuple[HttpResponse, Callable[[int], bytes]]:
            body = None
            if data is not None:
                body = data if isinstance(data, bytes) else _bounded_join(data)
            response = self._http.open(
                url,
                deadline=self._deadline,
                max_bytes=self._max_bytes,
                method="POST" if body is not None else "GET",
                headers=dict(headers or {}),
                body=body,
            )
            content_type = response.content_type or ""
            if "/info/refs" in urlsplit(url).path and not content_type.startswith("application/x-git-"):
                response.close()
                raise SourceError(
                    f"{url} is not a smart-HTTP Git server (content type {content_type or 'none'}); "
                    "dumb HTTP repositories are not supported",
                    error_code="GIT_FETCH_FAILED",
                )
            return response, response.read

    return NetHttpGitClient


def _bounded_join(parts: Iterator[bytes]) -> bytes:
    body = bytearray()
    for part in parts:
        body += part
        if len(body) > _MAX_REQUEST_BODY:
            raise SourceError("a Git request grew larger than 1 MiB", error_code="GIT_FETCH_FAILED")
    return bytes(body)


def _fetch(
    url: str, ref: str | None, http: HttpClient, deadline: Deadline, limits: GitLimits, spool: IO[bytes]
) -> tuple[WantedObject, Any]:
    """Fetch the one wanted object (depth 1) into ``spool``; return it and the object format."""
    from dulwich.object_format import get_object_format
    from dulwich.object_store import ObjectStoreGraphWalker

    client = _http_git_client_class()(url, http, deadline, limits.max_pack_bytes)
    chosen: list[WantedObject] = []
    received = 0

    def determine_wants(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        wanted = select_ref(refs, ref, url=url)
        chosen.append(wanted)
        return [wanted.sha]

    def write(data: bytes) -> int:
        nonlocal received
        received += len(data)
        if received > limits.max_pack_bytes:
            raise SourceError(
                f"{url}: the repository's data at this commit is larger than {limits.max_pack_bytes} bytes",
                error_code="DOWNLOAD_TOO_LARGE",
            )
        spool.write(data)
        return len(data)

    walker = ObjectStoreGraphWalker([], lambda _sha: [])
    try:
        result = client.fetch_pack("", determine_wants, walker, write, depth=1, ref_prefix=ref_prefixes(ref))
    except AttuneError as exc:
        if chosen and not chosen[0].advertised and exc.error_code in ("DOWNLOAD_HTTP_ERROR", "GIT_FETCH_FAILED"):
            raise _unadvertised(url, chosen[0]) from exc
        raise
    except dulwich_failures() as exc:
        if chosen and not chosen[0].advertised:
            raise _unadvertised(url, chosen[0]) from exc
        raise git_failure(url, exc) from exc
    if not chosen:
        raise SourceError(f"{url}: the server listed no refs", error_code="GIT_FETCH_FAILED")
    return chosen[0], get_object_format(getattr(result, "object_format", None))


def _unadvertised(url: str, wanted: WantedObject) -> SourceError:
    return SourceError(
        f"{url}: the server refused commit {wanted.name}: it does not exist, or it is not the tip of a "
        "branch or tag and this server does not serve such commits; name a branch or tag instead",
        error_code="GIT_REF_NOT_FOUND",
    )


@contextmanager
def open_git_archive(
    url: str, ref: str | None, *, http: HttpClient, deadline: Deadline, limits: GitLimits
) -> Iterator[GitArchive]:
    """Fetch ``ref`` (default: the default branch) of the repository at ``url`` as a tar.gz stream."""
    check_git_url(url, allow_http=http.policy.allow_http)
    if ref is not None:
        check_ref(ref)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
        wanted, object_format = _fetch(url, ref, http, deadline, limits, spool)
        with archive_from_pack(spool, wanted, object_format, url=url, limits=limits, deadline=deadline) as archive:
            yield archive
