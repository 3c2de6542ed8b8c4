"""URL and address policy: which URLs a download may request (https, no credentials, checked
redirects) and which addresses it may connect to (public ones, or those an operator allows)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit

from attune_packs.errors import SourceError

if TYPE_CHECKING:
    from attune_packs.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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
