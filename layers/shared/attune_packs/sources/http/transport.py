"""The pinned connection: DNS, TCP and TLS behind a replaceable :class:`Transport`, a connection
that only ever talks to a checked address, and the deadline whose watchdog cuts a slow server off."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from attune_packs.errors import AttuneError, DownloadError, SourceError
from attune_packs.sources.http.policy import Target

Resolver = Callable[[str, int], Sequence[str]]
Connector = Callable[[str, int, float], socket.socket]

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


class Watchdog:
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


class PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection over a socket that is already connected (to a checked address)."""

    def __init__(self, host: str, port: int, sock: socket.socket, default_port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.default_port = default_port  # the Host header omits the scheme's default port
        self.sock = sock

    def connect(self) -> None:
        raise RuntimeError("a pinned connection never reconnects")


def close_quietly(sock: socket.socket, watchdog: Watchdog | None) -> None:
    if watchdog is not None:
        watchdog.cancel()
    try:
        sock.close()
    except OSError:
        pass


def translate_failure(
    exc: BaseException, target: Target, watchdog: Watchdog | None, deadline: Deadline, read_timeout: float
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
