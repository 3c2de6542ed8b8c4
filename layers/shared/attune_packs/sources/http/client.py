"""Network access for downloads: HTTPS only, no private addresses, pinned, bounded in time and bytes.

SECURITY.md items 11-14 are enforced here, for every request and every redirect hop:

* **URLs**: ``https`` only (``http`` when ``DOWNLOAD_ALLOW_HTTP`` is set); no credentials in the URL;
  no spaces or control characters. A redirect is followed by hand (at most
  ``DOWNLOAD_MAX_REDIRECTS`` hops), is checked like the first URL, and may never go from https to
  http.
* **Addresses**: the host is resolved once per hop and *every* address it resolves to must be
  globally routable (:func:`address_problem`: IPv4-mapped and NAT64 IPv6 addresses are judged by the
  IPv4 address inside; an explicit list of special-purpose ranges backs up ``ip.is_global``, whose
  answers differ between Python patch releases). ``DOWNLOAD_ALLOW_NETWORKS`` (CIDRs or host names)
  lets the local stack and tests reach loopback.
* **Pinning**: the connection goes to an address that was checked, never to a name: a second DNS
  lookup (DNS rebinding) is never made. TLS still verifies the certificate against the host name.
* **Time**: a connect timeout, a per-read timeout, and an overall deadline that a watchdog enforces
  by shutting the socket down, so a server that trickles bytes (in the headers, the TLS handshake or
  the body) is cut off when the deadline passes.
* **Bytes**: a cap on the body; an announced ``Content-Length`` over the cap is refused before
  reading; a body shorter than announced is ``DOWNLOAD_INCOMPLETE``, bytes after the announced end
  are ``DOWNLOAD_TOO_LARGE``. Only ``identity`` content encoding is requested (no transparent
  decompression).
* **Proxies** from the environment are never used (:mod:`http.client` does not read them).

Everything that touches the network goes through a :class:`Transport` (resolver, connector, TLS
contexts), so tests can spy on it or replace it.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from attune_packs.errors import AttuneError, DownloadError, SourceError

if TYPE_CHECKING:
    from attune_packs.settings import Settings

__all__ = [
    "AllowList",
    "Deadline",
    "HttpClient",
    "HttpResponse",
    "NetworkPolicy",
    "Target",
    "Transport",
    "address_problem",
    "check_addresses",
    "parse_target",
    "redirect_target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
Connector = Callable[[str, int, float], socket.socket]

USER_AGENT = "attune-pack-installer/1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_READ_SIZE = 64 * 1024
_SURPLUS_GRACE_SECONDS = 1.0  # how long to wait for bytes after the announced end of a body

# Special-purpose ranges (IANA registries), refused whatever ``is_global`` says in this Python.
_SPECIAL_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), label)
    for cidr, label in [
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (cloud metadata and container credential endpoints live here)"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001::/23", "an IETF protocol assignment address (Teredo, ORCHID and others)"),
        ("2001:db8::/32", "a documentation address"),
        ("2002::/16", "a 6to4 address"),
        ("fc00::/7", "a unique-local (private) IPv6 address"),
        ("fe80::/10", "a link-local IPv6 address"),
        ("fec0::/10", "a site-local IPv6 address"),
        ("ff00::/8", "a multicast address"),
        ("::/8", "a reserved IPv6 address (IPv4-compatible and similar)"),  # after 64:ff9b:1::/48, inside it
    ]
)
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")


# --- addresses ----------------------------------------------------------------------------------


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64 well-known prefix)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64_WELL_KNOWN:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_problem(ip: IPAddress) -> str | None:
    """Why a download may not connect to ``ip`` (``"a loopback address"``...), or None if it is public."""
    ip = _unwrap(ip)
    for network, label in _SPECIAL_RANGES:
        if ip.version == network.version and ip in network:
            return label
    if ip.is_multicast:
        return "a multicast address"
    if not ip.is_global or ip.is_private or ip.is_reserved or ip.is_loopback or ip.is_link_local:
        return "an address that is not globally routable"
    return None


@dataclass(frozen=True)
class AllowList:
    """Networks and host names a download may reach although they are not public (``DOWNLOAD_ALLOW_NETWORKS``)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                hosts.add(text.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, host: str, ip: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        candidates = {ip, _unwrap(ip)}
        return any(c.version == n.version and c in n for c in candidates for n in self.networks)


def check_addresses(host: str, addresses: Iterable[str], allow: AllowList) -> list[str]:
    """The addresses of ``host`` a download may connect to: all of them, or an ``SSRF_BLOCKED`` error.

    One refused address refuses the host: an attacker controlling DNS could otherwise mix a public
    address with a private one and hope the connection picks the second.
    """
    checked: list[str] = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise SourceError(
                f"{host!r} resolved to {text!r}, which is not an IP address", error_code="SSRF_BLOCKED"
            ) from None
        if not allow.allows(host, ip):
            problem = address_problem(ip)
            if problem is not None:
                shown = host if host == str(ip) else f"{host!r} resolves to {ip}, which is"
                raise SourceError(
                    f"refusing to download from {shown} {problem}: downloads may only reach public "
                    "internet addresses (an operator can allow a network with DOWNLOAD_ALLOW_NETWORKS)",
                    error_code="SSRF_BLOCKED",
                    details={"host": host, "address": str(ip)},
                )
        if text not in checked:
            checked.append(text)
    if not checked:
        raise SourceError(f"{host!r} has no address", error_code="SOURCE_NOT_FOUND")
    return checked


# --- URLs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A checked URL: what one HTTP request of a download talks to."""

    url: str
    scheme: str
    host: str  # lower case, IDNA (ASCII), no brackets
    port: int
    request_target: str  # path and query, as sent in the request line

    @property
    def ip_literal(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def parse_target(url: str, *, allow_http: bool) -> Target:
    """Check a URL against the rules every download follows (``SOURCE_URL_FORBIDDEN`` otherwise)."""

    def forbidden(problem: str) -> SourceError:
        return SourceError(f"{url!r}: {problem}", error_code="SOURCE_URL_FORBIDDEN")

    if _has_control_or_space(url):
        raise forbidden("URLs may not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        raise forbidden("plain http is not allowed; use https (an operator can allow http with DOWNLOAD_ALLOW_HTTP)")
    if scheme not in ("https", "http"):
        raise forbidden(f"the {scheme or 'missing'} scheme is not allowed; use https")
    if "@" in parts.netloc:
        raise forbidden("credentials in URLs are not accepted (they would end up in results and logs)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise forbidden("the URL has no host")
    try:
        port = parts.port if parts.port is not None else 443 if scheme == "https" else 80
    except ValueError:
        raise forbidden("the port is not a number between 0 and 65535") from None
    if port == 0:
        raise forbidden("port 0 cannot be connected to")
    try:
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise forbidden("the host name is not a valid internationalised domain name") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not path.isascii():
        path = quote(path, safe="/%:@!$&'()*+,;=?~-._")
    return Target(url=url, scheme=scheme, host=ascii_host.lower(), port=port, request_target=path)


def redirect_target(current: Target, location: str, *, allow_http: bool) -> Target:
    """The next hop of a redirect, checked like a first URL; https may never lead to http."""
    following = parse_target(urljoin(current.url, location.strip()), allow_http=allow_http)
    if current.scheme == "https" and following.scheme != "https":
        raise SourceError(
            f"{current.url} redirects to {following.url}: a redirect from https to plain http is refused",
            error_code="SOURCE_URL_FORBIDDEN",
        )
    return following


# --- time ---------------------------------------------------------------------------------------


class Deadline:
    """The overall time budget of one download (the request's ``timeout``)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._expires_at = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._expires_at - self._clock())

    def expired(self) -> bool:
        return self.remaining() <= 0

    def error(self, what: str) -> DownloadError:
        return DownloadError(
            f"{what} did not finish within the request's timeout of {self.seconds:g} s",
            error_code="DOWNLOAD_TIMEOUT",
        )


class _Watchdog:
    """Shuts a connection down when the deadline passes, waking any read blocked on it."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        # A duplicate descriptor of the same socket: shutting it down ends the connection whatever
        # wraps the original (TLS), and it can never refer to an unrelated, reused descriptor.
        self._handle = sock.dup()
        self._lock = threading.Lock()
        self.fired = False
        self._timer = threading.Timer(deadline.remaining(), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._handle.fileno() < 0:
                return
            self.fired = True
            try:
                self._handle.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._handle.close()


# --- transport ----------------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses of ``host`` (one DNS lookup)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise SourceError(
                f"host {host!r} does not exist (DNS: {exc.strerror})", error_code="SOURCE_NOT_FOUND"
            ) from exc
        raise DownloadError(f"could not resolve host {host!r} (DNS: {exc.strerror})") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def tcp_connect(address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to an IP address (never a name: nothing is resolved here)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


@lru_cache(maxsize=2)
def default_tls_context(verify: bool) -> ssl.SSLContext:
    """TLS 1.2+, certificates checked against certifi's bundle (or the system's) unless ``verify`` is off."""
    try:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True)
class Transport:
    """What touches the network: DNS, TCP connections and TLS contexts (replaceable in tests)."""

    resolve: Resolver = system_resolver
    connect: Connector = tcp_connect
    tls_context: Callable[[bool], ssl.SSLContext] = default_tls_context


@dataclass(frozen=True)
class NetworkPolicy:
    allow: AllowList = field(default_factory=AllowList)
    allow_http: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_redirects: int = 5
    verify_ssl: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, *, verify_ssl: bool = True) -> NetworkPolicy:
        return cls(
            allow=AllowList.parse(settings.download_allow_networks),
            allow_http=settings.download_allow_http,
            connect_timeout=settings.download_connect_timeout,
            read_timeout=settings.download_read_timeout,
            max_redirects=settings.download_max_redirects,
            verify_ssl=verify_ssl,
        )


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket that is already connected (to a checked address)."""

    def __init__(self, host: str, port: int, sock: socket.socket, default_port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.default_port = default_port  # the Host header omits the scheme's default port
        self.sock = sock

    def connect(self) -> None:
        raise RuntimeError("a pinned connection never reconnects")


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
        watchdog: _Watchdog | None = None
        try:
            watchdog = _Watchdog(sock, deadline)
            sock.settimeout(min(self.policy.read_timeout, max(deadline.remaining(), 0.001)))
            if target.scheme == "https":
                context = self.transport.tls_context(self.policy.verify_ssl)
                sock = context.wrap_socket(sock, server_hostname=target.host, do_handshake_on_connect=False)
                sock.do_handshake()
            connection = _PinnedConnection(
                target.host, target.port, sock, 443 if target.scheme == "https" else 80, self.policy.read_timeout
            )
            sent = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close", **headers}
            connection.request(method, target.request_target, body=body, headers=sent)
            raw = connection.getresponse()
        except AttuneError:
            _close_quietly(sock, watchdog)
            raise
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            _close_quietly(sock, watchdog)
            raise _translate(exc, target, watchdog, deadline, self.policy.read_timeout) from exc
        response = HttpResponse(target, raw, sock, watchdog, deadline, max_bytes, self.policy)
        if response.length is not None and response.length > max_bytes:
            response.close()
            raise SourceError(
                f"{target.url} announces {response.length} bytes; the limit is {max_bytes}",
                error_code="DOWNLOAD_TOO_LARGE",
            )
        return response


def _close_quietly(sock: socket.socket, watchdog: _Watchdog | None) -> None:
    if watchdog is not None:
        watchdog.cancel()
    try:
        sock.close()
    except OSError:
        pass


def _status_error(target: Target, status: int, reason: str) -> AttuneError:
    message = f"{target.url} answered HTTP {status} {reason}".rstrip()
    if status in _TRANSIENT_STATUSES:
        return DownloadError(message + " (the server may recover: retry later)", error_code="DOWNLOAD_HTTP_ERROR")
    if status in (401, 403, 404):
        message += ": check the URL (private repositories and archives cannot be downloaded)"
    return SourceError(message, error_code="DOWNLOAD_HTTP_ERROR", details={"status": status})


def _translate(
    exc: BaseException, target: Target, watchdog: _Watchdog | None, deadline: Deadline, read_timeout: float
) -> AttuneError:
    if (watchdog is not None and watchdog.fired) or (isinstance(exc, TimeoutError) and deadline.remaining() < 0.05):
        return deadline.error(f"downloading {target.url}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SourceError(
            f"{target.url}: the server's TLS certificate could not be verified ({exc.verify_message}); "
            "use verify_ssl: false only for a server you trust",
            error_code="DOWNLOAD_TLS_ERROR",
        )
    if isinstance(exc, TimeoutError):
        return DownloadError(
            f"{target.url}: the server sent nothing for {read_timeout:g} s", error_code="DOWNLOAD_TIMEOUT"
        )
    if isinstance(exc, ssl.SSLError):
        return SourceError(f"{target.url}: TLS failed ({exc})", error_code="DOWNLOAD_TLS_ERROR")
    if isinstance(exc, http.client.IncompleteRead | http.client.RemoteDisconnected | ConnectionError):
        return DownloadError(f"{target.url}: the connection closed early ({exc})", error_code="DOWNLOAD_INCOMPLETE")
    if isinstance(exc, http.client.HTTPException):
        return SourceError(
            f"{target.url}: the server's answer is not valid HTTP ({type(exc).__name__})",
            error_code="DOWNLOAD_HTTP_ERROR",
        )
    return DownloadError(f"{target.url}: the download failed ({exc})", error_code="DOWNLOAD_INCOMPLETE")


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
        watchdog: _Watchdog,
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
            if self._remaining is not None:
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
            raise _translate(exc, self.target, self._watchdog, self._deadline, self._read_timeout) from exc
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
