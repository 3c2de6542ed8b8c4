"""attune_packs.sources.http: URL rules, address checks, pinning, redirects, deadlines and byte caps.

No socket reaches any network here: DNS is an injected resolver and "connections" are one end of a
``socket.socketpair()`` whose other end a scripted server thread answers.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from attune_packs.errors import AttuneError, DownloadError, SourceError
from attune_packs.sources.http import (
    AllowList,
    Deadline,
    HttpClient,
    NetworkPolicy,
    Transport,
    address_problem,
    check_addresses,
    parse_target,
    redirect_target,
)

PUBLIC = "93.184.216.34"

# --- a scripted network ---------------------------------------------------------------------------

Script = Callable[[socket.socket], None]


def answer(raw: bytes, *, close: bool = True) -> Script:
    def serve(server: socket.socket) -> None:
        server.sendall(raw)
        if close:
            server.shutdown(socket.SHUT_WR)

    return serve


def http_answer(
    status: str = "200 OK", body: bytes = b"", headers: Sequence[str] = (), *, length: int | None = None
) -> Script:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body) if length is None else length}", *headers]
    return answer(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def redirect(location: str, status: str = "302 Found") -> Script:
    return http_answer(status, headers=[f"Location: {location}"])


@dataclass
class FakeNetwork:
    """Resolver and connector spies; each connection is answered by the next script."""

    dns: dict[str, list[Sequence[str]]] = field(default_factory=dict)  # host -> answers, one per lookup
    scripts: list[Script] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        answers = self.dns[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        self.connections.append((address, port))
        client, server = socket.socketpair()
        script = self.scripts.pop(0)
        threading.Thread(target=self._serve, args=(server, script), daemon=True).start()
        return client

    def _serve(self, server: socket.socket, script: Script) -> None:
        with server:
            request = b""
            while b"\r\n\r\n" not in request:
                data = server.recv(65536)
                if not data:
                    return
                request += data
            self.requests.append(request)
            try:
                script(server)
            except OSError:
                pass  # the client hung up first

    @property
    def transport(self) -> Transport:
        return Transport(resolve=self.resolve, connect=self.connect)


def client(net: FakeNetwork, **policy: object) -> HttpClient:
    policy = {"allow_http": True, **policy}
    return HttpClient(NetworkPolicy(**policy), net.transport)  # type: ignore[arg-type]


def fetch(http: HttpClient, url: str, *, max_bytes: int = 1 << 20, seconds: float = 10.0) -> bytes:
    with http.open(url, deadline=Deadline(seconds), max_bytes=max_bytes) as response:
        return response.read()


def failure(call: Callable[[], object]) -> AttuneError:
    with pytest.raises(AttuneError) as caught:
        call()
    return caught.value


# --- addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link-local"),  # instance metadata
        ("169.254.170.2", "link-local"),  # ECS / CodeBuild credentials
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("192.0.0.9", "IETF protocol"),  # is_global in Python 3.11: refused anyway
        ("198.18.0.1", "benchmarking"),
        ("203.0.113.7", "documentation"),
        ("224.0.0.251", "multicast"),  # is_global in Python 3.11: refused anyway
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged by the IPv4 address inside
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b:1::1", "NAT64"),
        ("::127.0.0.1", "reserved IPv6"),  # IPv4-compatible (is_global in 3.11)
        ("2002:7f00:1::", "6to4"),  # is_global in 3.11, not in 3.13: refused in every version
        ("2001:db8::1", "documentation"),
        ("2001::1", "IETF protocol"),  # Teredo
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, label: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and label in problem


@pytest.mark.parametrize(
    "address", [PUBLIC, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_one_private_address_among_public_ones_refuses_the_host() -> None:
    error = failure(lambda: check_addresses("mixed.example", [PUBLIC, "10.0.0.5"], AllowList()))
    assert error.error_code == "SSRF_BLOCKED"
    assert error.details == {"host": "mixed.example", "address": "10.0.0.5"}
    assert "private" in error.message and "DOWNLOAD_ALLOW_NETWORKS" in error.message


def test_the_allow_list_takes_networks_and_host_names() -> None:
    allow = AllowList.parse(["127.0.0.0/8", " ::1 ", "git.internal.", ""])
    assert check_addresses("localhost", ["127.0.0.1", "::1", "::ffff:127.0.0.1"], allow) == [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
    ]
    assert check_addresses("git.internal", ["10.9.9.9"], allow) == ["10.9.9.9"]
    assert failure(lambda: check_addresses("elsewhere", ["10.9.9.9"], allow)).error_code == "SSRF_BLOCKED"


def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    assert failure(lambda: check_addresses("odd", ["not-an-ip"], AllowList())).error_code == "SSRF_BLOCKED"


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://packs.example/a.tar.gz",  # plain http while not allowed
        "ftp://packs.example/a.tar.gz",
        "file:///etc/passwd",
        "gopher://packs.example/",
        "https://user:secret@packs.example/a.tar.gz",
        "https://token@packs.example/a.tar.gz",
        "https://packs.example/a b.tar.gz",
        "https://packs.example/a.tar.gz\r\nX-Injected: 1",
        "https:///a.tar.gz",
        "https://packs.example:99999/a.tar.gz",
        "https://packs.example:0/a.tar.gz",
    ],
)
def test_urls_outside_the_rules_are_forbidden(url: str) -> None:
    assert failure(lambda: parse_target(url, allow_http=False)).error_code == "SOURCE_URL_FORBIDDEN"


def test_a_checked_url_knows_its_host_port_and_request_target() -> None:
    target = parse_target("https://Packs.Example./dl/a.tar.gz?v=1#frag", allow_http=False)
    assert (target.scheme, target.host, target.port, target.request_target) == (
        "https",
        "packs.example",
        443,
        "/dl/a.tar.gz?v=1",
    )
    assert parse_target("http://packs.example:8080", allow_http=True).request_target == "/"
    assert parse_target("https://bücher.example/x", allow_http=False).host == "xn--bcher-kva.example"
    assert parse_target("https://[::1]:8443/x", allow_http=False).ip_literal == ipaddress.ip_address("::1")


def test_redirects_resolve_relative_locations_and_never_downgrade_to_http() -> None:
    start = parse_target("https://packs.example/a/b.tar.gz", allow_http=True)
    assert redirect_target(start, "../c.tar.gz", allow_http=True).url == "https://packs.example/c.tar.gz"
    assert redirect_target(start, "//cdn.example/x.tgz", allow_http=True).host == "cdn.example"
    downgrade = failure(lambda: redirect_target(start, "http://packs.example/b.tar.gz", allow_http=True))
    assert downgrade.error_code == "SOURCE_URL_FORBIDDEN" and "https to plain http" in downgrade.message
    assert failure(lambda: redirect_target(start, "file:///etc/passwd", allow_http=True)).error_code == (
        "SOURCE_URL_FORBIDDEN"
    )


# --- refused before any connection ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://169.254.170.2/v2/credentials",
        "https://127.0.0.1/x.tar.gz",
        "https://[::1]/x.tar.gz",
        "https://[::ffff:127.0.0.1]/x.tar.gz",
        "https://[fc00::1]/x.tar.gz",
        "https://100.64.1.1/x.tar.gz",
        "https://10.0.0.1/x.tar.gz",
        "https://0.0.0.0/x.tar.gz",
    ],
)
def test_literal_non_public_addresses_are_refused_without_dns_or_connection(url: str) -> None:
    net = FakeNetwork()
    assert failure(lambda: fetch(client(net), url)).error_code == "SSRF_BLOCKED"
    assert net.lookups == [] and net.connections == []


@pytest.mark.parametrize(
    "answers", [["127.0.0.1"], ["169.254.169.254"], ["100.100.100.200"], ["::1"], [PUBLIC, "192.168.1.1"]]
)
def test_names_resolving_to_non_public_addresses_are_refused_without_connection(answers: list[str]) -> None:
    net = FakeNetwork(dns={"packs.example": [answers]})
    assert failure(lambda: fetch(client(net), "https://packs.example/x.tar.gz")).error_code == "SSRF_BLOCKED"
    assert net.lookups == ["packs.example"] and net.connections == []


# --- pinning, proxies, what is sent ----------------------------------------------------------------


def test_the_connection_goes_to_the_checked_address_even_if_dns_changes_its_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: a second lookup would say loopback. There is no second lookup.
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("https_proxy", "http://10.0.0.1:3128")
    net = FakeNetwork(dns={"packs.example": [[PUBLIC], ["127.0.0.1"]]}, scripts=[http_answer(body=b"pack bytes")])
    assert fetch(client(net), "http://packs.example:8080/dl/x.tar.gz?v=2") == b"pack bytes"
    assert net.lookups == ["packs.example"]
    assert net.connections == [(PUBLIC, 8080)], "the checked address, never the proxy from the environment"
    request_line, *headers = net.requests[0].decode().split("\r\n")
    assert request_line == "GET /dl/x.tar.gz?v=2 HTTP/1.1"
    assert "Host: packs.example:8080" in headers
    assert "Accept-Encoding: identity" in headers and "Connection: close" in headers


def test_every_redirect_hop_is_resolved_and_checked_again() -> None:
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC], ["127.0.0.1"]]},
        scripts=[redirect("/moved/x.tar.gz")],
    )
    error = failure(lambda: fetch(client(net), "http://packs.example/x.tar.gz"))
    assert error.error_code == "SSRF_BLOCKED"
    assert net.lookups == ["packs.example", "packs.example"] and net.connections == [(PUBLIC, 80)]


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.1]/x", "http://internal.example/x"],
)
def test_a_redirect_to_a_non_public_address_is_refused_before_connecting(location: str) -> None:
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC]], "internal.example": [["10.1.1.1"]]}, scripts=[redirect(location, "301 Moved")]
    )
    assert failure(lambda: fetch(client(net), "http://packs.example/x.tar.gz")).error_code == "SSRF_BLOCKED"
    assert net.connections == [(PUBLIC, 80)]


def test_redirects_are_followed_up_to_the_limit() -> None:
    hops = [redirect(f"/hop{i}") for i in range(3)]
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[*hops, http_answer(body=b"done")])
    assert fetch(client(net, max_redirects=3), "http://packs.example/start") == b"done"
    assert [r.split(b"\r\n")[0] for r in net.requests][-1] == b"GET /hop2 HTTP/1.1"

    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[redirect(f"/hop{i}") for i in range(4)])
    error = failure(lambda: fetch(client(net, max_redirects=3), "http://packs.example/start"))
    assert error.error_code == "TOO_MANY_REDIRECTS" and len(net.connections) == 4


def test_a_redirect_without_location_is_an_http_error() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer("302 Found")])
    assert failure(lambda: fetch(client(net), "http://packs.example/x")).error_code == "DOWNLOAD_HTTP_ERROR"


# --- status codes, sizes, early ends ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retriable"),
    [("404 Not Found", False), ("403 Forbidden", False), ("503 Busy", True), ("429 Slow Down", True)],
)
def test_http_errors_say_whether_a_retry_can_help(status: str, retriable: bool) -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(status, b"nope")])
    error = failure(lambda: fetch(client(net), "http://packs.example/x"))
    assert error.error_code == "DOWNLOAD_HTTP_ERROR" and error.retriable is retriable
    assert isinstance(error, DownloadError if retriable else SourceError)


def test_an_announced_length_over_the_cap_is_refused_before_reading() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=b"x" * 10, length=10_000)])
    error = failure(lambda: client(net).open("http://packs.example/x", deadline=Deadline(5), max_bytes=1000))
    assert error.error_code == "DOWNLOAD_TOO_LARGE" and "announces 10000 bytes" in error.message


def test_a_body_without_length_is_cut_at_the_cap() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1000\r\n" + b"y" * 4096 + b"\r\n" * 1
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC]]}, scripts=[answer(chunked + b"1000\r\n" + b"y" * 4096 + b"\r\n0\r\n\r\n")]
    )
    assert failure(lambda: fetch(client(net), "http://packs.example/x", max_bytes=5000)).error_code == (
        "DOWNLOAD_TOO_LARGE"
    )
    close_delimited = b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 9000
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[answer(close_delimited)])
    assert failure(lambda: fetch(client(net), "http://packs.example/x", max_bytes=5000)).error_code == (
        "DOWNLOAD_TOO_LARGE"
    )


def test_more_bytes_than_announced_are_refused() -> None:
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=b"a" * 100 + b"SURPLUS", length=100)]
    )
    error = failure(lambda: fetch(client(net), "http://packs.example/x"))
    assert error.error_code == "DOWNLOAD_TOO_LARGE" and "more than the 100 bytes it announced" in error.message


def test_a_body_that_ends_early_is_incomplete_and_retriable() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=b"a" * 100, length=1000)])
    error = failure(lambda: fetch(client(net), "http://packs.example/x"))
    assert error.error_code == "DOWNLOAD_INCOMPLETE" and error.retriable
    assert "after 100 of the 1000 announced bytes" in error.message


def test_a_chunked_body_that_ends_early_is_incomplete() -> None:
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC]]},
        scripts=[answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n" + b"q" * 10)],
    )
    error = failure(lambda: fetch(client(net), "http://packs.example/x"))
    assert error.error_code == "DOWNLOAD_INCOMPLETE" and error.retriable


def test_garbage_instead_of_http_is_an_http_error() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[answer(b"SSH-2.0-OpenSSH_9.0\r\n")])
    assert failure(lambda: fetch(client(net), "http://packs.example/x")).error_code == "DOWNLOAD_HTTP_ERROR"


# --- time -----------------------------------------------------------------------------------------


def trickle(head: bytes, every: float) -> Script:
    def serve(server: socket.socket) -> None:
        server.sendall(head)
        for _ in range(2000):
            time.sleep(every)
            server.sendall(b"x")

    return serve


def test_a_trickling_body_is_cut_off_at_the_deadline() -> None:
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC]]},
        scripts=[trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", 0.02)],
    )
    started = time.monotonic()
    error = failure(lambda: fetch(client(net, read_timeout=5.0), "http://packs.example/x", seconds=0.6))
    assert error.error_code == "DOWNLOAD_TIMEOUT" and error.retriable
    assert "timeout of 0.6 s" in error.message
    assert time.monotonic() - started < 3


def test_trickling_headers_are_cut_off_at_the_deadline_too() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[trickle(b"HTTP/1.1 200 OK\r\nX-Slow: ", 0.02)])
    started = time.monotonic()
    error = failure(lambda: fetch(client(net, read_timeout=5.0), "http://packs.example/x", seconds=0.6))
    assert error.error_code == "DOWNLOAD_TIMEOUT"
    assert time.monotonic() - started < 3


def test_a_silent_server_hits_the_read_timeout() -> None:
    def silent(server: socket.socket) -> None:
        server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        time.sleep(2)

    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[silent])
    error = failure(lambda: fetch(client(net, read_timeout=0.3), "http://packs.example/x", seconds=30))
    assert error.error_code == "DOWNLOAD_TIMEOUT" and "sent nothing for 0.3 s" in error.message


def test_an_expired_deadline_opens_no_connection() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]})
    assert failure(lambda: fetch(client(net), "http://packs.example/x", seconds=0)).error_code == "DOWNLOAD_TIMEOUT"
    assert net.connections == []


def test_the_deadline_counts_from_its_creation() -> None:
    now = [100.0]
    deadline = Deadline(5, clock=lambda: now[0])
    now[0] = 103.5
    assert deadline.remaining() == pytest.approx(1.5) and not deadline.expired()
    now[0] = 105.0
    assert deadline.expired()
