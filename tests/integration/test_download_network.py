"""The download stage against real servers on loopback: archives over HTTP and HTTPS (a self-signed
certificate made here), Git repositories served by dulwich's smart-HTTP app, hostile servers that
trickle, lie about lengths, redirect where they should not, or present untrusted certificates.

S3 is moto (in process); every test also checks what is left in the bucket. Loopback is reachable
only because the settings allow 127.0.0.0/8 (``DOWNLOAD_ALLOW_NETWORKS``), as on the local stack.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import boto3
import pytest
from conftest import Harness
from dulwich.objects import Blob, Commit, Tag, Tree
from dulwich.repo import MemoryRepo
from dulwich.server import DictBackend
from dulwich.web import make_wsgi_chain
from moto import mock_aws

from attune_cli.local_stack import LocalStack
from attune_packs.adapters.s3 import S3ObjectStore
from attune_packs.models import DownloadRequest, DownloadResponse
from attune_packs.services.stages.download import download_packs
from attune_packs.settings import Settings
from attune_packs.sources.http import Transport, default_tls_context, system_resolver, tcp_connect
from testkit.pack_archives import tar_gz

BUCKET = "packs"
HOST = "packs.test"  # resolved by the test resolver to 127.0.0.1; the certificate names it


# --- TLS material ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    trusting_client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return Tls(server, client)


# --- servers --------------------------------------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], None]


class _Quiet:
    def log_message(self, *_args: Any) -> None:
        pass


class _Routes(_Quiet, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[str, Handler] = {}
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        handler = self.routes.get(self.path.split("?")[0])
        if handler is None:
            self.send_error(404)
            return
        handler(self)


class _QuietThreadingServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up on purpose (timeouts, refused certificates)


@dataclass
class WebServer:
    routes: dict[str, Handler]
    hits: list[str]
    port: int
    scheme: str

    def url(self, path: str, host: str = HOST) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _start_web(tls_context: ssl.SSLContext | None) -> tuple[WebServer, ThreadingHTTPServer]:
    routes: dict[str, Handler] = {}
    hits: list[str] = []
    handler = type("Routes", (_Routes,), {"routes": routes, "hits": hits})
    server = _QuietThreadingServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    scheme = "https" if tls_context is not None else "http"
    return WebServer(routes, hits, server.server_address[1], scheme), server


@pytest.fixture
def web() -> Iterator[WebServer]:
    site, server = _start_web(None)
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture
def secure_web(tls: Tls) -> Iterator[WebServer]:
    site, server = _start_web(tls.server)
    yield site
    server.shutdown()
    server.server_close()


def serve_bytes(body: bytes, content_type: str = "application/octet-stream") -> Handler:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle


def serve_redirect(location: str, status: int = 302) -> Handler:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        request.send_header("Location", location)
        request.send_header("Content-Length", "0")
        request.end_headers()

    return handle


def serve_raw(head: bytes, body: bytes = b"", *, then_sleep: float = 0.0, trickle: float = 0.0) -> Handler:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.close_connection = True
        try:
            request.wfile.write(head)
            if trickle:
                for index in range(len(body)):
                    request.wfile.write(body[index : index + 1])
                    request.wfile.flush()
                    time.sleep(trickle)
            else:
                request.wfile.write(body)
            request.wfile.flush()
            time.sleep(then_sleep)
        except OSError:
            pass  # the client gave up, as it should

    return handle


# --- Git over smart HTTP (dulwich.web under wsgiref) ------------------------------------------------


class _GitHandler(_Quiet, WSGIRequestHandler):
    def handle(self) -> None:  # wsgiref's handler, without its error printing
        self.raw_requestline = self.rfile.readline(65537)
        if not self.parse_request():
            return
        handler = _SilentServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ())
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


class _SilentServerHandler(ServerHandler):
    def log_exception(self, exc_info: Any) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@dataclass
class GitServer:
    repos: dict[str, MemoryRepo]
    port: int
    scheme: str
    requests: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.scheme}://{HOST}:{self.port}/{name}"


def _start_git(repos: dict[str, MemoryRepo], tls_context: ssl.SSLContext | None) -> tuple[GitServer, WSGIServer]:
    app = make_wsgi_chain(DictBackend({f"/{name}": repo for name, repo in repos.items()}))
    site = GitServer(repos, 0, "https" if tls_context else "http")

    def routed(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        site.requests.append(path)
        if path.startswith("/renamed.git/"):  # a moved repository, as GitHub redirects renames
            query = environ.get("QUERY_STRING")
            start_response(
                "301 Moved Permanently",
                [("Location", path.replace("/renamed.git/", "/pack.git/", 1) + (f"?{query}" if query else ""))],
            )
            return [b""]
        return app(environ, start_response)

    server = _ThreadingWSGIServer(("127.0.0.1", 0), _GitHandler)
    server.set_app(routed)
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    site.port = server.server_address[1]
    return site, server


class RepoBuilder:
    """A Git repository built object by object (no git binary)."""

    def __init__(self) -> None:
        self.repo = MemoryRepo()
        self.clock = 1_700_000_000

    def _tree(self, files: dict[str, Any]) -> bytes:
        tree = Tree()
        for name, value in files.items():
            if isinstance(value, dict):
                tree.add(name.encode(), 0o040000, self._tree(value))
                continue
            mode, data = value if isinstance(value, tuple) else (0o100644, value)
            blob = Blob.from_string(data)
            self.repo.object_store.add_object(blob)
            tree.add(name.encode(), mode, blob.id)
        self.repo.object_store.add_object(tree)
        return tree.id

    def commit(self, files: dict[str, Any], *, branch: bytes = b"refs/heads/main", message: bytes = b"c") -> bytes:
        commit = Commit()
        commit.tree = self._tree(files)
        parent = self.repo.refs.as_dict().get(branch)
        commit.parents = [parent] if parent else []
        commit.author = commit.committer = b"Dev <dev@example.com>"
        self.clock += 60
        commit.author_time = commit.commit_time = self.clock
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message
        self.repo.object_store.add_object(commit)
        self.repo.refs[branch] = commit.id
        if b"HEAD" not in self.repo.refs:
            self.repo.refs.set_symbolic_ref(b"HEAD", branch)
        return commit.id

    def tag(self, name: str, commit: bytes, *, annotated: bool = True) -> None:
        if not annotated:
            self.repo.refs[f"refs/tags/{name}".encode()] = commit
            return
        tag = Tag()
        tag.object = (Commit, commit)
        tag.name = name.encode()
        tag.tagger = b"Dev <dev@example.com>"
        tag.tag_time, tag.tag_timezone, tag.message = self.clock, 0, b"release"
        self.repo.object_store.add_object(tag)
        self.repo.refs[f"refs/tags/{name}".encode()] = tag.id


def pack_yaml(ref: str, version: str) -> bytes:
    return f'ref: {ref}\nname: {ref}\nversion: "{version}"\ndescription: served by a test git server\n'.encode()


def pack_tree(ref: str, version: str) -> dict[str, Any]:
    return {
        "pack.yaml": pack_yaml(ref, version),
        "actions": {"hello.yaml": b"name: hello\nrunner_type: python-script\nentry_point: hello.py\n", "hello.py": b""},
    }


@pytest.fixture(scope="module")
def repos() -> dict[str, Any]:
    """pack.git: 1.0.0 (tag v1.0.0, annotated), 1.1.0 (tag 1.1.0, light), main at 2.0.0-dev in pack/."""
    builder = RepoBuilder()
    first = builder.commit(pack_tree("gitpack", "1.0.0"))
    builder.tag("v1.0.0", first)
    second = builder.commit(pack_tree("gitpack", "1.1.0"))
    builder.tag("1.1.0", second, annotated=False)
    head = builder.commit({"pack": pack_tree("gitpack", "2.0.0"), "README.md": b"# gitpack\n", "docs": {"a.md": b"x"}})
    feature = builder.commit(pack_tree("gitpack", "3.0.0"), branch=b"refs/heads/feature/next")
    links = RepoBuilder()
    links.commit({**pack_tree("linked", "1.0.0"), "creds": (0o120000, b"/root/.aws/credentials")})
    big = RepoBuilder()
    big.commit({**pack_tree("bigpack", "1.0.0"), "blob.bin": os.urandom(200_000)})  # incompressible
    return {
        "repos": {"pack.git": builder.repo, "links.git": links.repo, "big.git": big.repo},
        "commits": {"v1.0.0": first, "1.1.0": second, "main": head, "feature": feature},
    }


@pytest.fixture
def git(repos: dict[str, Any]) -> Iterator[GitServer]:
    site, server = _start_git(repos["repos"], None)
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture
def secure_git(repos: dict[str, Any], tls: Tls) -> Iterator[GitServer]:
    site, server = _start_git(repos["repos"], tls.server)
    yield site
    server.shutdown()
    server.server_close()


# --- the stage under test ---------------------------------------------------------------------------


@dataclass
class Network:
    """The real transport, with DNS for HOST and a record of every lookup and connection."""

    dns: dict[str, list[list[str]]] = field(default_factory=lambda: {HOST: [["127.0.0.1"]]})
    lookups: list[str] = field(default_factory=list)
    connections: list[tuple[str, int]] = field(default_factory=list)
    tls_client: ssl.SSLContext | None = None

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.dns:
            return system_resolver(host, port)
        answers = self.dns[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def connect(self, address: str, port: int, timeout: float) -> socket.socket:
        self.connections.append((address, port))
        return tcp_connect(address, port, timeout)

    def tls_context(self, verify: bool) -> ssl.SSLContext:
        if verify and self.tls_client is not None:
            return self.tls_client
        return default_tls_context(verify)

    @property
    def transport(self) -> Transport:
        return Transport(resolve=self.resolve, connect=self.connect, tls_context=self.tls_context)


@dataclass
class Stage:
    store: S3ObjectStore
    network: Network
    environment: dict[str, str]

    def run(self, *packs: str, **options: Any) -> DownloadResponse:
        request = DownloadRequest(packs=list(packs), **options)
        return download_packs(
            request, self.store, Settings.model_validate(self.environment), transport=self.network.transport
        )

    def keys(self) -> list[str]:
        listing = self.store._s3.list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture
def stage() -> Iterator[Stage]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        environment = {
            "BUCKET_NAME": BUCKET,
            "DOWNLOAD_ALLOW_NETWORKS": "127.0.0.0/8",
            "DOWNLOAD_ALLOW_HTTP": "true",
            "DOWNLOAD_READ_TIMEOUT": "5",
        }
        yield Stage(S3ObjectStore(client, BUCKET), Network(), environment)


def tar_pack(ref: str, version: str, *, root: str = "") -> bytes:
    return tar_gz({"pack.yaml": pack_yaml(ref, version), "actions/a.yaml": b"name: a\n"}, root=root)


def failure(response: DownloadResponse) -> tuple[str, bool]:
    [failed] = response.failed_packs
    return failed.error_code, failed.retriable


# --- archives over HTTPS and HTTP -------------------------------------------------------------------


def test_an_https_archive_is_verified_against_trusted_roots_and_stored(
    stage: Stage, secure_web: WebServer, tls: Tls
) -> None:
    body = tar_pack("webpack", "1.0.0", root="webpack-1.0.0/")
    secure_web.routes["/dl/webpack.tar.gz"] = serve_bytes(body)
    stage.network.tls_client = tls.trusting_client
    response = stage.run(secure_web.url("/dl/webpack.tar.gz"))
    [pack] = response.downloaded_packs
    assert (pack.source_type, pack.pack_ref, pack.source_checksum, pack.warnings) == (
        "archive",
        "webpack",
        f"sha256:{hashlib.sha256(body).hexdigest()}",
        [],
    )
    assert stage.keys() == [f"archives/sha256/{pack.checksum.removeprefix('sha256:')}.tar.gz"], "the canonical archive"
    assert stage.network.connections == [("127.0.0.1", secure_web.port)]


def test_an_untrusted_certificate_is_refused_and_nothing_is_stored(stage: Stage, secure_web: WebServer) -> None:
    secure_web.routes["/x.tar.gz"] = serve_bytes(tar_pack("webpack", "1.0.0"))
    response = stage.run(secure_web.url("/x.tar.gz"))
    code, _ = failure(response)
    assert code == "DOWNLOAD_TLS_ERROR" and "verify_ssl" in response.failed_packs[0].error
    assert stage.keys() == [] and secure_web.hits == []


def test_verify_ssl_false_downloads_with_a_warning_in_the_result(stage: Stage, secure_web: WebServer) -> None:
    secure_web.routes["/x.zip"] = serve_bytes(tar_pack("webpack", "1.0.0"))  # the name does not decide the format
    [pack] = stage.run(secure_web.url("/x.zip"), verify_ssl=False).downloaded_packs
    assert pack.archive.endswith(".tar.gz")
    assert pack.warnings == [
        f"TLS certificate verification was disabled (verify_ssl: false) for {HOST}: the server was not authenticated"
    ]


def test_plain_http_only_where_allowed(stage: Stage, web: WebServer) -> None:
    web.routes["/x.tgz"] = serve_bytes(tar_pack("plain", "1.0.0"))
    assert stage.run(web.url("/x.tgz")).success_count == 1
    stage.environment["DOWNLOAD_ALLOW_HTTP"] = "false"
    assert failure(stage.run(web.url("/x.tgz"))) == ("SOURCE_URL_FORBIDDEN", False)


def test_loopback_is_refused_unless_the_operator_allows_it(stage: Stage, web: WebServer) -> None:
    web.routes["/x.tgz"] = serve_bytes(tar_pack("plain", "1.0.0"))
    stage.environment["DOWNLOAD_ALLOW_NETWORKS"] = ""
    response = stage.run(web.url("/x.tgz"), web.url("/x.tgz", host="127.0.0.1"), web.url("/x.tgz", host="[::1]"))
    assert [f.error_code for f in response.failed_packs] == ["SSRF_BLOCKED"] * 3
    assert stage.network.connections == [] and web.hits == []


def test_proxy_settings_in_the_environment_are_ignored(
    stage: Stage, web: WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    web.routes["/x.tgz"] = serve_bytes(tar_pack("plain", "1.0.0"))
    assert stage.run(web.url("/x.tgz")).success_count == 1
    assert stage.network.connections == [("127.0.0.1", web.port)]


# --- redirects ----------------------------------------------------------------------------------------


def test_redirects_are_followed_hop_by_hop_and_each_hop_is_checked(stage: Stage, web: WebServer) -> None:
    web.routes["/a.tgz"] = serve_redirect("/b.tgz", 301)
    web.routes["/b.tgz"] = serve_redirect(web.url("/c.tgz"), 307)
    web.routes["/c.tgz"] = serve_bytes(tar_pack("moved", "1.0.0"))
    assert stage.run(web.url("/a.tgz")).downloaded_packs[0].pack_ref == "moved"
    assert web.hits == ["/a.tgz", "/b.tgz", "/c.tgz"] and stage.network.lookups == [HOST] * 3


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials/",
        "http://[::ffff:169.254.169.254]/latest/",
        "http://100.100.100.200/latest/meta-data/",
        "http://10.0.0.1/x.tgz",
    ],
)
def test_a_redirect_to_a_private_or_metadata_address_is_refused_without_connecting(
    stage: Stage, web: WebServer, location: str
) -> None:
    web.routes["/x.tgz"] = serve_redirect(location)
    assert failure(stage.run(web.url("/x.tgz"))) == ("SSRF_BLOCKED", False)
    assert stage.network.connections == [("127.0.0.1", web.port)] and stage.keys() == []


def test_too_many_redirects(stage: Stage, web: WebServer) -> None:
    for hop in range(10):
        web.routes[f"/r{hop}.tgz"] = serve_redirect(f"/r{hop + 1}.tgz")
    stage.environment["DOWNLOAD_MAX_REDIRECTS"] = "3"
    assert failure(stage.run(web.url("/r0.tgz"))) == ("TOO_MANY_REDIRECTS", False)
    assert web.hits == ["/r0.tgz", "/r1.tgz", "/r2.tgz", "/r3.tgz"] and stage.keys() == []


def test_a_redirect_from_https_to_http_is_refused(stage: Stage, secure_web: WebServer, web: WebServer) -> None:
    web.routes["/x.tgz"] = serve_bytes(tar_pack("plain", "1.0.0"))
    secure_web.routes["/x.tgz"] = serve_redirect(web.url("/x.tgz"))
    response = stage.run(secure_web.url("/x.tgz"), verify_ssl=False)
    assert failure(response) == ("SOURCE_URL_FORBIDDEN", False)
    assert "https to plain http" in response.failed_packs[0].error and web.hits == []


# --- servers that misbehave -----------------------------------------------------------------------------


def test_a_trickling_server_is_cut_off_at_the_request_timeout(stage: Stage, web: WebServer) -> None:
    body = tar_pack("slow", "1.0.0")
    web.routes["/slow.tgz"] = serve_raw(
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode(), body, trickle=0.05
    )
    started = time.monotonic()
    response = stage.run(web.url("/slow.tgz"), timeout=2)
    assert failure(response) == ("DOWNLOAD_TIMEOUT", True)
    assert 1.5 < time.monotonic() - started < 6 and stage.keys() == []


def test_a_server_that_never_answers_hits_the_read_timeout(stage: Stage, web: WebServer) -> None:
    web.routes["/mute.tgz"] = serve_raw(b"", then_sleep=5)
    stage.environment["DOWNLOAD_READ_TIMEOUT"] = "0.5"
    started = time.monotonic()
    assert failure(stage.run(web.url("/mute.tgz"))) == ("DOWNLOAD_TIMEOUT", True)
    assert time.monotonic() - started < 4


def test_a_server_sending_more_than_it_announced_is_refused(stage: Stage, web: WebServer) -> None:
    body = tar_pack("liar", "1.0.0")
    web.routes["/more.tgz"] = serve_raw(
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode(), body + b"EXTRA" * 100
    )
    assert failure(stage.run(web.url("/more.tgz"))) == ("DOWNLOAD_TOO_LARGE", False)
    assert stage.keys() == []


def test_a_server_closing_early_is_incomplete_and_retriable(stage: Stage, web: WebServer) -> None:
    body = tar_pack("short", "1.0.0")
    web.routes["/short.tgz"] = serve_raw(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) + 500}\r\n\r\n".encode(), body)
    assert failure(stage.run(web.url("/short.tgz"))) == ("DOWNLOAD_INCOMPLETE", True)
    assert stage.keys() == []


def test_an_archive_over_the_size_limit_is_refused_from_its_announced_length(stage: Stage, web: WebServer) -> None:
    web.routes["/huge.tgz"] = serve_raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 900000000\r\n\r\n", b"\x1f\x8b", then_sleep=1
    )
    stage.environment["MAX_ARCHIVE_BYTES"] = str(10 * 2**20)
    assert failure(stage.run(web.url("/huge.tgz"))) == ("DOWNLOAD_TOO_LARGE", False)


def test_an_html_error_page_is_not_an_archive(stage: Stage, web: WebServer) -> None:
    web.routes["/x.tar.gz"] = serve_bytes(b"<html><body>Rate limited</body></html>", "text/html")
    assert failure(stage.run(web.url("/x.tar.gz"))) == ("ARCHIVE_UNSUPPORTED_FORMAT", False)
    assert stage.keys() == []


def test_dns_answering_differently_later_does_not_move_the_connection(stage: Stage, web: WebServer) -> None:
    # The first answer is checked and pinned; a rebinding answer would only matter to a second lookup.
    web.routes["/x.tgz"] = serve_bytes(tar_pack("pinned", "1.0.0"))
    stage.environment["DOWNLOAD_ALLOW_NETWORKS"] = "127.0.0.1/32"
    stage.network.dns[HOST] = [["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]]
    assert stage.run(web.url("/x.tgz")).success_count == 1
    assert stage.network.lookups == [HOST] and stage.network.connections == [("127.0.0.1", web.port)]
    # A redirect is a new hop: resolved and checked again, and refused now that DNS says otherwise.
    web.routes["/hop.tgz"] = serve_redirect("/x.tgz")
    stage.network.dns[HOST] = [["127.0.0.1"], ["127.0.0.2"]]
    assert failure(stage.run(web.url("/hop.tgz"))) == ("SSRF_BLOCKED", False)


# --- Git repositories ---------------------------------------------------------------------------------


def test_git_sources_at_the_default_branch_a_tag_a_version_a_branch_and_a_commit(
    stage: Stage, git: GitServer, repos: dict[str, Any]
) -> None:
    commits = repos["commits"]
    url = git.url("pack.git")
    response = stage.run(
        url,
        f"{url}@v1.0.0",
        f"{url}@1.1.0",
        f"{url}@feature/next",
        f"{url}@{commits['1.1.0'].decode()}",
    )
    assert response.failed_packs == []
    got = [(p.source_type, p.pack_version, p.git_commit) for p in response.downloaded_packs]
    assert got == [
        ("git", "2.0.0", commits["main"].decode()),  # HEAD -> main, pack in pack/ next to README and docs
        ("git", "1.0.0", commits["v1.0.0"].decode()),  # annotated tag, peeled to its commit
        ("git", "1.1.0", commits["1.1.0"].decode()),  # lightweight tag named like the version
        ("git", "3.0.0", commits["feature"].decode()),
        ("git", "1.1.0", commits["1.1.0"].decode()),  # the same commit by id: same archive
    ]
    archives = [p.archive for p in response.downloaded_packs]
    assert archives[2] == archives[4] and len(set(archives)) == 4
    assert all(key.startswith("archives/sha256/") for key in stage.keys()) and len(stage.keys()) == 4


def test_ref_spec_applies_to_git_urls_without_their_own_ref(stage: Stage, git: GitServer) -> None:
    response = stage.run(git.url("pack.git"), f"{git.url('pack.git')}@main", ref_spec="v1.0.0")
    assert [p.pack_version for p in response.downloaded_packs] == ["1.0.0", "2.0.0"]


def test_a_git_retry_gives_the_same_answer_and_stores_nothing_new(stage: Stage, git: GitServer) -> None:
    source = f"{git.url('pack.git')}@v1.0.0"
    first = stage.run(source).model_dump()
    keys = stage.keys()
    second = stage.run(source).model_dump()
    assert first["downloaded_packs"][0].pop("stored") is True
    assert second["downloaded_packs"][0].pop("stored") is False
    assert first == second and stage.keys() == keys


def test_a_moved_repository_is_followed_through_its_redirect(stage: Stage, git: GitServer) -> None:
    [pack] = stage.run(f"{git.url('renamed.git')}@v1.0.0").downloaded_packs
    assert pack.pack_version == "1.0.0"
    assert git.requests[0] == "/renamed.git/info/refs" and "/pack.git/git-upload-pack" in git.requests


@pytest.mark.parametrize(
    ("ref", "code"),
    [("v9.9.9", "GIT_REF_NOT_FOUND"), ("abc1234", "GIT_REF_NOT_FOUND"), ("1" * 40, "GIT_REF_NOT_FOUND")],
)
def test_refs_that_do_not_exist_fail_alone_and_store_nothing(stage: Stage, git: GitServer, ref: str, code: str) -> None:
    response = stage.run(f"{git.url('pack.git')}@{ref}", f"{git.url('pack.git')}@v1.0.0")
    assert [f.error_code for f in response.failed_packs] == [code] and response.success_count == 1
    assert len(stage.keys()) == 1


def test_a_repository_with_a_symlink_is_refused_like_an_archive(stage: Stage, git: GitServer) -> None:
    assert failure(stage.run(git.url("links.git"))) == ("ARCHIVE_LINK_FORBIDDEN", False)
    assert stage.keys() == []


def test_a_repository_over_the_size_limit_is_refused(stage: Stage, git: GitServer) -> None:
    stage.environment["MAX_ARCHIVE_BYTES"] = str(64 * 1024)
    assert failure(stage.run(git.url("big.git"))) == ("DOWNLOAD_TOO_LARGE", False)
    assert stage.keys() == []


def test_a_web_server_that_is_not_a_git_server(stage: Stage, web: WebServer) -> None:
    web.routes["/repo.git/info/refs"] = serve_bytes(b"0000", "text/plain")
    assert failure(stage.run(web.url("/repo.git"))) == ("GIT_FETCH_FAILED", False)
    web.routes.clear()
    assert failure(stage.run(web.url("/missing.git"))) == ("DOWNLOAD_HTTP_ERROR", False)


def test_git_over_https_verifies_or_warns(stage: Stage, secure_git: GitServer, tls: Tls) -> None:
    url = f"{secure_git.url('pack.git')}@v1.0.0"
    assert failure(stage.run(url)) == ("DOWNLOAD_TLS_ERROR", False)
    [insecure] = stage.run(url, verify_ssl=False).downloaded_packs
    assert insecure.pack_version == "1.0.0" and "verify_ssl: false" in insecure.warnings[0]
    stage.network.tls_client = tls.trusting_client
    [trusted] = stage.run(url).downloaded_packs
    assert trusted.warnings == [] and trusted.archive == insecure.archive


# --- registry entries with Git and web install sources ------------------------------------------------


def test_registry_entries_install_from_git_pinned_by_commit_or_checksum(
    stage: Stage, web: WebServer, git: GitServer, repos: dict[str, Any]
) -> None:
    commits = repos["commits"]
    first = stage.run(f"{git.url('pack.git')}@v1.0.0").downloaded_packs[0]
    entries = [
        {
            "ref": "gitpack",
            "version": "1.0.0",
            "install_sources": [
                {"type": "git", "url": git.url("pack.git"), "ref": "v1.0.0", "checksum": first.source_checksum}
            ],
        },
        {
            "ref": "gitpack",
            "version": "1.1.0",
            "install_sources": [{"type": "git", "url": git.url("pack.git"), "ref": commits["1.1.0"].decode()}],
        },
        {"ref": "webpack", "version": "1.0.0", "install_sources": [{"type": "archive", "url": "a/webpack.tgz"}]},
    ]
    web.routes["/registry/index.json"] = serve_bytes(json.dumps({"packs": entries}).encode(), "application/json")
    web.routes["/registry/a/webpack.tgz"] = serve_bytes(tar_pack("webpack", "1.0.0"))
    index = web.url("/registry/index.json")
    git.requests.clear()

    pinned = stage.run("gitpack@1.0.0", "gitpack@1.1.0", "webpack", registry_url=index)
    assert [(p.pack_version, p.git_commit) for p in pinned.downloaded_packs] == [
        ("1.0.0", commits["v1.0.0"].decode()),  # fetched again: what is stored is never trusted by its key
        ("1.1.0", commits["1.1.0"].decode()),
    ]
    assert pinned.downloaded_packs[0].archive == first.archive and pinned.downloaded_packs[0].stored is False
    assert failure(pinned) == ("INDEX_ENTRY_UNVERIFIED", False)
    assert git.requests == ["/pack.git/info/refs", "/pack.git/git-upload-pack"] * 2

    unpinned = stage.run("webpack", registry_url=index, allow_unpinned=True)
    assert "content not verified" in unpinned.downloaded_packs[0].warnings[-1]


def test_a_git_entry_whose_archive_differs_from_its_checksum_is_refused(
    stage: Stage, web: WebServer, git: GitServer
) -> None:
    entry = {
        "ref": "gitpack",
        "version": "1.0.0",
        "install_sources": [
            {"type": "git", "url": git.url("pack.git"), "ref": "v1.0.0", "checksum": "sha256:" + "ab" * 32}
        ],
    }
    web.routes["/index.json"] = serve_bytes(json.dumps({"packs": [entry]}).encode())
    assert failure(stage.run("gitpack", registry_url=web.url("/index.json"))) == ("CHECKSUM_MISMATCH", False)
    assert stage.keys() == []


def _web_index(web: WebServer, path: str, *refs: str) -> str:
    entries = []
    for ref in refs:
        body = tar_pack(ref, "1.0.0")
        web.routes[f"/{ref}.tar.gz"] = serve_bytes(body)
        source = {"type": "archive", "url": f"/{ref}.tar.gz", "checksum": "sha256:" + hashlib.sha256(body).hexdigest()}
        entries.append({"ref": ref, "version": "1.0.0", "install_sources": [source]})
    web.routes[path] = serve_bytes(json.dumps({"packs": entries}).encode(), "application/json")
    return web.url(path)


def test_an_unreadable_index_does_not_stop_the_others_but_never_lets_a_lower_one_shadow_it(
    stage: Stage, web: WebServer
) -> None:
    good = _web_index(web, "/good.json", "webpack")
    broken = web.url("/broken.json")  # 404

    # A broken index ranked after the one that serves the ref changes nothing
    stage.environment["REGISTRY_INDEX_URLS"] = f"{good},{broken}"
    assert [p.pack_ref for p in stage.run("webpack").downloaded_packs] == ["webpack"]

    # and a version no readable index offers is reported as such, not blamed on the broken index
    code, _ = failure(stage.run("webpack@2.0.0"))
    assert code != "INDEX_UNAVAILABLE" and code.startswith("VERSION"), code

    # Ranked before it, it might hold another publisher's "webpack": refused, with the reason
    stage.environment["REGISTRY_INDEX_URLS"] = f"{broken},{good}"
    response = stage.run("webpack")
    assert failure(response) == ("INDEX_UNAVAILABLE", False)
    assert broken in response.failed_packs[0].error and "lower-ranked" in response.failed_packs[0].error


def test_operator_indices_are_fetched_with_tls_checks_whatever_the_request_says(
    stage: Stage, secure_web: WebServer, tls: Tls
) -> None:
    index = _web_index(secure_web, "/index.json", "webpack")
    stage.environment["REGISTRY_INDEX_URLS"] = index
    assert failure(stage.run("webpack", verify_ssl=False)) == ("DOWNLOAD_TLS_ERROR", False)
    # the request's own index may be fetched without checks, with a warning
    [pack] = stage.run("webpack", registry_url=index, verify_ssl=False).downloaded_packs
    assert "verify_ssl: false" in pack.warnings[0]
    stage.network.tls_client = tls.trusting_client
    assert [p.pack_ref for p in stage.run("webpack").downloaded_packs] == ["webpack"]


# --- through the installation state machine (local stack) ----------------------------------------------


@pytest.mark.slow
def test_the_state_machine_installs_a_pack_from_a_git_url(git: GitServer, repos: dict[str, Any], tmp_path: Any) -> None:
    allow_loopback = {"DOWNLOAD_ALLOW_NETWORKS": "127.0.0.0/8", "DOWNLOAD_ALLOW_HTTP": "true"}
    source = f"http://127.0.0.1:{git.port}/pack.git@v1.0.0"
    with LocalStack(tmp_path / "state", extra_environment=allow_loopback) as stack:
        harness = Harness(stack)
        result = harness.install(source)
        assert result.status == "SUCCEEDED", (result.error, result.cause)
        [pack] = result.output["download"]["downloaded_packs"]
        assert (pack["source_type"], pack["git_commit"]) == ("git", repos["commits"]["v1.0.0"].decode())
        [registered] = result.output["register"]["registered_packs"]
        assert (registered["pack_ref"], registered["pack_version"]) == ("gitpack", "1.0.0")
        assert registered["storage_path"] == pack["archive"] and harness.keys("staging/") == []
