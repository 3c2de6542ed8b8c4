"""Bounded streaming: a response body read in steps under the deadline, the per-read timeout and
the byte cap, with announced lengths held to account."""

from __future__ import annotations

import http.client
import socket
import ssl
from email.message import Message
from typing import Any

from attune_packs.errors import AttuneError, DownloadError, SourceError
from attune_packs.sources.http.policy import NetworkPolicy, Target
from attune_packs.sources.http.transport import Deadline, Watchdog, translate_failure

_READ_SIZE = 64 * 1024
_SURPLUS_GRACE_SECONDS = 1.0  # how long to wait for bytes after the announced end of a body


class HttpResponse:
    """A response whose body is read in bounded steps (deadline, per-read timeout, byte cap).

    ``read(n)`` returns exactly ``n`` bytes unless the body ends first. Also carries what dulwich's
    HTTP client reads from a response (``status``, ``content_type``, ``redirect_location``).
    """

    def __init__(
        self,
        target: Target,
        raw: http.client.HTTPResponse,
        sock: socket.socket,
        watchdog: Watchdog,
        deadline: Deadline,
        max_bytes: int,
        policy: NetworkPolicy,
    ) -> None:
        self.target = target
        self.url = target.url
        self.original_url = target.url
        self.status = raw.status
        self.reason = raw.reason
        self.headers: Message = raw.headers
        self.insecure = target.scheme == "https" and not policy.verify_ssl
        self._raw = raw
        self._sock = sock
        self._watchdog = watchdog
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._read_timeout = policy.read_timeout
        self._received = 0
        self._closed = False
        # Content-Length bodies are read here, from the connection, so that bytes after the announced
        # end can be noticed; chunked and close-delimited bodies are decoded by http.client.
        self.length: int | None = raw.length if not raw.chunked else None
        self._remaining = self.length

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def redirect_location(self) -> str:
        return self.url if self.url != self.original_url else ""

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    # -- reading ----------------------------------------------------------------------------------
    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._max_bytes + 1
        parts: list[bytes] = []
        wanted = size
        while wanted > 0:
            chunk = self._read_some(min(wanted, _READ_SIZE))
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def readable(self) -> bool:
        return True

    def _read_some(self, size: int) -> bytes:
        if self._closed:
            return b""
        if self._deadline.expired():
            self.close()
            raise self._deadline.error(f"downloading {self.url}")
        try:
            self._sock.settimeout(min(self._read_timeout, max(self._deadline.remaining(), 0.001)))
            if self._remaining is not None and self.length is not None:  # both from Content-Length
                if self._remaining == 0:
                    return b""
                assert self._raw.fp is not None
                data = self._raw.fp.read1(min(size, self._remaining))
                if not data and self._watchdog.fired:
                    raise self._deadline.error(f"downloading {self.url}")
                if not data:
                    raise DownloadError(
                        f"{self.url}: the connection closed after {self.length - self._remaining} of the "
                        f"{self.length} announced bytes",
                        error_code="DOWNLOAD_INCOMPLETE",
                    )
                self._remaining -= len(data)
            else:
                data = self._raw.read1(size)
                if not data and self._watchdog.fired:  # the watchdog's shutdown looks like an end of body
                    raise self._deadline.error(f"downloading {self.url}")
        except AttuneError:
            self.close()
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as exc:
            self.close()
            raise translate_failure(exc, self.target, self._watchdog, self._deadline, self._read_timeout) from exc
        self._received += len(data)
        if self._received > self._max_bytes:
            self.close()
            raise SourceError(
                f"{self.url}: the download is larger than the {self._max_bytes}-byte limit",
                error_code="DOWNLOAD_TOO_LARGE",
            )
        if self._remaining == 0:
            self._check_surplus()
        return data

    def _check_surplus(self) -> None:
        """Bytes after the announced end of the body mean the server lied about the length."""
        fp = self._raw.fp
        if fp is None:
            return
        try:
            self._sock.settimeout(min(_SURPLUS_GRACE_SECONDS, max(self._deadline.remaining(), 0.001)))
            extra = fp.peek(1)
        except (OSError, ssl.SSLError, ValueError):
            extra = b""
        if extra:
            self.close()
            raise SourceError(
                f"{self.url}: the server sent more than the {self.length} bytes it announced",
                error_code="DOWNLOAD_TOO_LARGE",
            )

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._watchdog.cancel()
        try:
            self._raw.close()
        finally:
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> HttpResponse:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
