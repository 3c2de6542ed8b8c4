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

Modules:

* :mod:`~attune_packs.sources.http.policy`: URL and address policy (:func:`parse_target`,
  :func:`redirect_target`, :func:`address_problem`, :func:`check_addresses`, :class:`NetworkPolicy`);
* :mod:`~attune_packs.sources.http.transport`: the pinned connection (:class:`Transport`, DNS, TCP,
  TLS) and the :class:`Deadline` with its watchdog;
* :mod:`~attune_packs.sources.http.response`: bounded streaming of a body (:class:`HttpResponse`);
* :mod:`~attune_packs.sources.http.client`: :class:`HttpClient`, requests and redirects.
"""

from attune_packs.sources.http.client import HttpClient
from attune_packs.sources.http.policy import (
    AllowList,
    NetworkPolicy,
    Target,
    address_problem,
    check_addresses,
    parse_target,
    redirect_target,
)
from attune_packs.sources.http.response import HttpResponse
from attune_packs.sources.http.transport import Deadline, Transport, default_tls_context, system_resolver, tcp_connect

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
    "default_tls_context",
    "parse_target",
    "redirect_target",
    "system_resolver",
    "tcp_connect",
]
