"""The HTTP client downloads use: checks a URL, resolves and checks its addresses, connects to
one of them, follows redirects by hand and hands back a bounded :class:`HttpResponse`."""

from __future__ import annotations

import http.client
import socket
import ssl

from attune_packs.errors import AttuneError, DownloadError, SourceError
from attune_packs.sources.http.policy import NetworkPolicy, Target, check_addresses, parse_target, redirect_target
from attune_packs.sources.http.response import HttpResponse
from attune_packs.sources.http.transport import (
    Deadline,
    PinnedConnection,
    Transport,
    Watchdog,
    close_quietly,
    translate_failure,
)

USER_AGENT = "attune-pack-installer/1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


# --- the client ---------------------------------------------------------------------------------


class HttpClient:
    """Makes requests that follow :class:`NetworkPolicy` through a :class:`Transport`."""

    def __init__(self, policy: NetworkPolicy, transport: Transport | None = None) -> None:
        self.policy = policy
        self.transport = transport or Transport()

    def check(self, url: str) -> Target:
        """Check a URL's form without touching the network."""
        return parse_target(url, allow_http=self.policy.allow_http)

    def open(
        self,
        url: str,
        *,
        deadline: Deadline,
        max_bytes: int,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        follow_redirects: bool = True,
    ) -> HttpResponse:
        """Send a request and return its (2xx) response, whose body is read in bounded steps."""
        target = self.check(url)
        hops = 0
        while True:
            response = self._request(target, method, headers or {}, body, deadline, max_bytes)
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not follow_redirects or method not in ("GET", "HEAD"):
                break
            response.close()
            if not location:
                raise SourceError(
                    f"{target.url} answered {response.status} without a Location header",
                    error_code="DOWNLOAD_HTTP_ERROR",
                )
            hops += 1
            if hops > self.policy.max_redirects:
                raise SourceError(
                    f"{url} redirected more than {self.policy.max_redirects} times (last to {location})",
                    error_code="TOO_MANY_REDIRECTS",
                )
            target = redirect_target(target, location, allow_http=self.policy.allow_http)
        if response.status >= 300:
            response.close()
            raise _status_error(target, response.status, response.reason)
        response.original_url = url
        return response

    def _addresses(self, target: Target) -> list[str]:
        literal = target.ip_literal
        if literal is not None:  # nothing to resolve: check the literal itself
            return check_addresses(target.host, [str(literal)], self.policy.allow)
        return check_addresses(target.host, self.transport.resolve(target.host, target.port), self.policy.allow)

    def _connect(self, target: Target, addresses: list[str], deadline: Deadline) -> socket.socket:
        failure: BaseException | None = None
        for address in addresses:
            if deadline.expired():
                raise deadline.error(f"connecting to {target.host}")
            try:
                return self.transport.connect(
                    address, target.port, min(self.policy.connect_timeout, max(deadline.remaining(), 0.001))
                )
            except (TimeoutError, OSError) as exc:
                failure = exc
        if isinstance(failure, TimeoutError):
            raise DownloadError(
                f"could not connect to {target.host}:{target.port} within {self.policy.connect_timeout:g} s",
                error_code="DOWNLOAD_TIMEOUT",
            ) from failure
        raise DownloadError(
            f"could not connect to {target.host}:{target.port} ({failure})", error_code="DOWNLOAD_FAILED"
        ) from failure

    def _request(
        self,
        target: Target,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        deadline: Deadline,
        max_bytes: int,
    ) -> HttpResponse:
        addresses = self._addresses(target)  # checked before any connection is opened
        sock = self._connect(target, addresses, deadline)
        watchdog: Watchdog | None = None
        try:
            watchdog = Watchdog(sock, deadline)
            sock.settimeout(min(self.policy.read_timeout, max(deadline.remaining(), 0.001)))
            if target.scheme == "https":
                context = self.transport.tls_context(self.policy.verify_ssl)
                sock = context.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
                sock.do_handshake()
            connection = PinnedConnection(
                target.host, target.port, sock, 443 if target.scheme == "https" else 80, self.policy.read_timeout
            )
            sent = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close", **headers}
            connection.request(method, target.request_target, body=body, headers=sent)
            raw = connection.getresponse()
        except AttuneError:
            close_quietly(sock, watchdog)
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            close_quietly(sock, watchdog)
            raise translate_failure(exc, target, watchdog, deadline, self.policy.read_timeout) from exc
        response = HttpResponse(target, raw, sock, watchdog, deadline, max_bytes, self.policy)
        if response.length is not None and response.length > max_bytes:
            response.close()
            raise SourceError(
                f"{target.url} announces {response.length} bytes; the limit is {max_bytes}",
                error_code="DOWNLOAD_TOO_LARGE",
            )
        return response


def _status_error(target: Target, status: int, reason: str) -> AttuneError:
    message = f"{target.url} answered HTTP {status} {reason}".rstrip()
    if status in _TRANSIENT_STATUSES:
        return DownloadError(message + " (the server may recover: retry later)", error_code="DOWNLOAD_HTTP_ERROR")
    if status in (401, 403, 404):
        message += ": check the URL (private repositories and archives cannot be downloaded)"
    return SourceError(message, error_code="DOWNLOAD_HTTP_ERROR", details={"status": status})
