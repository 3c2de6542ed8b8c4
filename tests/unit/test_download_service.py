"""Download stage: sources resolved, content verified and stored once, failures per pack."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from fakes import FakeObjectStore
from test_net import PUBLIC, FakeNetwork, http_answer, redirect

from attune_packs.models import DownloadRequest, DownloadResponse
from attune_packs.services.stages.download import download_packs
from attune_packs.settings import Settings
from testkit.pack_archives import pack_files, tar_gz, zip_bytes


def settings(**overrides: object) -> Settings:
    return Settings.model_validate({"BUCKET_NAME": "packs", "ALLOW_LOCAL_SOURCES": "true", **overrides})


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    (tmp_path / "archives").mkdir()
    entries = []
    for ref, version in [("alpha", "1.0.0"), ("alpha", "1.5.0"), ("alpha", "2.0.0"), ("beta", "0.1.0")]:
        body = tar_gz(pack_files(ref, version))
        name = f"archives/{ref}-{version}.tar.gz"
        (tmp_path / name).write_bytes(body)
        entries.append(
            {
                "ref": ref,
                "version": version,
                "install_sources": [
                    {"type": "archive", "url": name, "checksum": "sha256:" + hashlib.sha256(body).hexdigest()}
                ],
            }
        )
    (tmp_path / "index.json").write_text(json.dumps({"packs": entries}))
    return tmp_path / "index.json"


def run(store: FakeObjectStore, *packs: str, registry: Path | None = None, **settings_overrides: object):
    request = DownloadRequest(packs=list(packs), registry_url=str(registry) if registry else None)
    return download_packs(request, store, settings(**settings_overrides))


def test_registry_names_fall_back_to_the_stored_indices_which_are_read_only_when_needed(registry: Path) -> None:
    reads: list[str] = []

    def stored_indices() -> list[str]:
        reads.append("read")
        return [str(registry)]

    store = FakeObjectStore()
    archive = str(registry.parent / "archives" / "beta-0.1.0.tar.gz")
    by_path = download_packs(DownloadRequest(packs=[archive]), store, settings(), stored_indices=stored_indices)
    assert by_path.success_count == 1 and reads == []
    by_name = download_packs(DownloadRequest(packs=["alpha"]), store, settings(), stored_indices=stored_indices)
    assert [(p.pack_ref, p.pack_version) for p in by_name.downloaded_packs] == [("alpha", "2.0.0")]
    assert reads == ["read"]


def test_registry_name_resolves_to_the_highest_allowed_version_and_is_stored_content_addressed(registry: Path) -> None:
    store = FakeObjectStore()
    response = run(store, "alpha@>=1,<2", registry=registry)
    [pack] = response.downloaded_packs
    assert (pack.pack_ref, pack.pack_version, pack.source_type) == ("alpha", "1.5.0", "registry")
    digest = pack.checksum.removeprefix("sha256:")
    assert pack.archive == f"s3://packs/archives/sha256/{digest}.tar.gz"
    assert set(store.objects) == {f"archives/sha256/{digest}.tar.gz"}, "staging object removed"
    body, metadata = store.objects[f"archives/sha256/{digest}.tar.gz"]
    assert hashlib.sha256(body).hexdigest() == digest, "the key names the stored bytes"
    original = hashlib.sha256((registry.parent / "archives" / "alpha-1.5.0.tar.gz").read_bytes()).hexdigest()
    assert pack.source_checksum == f"sha256:{original}" != pack.checksum
    assert metadata == {"pack-ref": "alpha", "pack-version": "1.5.0", "source-sha256": original}
    assert response.pack_paths == [pack.archive]


def test_a_pack_already_stored_is_written_again_not_trusted_by_its_key(registry: Path) -> None:
    store = FakeObjectStore()
    first = run(store, "alpha", registry=registry)
    key = first.downloaded_packs[0].archive.removeprefix("s3://packs/")
    store.objects[key] = (b"replaced by someone else", store.objects[key][1])

    second = run(store, "alpha", registry=registry)

    assert second.downloaded_packs[0].archive == first.downloaded_packs[0].archive
    assert second.downloaded_packs[0].stored is False
    restored = hashlib.sha256(store.objects[key][0]).hexdigest()
    assert f"sha256:{restored}" == second.downloaded_packs[0].checksum


def test_the_same_pack_in_both_formats_and_any_member_order_is_stored_once(tmp_path: Path) -> None:
    store = FakeObjectStore()
    files = pack_files("demo", "1.0.0", extra={"b.txt": "b", "a.txt": "a"})
    as_zip = store.add("uploads/demo.zip", zip_bytes(dict(reversed(list(files.items()))), root="demo/"))
    local = tmp_path / "demo.tar.gz"
    local.write_bytes(tar_gz(files, root="pack/"))

    response = run(store, as_zip, str(local))

    first, second = response.downloaded_packs
    assert first.archive == second.archive and first.archive.endswith(".tar.gz")
    assert first.source_checksum != second.source_checksum


def test_checksum_mismatch_fails_the_pack_and_stores_nothing(registry: Path) -> None:
    (registry.parent / "archives" / "beta-0.1.0.tar.gz").write_bytes(
        tar_gz(pack_files("beta", "0.1.0", extra={"x": "y"}))
    )
    store = FakeObjectStore()
    response = run(store, "beta", registry=registry)
    assert response.failed_packs[0].error_code == "CHECKSUM_MISMATCH"
    assert store.objects == {}


def test_one_failing_source_never_fails_the_others(registry: Path) -> None:
    store = FakeObjectStore()
    response = run(store, "alpha", "nope", "alpha@9", registry=registry)
    assert response.success_count == 1 and response.failure_count == 2
    codes = {f.source: f.error_code for f in response.failed_packs}
    assert codes == {"nope": "PACK_NOT_FOUND", "alpha@9": "VERSION_NOT_FOUND"}


def test_s3_and_local_archives_in_both_formats(tmp_path: Path) -> None:
    store = FakeObjectStore()
    uri = store.add("uploads/demo.zip", zip_bytes(pack_files("demo", "1.0.0"), root="demo/"))
    local = tmp_path / "other.tar.gz"
    local.write_bytes(tar_gz(pack_files("other", "2.0.0"), root="pack/"))
    response = run(store, uri, str(local))
    assert [(p.pack_ref, p.source_type) for p in response.downloaded_packs] == [("demo", "s3"), ("other", "local")]
    assert all(p.archive.endswith(".tar.gz") for p in response.downloaded_packs), "stored in the canonical format"


def test_local_paths_are_refused_outside_the_local_stack(tmp_path: Path) -> None:
    local = tmp_path / "x.tar.gz"
    local.write_bytes(tar_gz(pack_files()))
    response = run(FakeObjectStore(), str(local), ALLOW_LOCAL_SOURCES="false")
    assert response.failed_packs[0].error_code == "SOURCE_URL_FORBIDDEN"


@pytest.mark.parametrize("allow_local", ["true", "false"])
def test_a_home_folder_of_an_unknown_user_is_a_per_pack_error_not_a_crash(allow_local: str) -> None:
    # found by the API fuzzer: Path.expanduser raises RuntimeError for ~nobody-such
    response = run(FakeObjectStore(), "~no-such-user-attune/pack.tar.gz", ALLOW_LOCAL_SOURCES=allow_local)
    expected = "SOURCE_NOT_FOUND" if allow_local == "true" else "SOURCE_URL_FORBIDDEN"
    assert response.failed_packs[0].error_code == expected


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("ftp://example.com/x.tar.gz", "SOURCE_URL_FORBIDDEN"),
        ("file:///etc/passwd", "SOURCE_URL_FORBIDDEN"),
    ],
)
def test_unsupported_or_forbidden_sources_get_a_clear_code(source: str, code: str) -> None:
    response = run(FakeObjectStore(), source, ALLOW_LOCAL_SOURCES="false")
    assert response.failed_packs[0].error_code == code


def test_an_archive_that_is_not_the_pack_the_index_promised_is_refused(registry: Path) -> None:
    body = tar_gz(pack_files("impostor", "1.0.0"))
    (registry.parent / "archives" / "beta-0.1.0.tar.gz").write_bytes(body)
    index = json.loads(registry.read_text())
    for entry in index["packs"]:
        if entry["ref"] == "beta":
            entry["install_sources"][0]["checksum"] = "sha256:" + hashlib.sha256(body).hexdigest()
    registry.write_text(json.dumps(index))
    store = FakeObjectStore()
    response = run(store, "beta", registry=registry)
    assert response.failed_packs[0].error_code == "PACK_REF_MISMATCH"
    assert store.objects == {}


def test_an_unpinned_index_entry_is_refused_unless_allowed(registry: Path) -> None:
    index = json.loads(registry.read_text())
    for entry in index["packs"]:
        entry["install_sources"][0].pop("checksum")
    registry.write_text(json.dumps(index))
    store = FakeObjectStore()
    assert run(store, "beta", registry=registry).failed_packs[0].error_code == "INDEX_ENTRY_UNVERIFIED"
    allowed = download_packs(
        DownloadRequest(packs=["beta"], registry_url=str(registry), allow_unpinned=True), store, settings()
    )
    assert allowed.downloaded_packs[0].warnings


def test_known_pack_paths_are_carried_into_pack_paths(registry: Path) -> None:
    request = DownloadRequest(
        packs=["beta"], registry_url=str(registry), known_pack_paths=["s3://packs/archives/sha256/x.tar.gz"]
    )
    response = download_packs(request, FakeObjectStore(), settings())
    assert response.pack_paths[0] == "s3://packs/archives/sha256/x.tar.gz" and len(response.pack_paths) == 2


# --- network sources (issue 3): scripted DNS and connections, no sockets to anything -------------


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    spawned: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        spawned.append(args)
        raise AssertionError("the download stage must never start a process")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)
    return spawned


def fetch_with(net: FakeNetwork, store: FakeObjectStore, *packs: str, **options: object) -> DownloadResponse:
    allow_http = str(options.pop("allow_http", True)).lower()
    max_archive = options.pop("max_archive_bytes", 512 * 2**20)
    request = DownloadRequest(packs=list(packs), **options)  # type: ignore[arg-type]
    config = settings(DOWNLOAD_ALLOW_HTTP=allow_http, ALLOW_LOCAL_SOURCES="false", MAX_ARCHIVE_BYTES=max_archive)
    return download_packs(request, store, config, transport=net.transport)


def only_failure(response: DownloadResponse) -> tuple[str, bool]:
    [failed] = response.failed_packs
    return failed.error_code, failed.retriable


@pytest.mark.parametrize(
    ("source", "ref_spec", "code"),
    [
        ("ext::sh -c touch% /tmp/pwned", None, "SOURCE_URL_FORBIDDEN"),
        ("file:///srv/git/pack.git", None, "SOURCE_URL_FORBIDDEN"),
        ("ssh://-oProxyCommand=touch%20x/repo.git", None, "SOURCE_URL_FORBIDDEN"),
        ("git@github.com:org/repo.git", None, "SOURCE_URL_FORBIDDEN"),
        ("git://github.com/org/repo.git", None, "SOURCE_URL_FORBIDDEN"),
        ("http://github.com/org/repo.git", None, "SOURCE_URL_FORBIDDEN"),
        ("-oProxyCommand=touch /tmp/pwned", None, "SOURCE_URL_FORBIDDEN"),
        ("https://github.com/org/repo.git\n--upload-pack=x", None, "SOURCE_URL_FORBIDDEN"),
        ("https://github.com/org/../repo.git", None, "SOURCE_URL_FORBIDDEN"),
        ("https://github.com/org/repo.git@--upload-pack=touch", None, "REF_INVALID"),
        ("https://github.com/org/repo.git@main..evil", None, "REF_INVALID"),
        ("https://github.com/org/repo.git@HEAD@{1}", None, "REF_INVALID"),
        ("https://github.com/org/repo.git", "-oProxyCommand=x", "REF_INVALID"),
        ("https://github.com/org/repo.git", "v1\nrm -rf /", "REF_INVALID"),
        ("https://169.254.169.254/latest/meta-data/pack.tar.gz", None, "SSRF_BLOCKED"),
        ("https://[::ffff:169.254.170.2]/v2/credentials.zip", None, "SSRF_BLOCKED"),
        ("https://100.64.0.1/pack.tgz", None, "SSRF_BLOCKED"),
    ],
)
def test_hostile_sources_are_refused_before_any_network_or_process(
    source: str, ref_spec: str | None, code: str, no_subprocess: list[object]
) -> None:
    net, store = FakeNetwork(), FakeObjectStore()
    response = fetch_with(net, store, source, ref_spec=ref_spec, allow_http=False)
    assert only_failure(response) == (code, False)
    assert net.lookups == [] and net.connections == [] and no_subprocess == []
    assert store.objects == {}


def test_an_archive_url_is_downloaded_verified_and_stored_content_addressed() -> None:
    body = tar_gz(pack_files("webpack", "1.2.3"), root="webpack-1.2.3/")
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=body)])
    store = FakeObjectStore()
    response = fetch_with(net, store, "http://packs.example/dl/webpack-1.2.3.tar.gz")
    [pack] = response.downloaded_packs
    assert pack.source_checksum == f"sha256:{hashlib.sha256(body).hexdigest()}"
    digest = pack.checksum.removeprefix("sha256:")
    stored = store.objects[f"archives/sha256/{digest}.tar.gz"][0]
    assert (pack.source_type, pack.pack_ref, pack.pack_version, pack.size_bytes) == (
        "archive",
        "webpack",
        "1.2.3",
        len(stored),
    )
    assert hashlib.sha256(stored).hexdigest() == digest and pack.git_commit is None and pack.warnings == []
    assert set(store.objects) == {f"archives/sha256/{digest}.tar.gz"}


def test_a_redirect_to_the_metadata_service_stores_nothing() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[redirect("http://169.254.169.254/latest/x.zip")])
    store = FakeObjectStore()
    response = fetch_with(net, store, "http://packs.example/x.zip")
    assert only_failure(response) == ("SSRF_BLOCKED", False)
    assert net.connections == [(PUBLIC, 80)] and store.objects == {} and store.calls["upload"] == 0


def test_a_truncated_download_is_retriable_and_leaves_no_staging_object() -> None:
    net = FakeNetwork(
        dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=b"\x1f\x8b" + b"x" * 50, length=5000)]
    )
    store = FakeObjectStore()
    assert only_failure(fetch_with(net, store, "http://packs.example/x.tgz")) == ("DOWNLOAD_INCOMPLETE", True)
    assert store.objects == {}


def test_a_download_over_the_archive_limit_is_refused() -> None:
    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=b"x" * 10, length=2 * 2**20)])
    store = FakeObjectStore()
    response = fetch_with(net, store, "http://packs.example/x.tgz", max_archive_bytes=2**20)
    assert only_failure(response) == ("DOWNLOAD_TOO_LARGE", False)


def test_the_request_timeout_bounds_a_trickling_download() -> None:
    def trickle(server: socket.socket) -> None:
        server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n\x1f\x8b")
        for _ in range(500):
            time.sleep(0.02)
            server.sendall(b"x")

    net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[trickle])
    store = FakeObjectStore()
    started = time.monotonic()
    assert only_failure(fetch_with(net, store, "http://packs.example/x.tgz", timeout=1)) == ("DOWNLOAD_TIMEOUT", True)
    assert time.monotonic() - started < 4 and store.objects == {}


def web_index(entries: list[dict[str, object]]) -> bytes:
    return json.dumps({"packs": entries}).encode()


def archive_entry(ref: str, version: str, url: str, body: bytes | None) -> dict[str, object]:
    source: dict[str, object] = {"type": "archive", "url": url}
    if body is not None:
        source["checksum"] = "sha256:" + hashlib.sha256(body).hexdigest()
    return {"ref": ref, "version": version, "install_sources": [source]}


def test_an_index_over_http_is_loaded_once_and_its_relative_urls_stay_on_the_web() -> None:
    alpha = tar_gz(pack_files("alpha", "1.0.0"))
    beta = zip_bytes(pack_files("beta", "2.0.0"))
    index = web_index(
        [
            archive_entry("alpha", "1.0.0", "archives/alpha.tar.gz", alpha),
            archive_entry("beta", "2.0.0", "/b/beta.zip", beta),
        ]
    )
    net = FakeNetwork(
        dns={"registry.example": [[PUBLIC]]},
        scripts=[http_answer(body=index), http_answer(body=alpha), http_answer(body=beta)],
    )
    store = FakeObjectStore()
    response = fetch_with(net, store, "alpha", "beta", registry_url="http://registry.example/v1/index.json")
    assert [(p.pack_ref, p.source_type) for p in response.downloaded_packs] == [
        ("alpha", "registry"),
        ("beta", "registry"),
    ]
    paths = [r.split(b"\r\n")[0] for r in net.requests]
    assert paths == [
        b"GET /v1/index.json HTTP/1.1",
        b"GET /v1/archives/alpha.tar.gz HTTP/1.1",
        b"GET /b/beta.zip HTTP/1.1",
    ]


def test_a_failing_index_fails_every_registry_source_with_one_fetch() -> None:
    net = FakeNetwork(dns={"registry.example": [[PUBLIC]]}, scripts=[http_answer("503 Busy")])
    response = fetch_with(net, FakeObjectStore(), "alpha", "beta", registry_url="http://registry.example/index.json")
    assert [(f.error_code, f.retriable) for f in response.failed_packs] == [("DOWNLOAD_HTTP_ERROR", True)] * 2
    assert len(net.connections) == 1


def test_an_oversized_web_index_is_index_invalid() -> None:
    net = FakeNetwork(dns={"registry.example": [[PUBLIC]]}, scripts=[http_answer(body=b"{}", length=17 * 2**20)])
    response = fetch_with(net, FakeObjectStore(), "alpha", registry_url="http://registry.example/index.json")
    assert only_failure(response) == ("INDEX_INVALID", False)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "s3://packs/uploads/other.tar.gz"])
def test_a_web_index_cannot_point_at_local_files_or_the_bucket(url: str) -> None:
    index = web_index([archive_entry("alpha", "1.0.0", url, b"pinned")])
    net = FakeNetwork(dns={"registry.example": [[PUBLIC]]}, scripts=[http_answer(body=index)])
    response = fetch_with(net, FakeObjectStore(), "alpha", registry_url="http://registry.example/index.json")
    assert only_failure(response) == ("SOURCE_URL_FORBIDDEN", False)
    assert len(net.connections) == 1


def test_an_s3_index_cannot_point_at_local_files() -> None:
    store = FakeObjectStore()
    index = web_index([archive_entry("alpha", "1.0.0", "file:///etc/passwd", b"x")])
    index_uri = store.add("registry/index.json", index)
    response = download_packs(
        DownloadRequest(packs=["alpha"], registry_url=index_uri), store, settings(ALLOW_LOCAL_SOURCES="true")
    )
    assert only_failure(response) == ("SOURCE_URL_FORBIDDEN", False)


def test_a_checksum_mismatch_over_the_web_stores_nothing() -> None:
    served = tar_gz(pack_files("alpha", "1.0.0", extra={"tampered": "yes"}))
    index = web_index([archive_entry("alpha", "1.0.0", "alpha.tar.gz", tar_gz(pack_files("alpha", "1.0.0")))])
    net = FakeNetwork(dns={"registry.example": [[PUBLIC]]}, scripts=[http_answer(body=index), http_answer(body=served)])
    store = FakeObjectStore()
    response = fetch_with(net, store, "alpha", registry_url="http://registry.example/index.json")
    assert only_failure(response) == ("CHECKSUM_MISMATCH", False)
    assert store.objects == {}


def git_entry(ref: str | None, checksum: str | None = None) -> dict[str, object]:
    source: dict[str, object] = {"type": "git", "url": "https://git.example/org/alpha.git"}
    if ref is not None:
        source["ref"] = ref
    if checksum is not None:
        source["checksum"] = checksum
    return {"ref": "alpha", "version": "1.0.0", "install_sources": [source]}


@pytest.mark.parametrize("ref", [None, "v1.0.0", "main", "abc1234"])
def test_a_git_entry_pinned_by_neither_checksum_nor_commit_is_unverified(ref: str | None) -> None:
    net = FakeNetwork(dns={"registry.example": [[PUBLIC]]}, scripts=[http_answer(body=web_index([git_entry(ref)]))])
    response = fetch_with(net, FakeObjectStore(), "alpha", registry_url="http://registry.example/index.json")
    assert only_failure(response) == ("INDEX_ENTRY_UNVERIFIED", False)
    assert len(net.connections) == 1, "the repository was not contacted"


def test_a_git_entry_with_an_option_like_ref_is_refused_before_contacting_the_repository() -> None:
    entry = git_entry("--upload-pack=touch", checksum="sha256:" + "0" * 64)
    net = FakeNetwork(dns={"registry.example": [[PUBLIC]]}, scripts=[http_answer(body=web_index([entry]))])
    response = fetch_with(net, FakeObjectStore(), "alpha", registry_url="http://registry.example/index.json")
    assert only_failure(response) == ("REF_INVALID", False)
    assert net.lookups == ["registry.example"]


def test_a_retry_with_the_same_input_gives_the_same_answer_and_stores_nothing_new() -> None:
    body = tar_gz(pack_files("webpack", "1.2.3"))
    store = FakeObjectStore()
    answers = []
    for _ in range(2):
        net = FakeNetwork(dns={"packs.example": [[PUBLIC]]}, scripts=[http_answer(body=body)])
        answers.append(fetch_with(net, store, "http://packs.example/webpack.tar.gz", "nope-not-a-pack"))
        if len(answers) == 1:
            stored = dict(store.objects)
    first, second = (a.model_dump() for a in answers)
    assert first["downloaded_packs"][0].pop("stored") is True
    assert second["downloaded_packs"][0].pop("stored") is False
    assert first == second
    assert store.objects == stored


def test_a_dependency_round_beyond_the_installation_limit_fails_the_extra_packs_only(registry: Path) -> None:
    from attune_packs.models import MAX_PACKS_PER_INSTALLATION

    known = [f"s3://packs/archives/sha256/{n:064x}.tar.gz" for n in range(MAX_PACKS_PER_INSTALLATION - 1)]
    request = DownloadRequest(packs=["alpha", "beta"], registry_url=str(registry), known_pack_paths=known)
    response = download_packs(request, FakeObjectStore(), settings())
    assert [p.pack_ref for p in response.downloaded_packs] == ["alpha"]
    [refused] = response.failed_packs
    assert (refused.source, refused.error_code) == ("beta", "TOO_MANY_PACKS")
    assert f"at most {MAX_PACKS_PER_INSTALLATION} packs" in refused.error
    assert len(response.pack_paths) == MAX_PACKS_PER_INSTALLATION
