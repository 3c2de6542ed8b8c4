"""Download stage: sources resolved, content verified and stored once, failures per pack."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fakes import FakeObjectStore
from packs import pack_files, tar_gz, zip_bytes

from attune_packs.models import DownloadRequest
from attune_packs.services.download import download_packs
from attune_packs.settings import Settings


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


def test_registry_name_resolves_to_the_highest_allowed_version_and_is_stored_content_addressed(registry: Path) -> None:
    store = FakeObjectStore()
    response = run(store, "alpha@>=1,<2", registry=registry)
    [pack] = response.downloaded_packs
    assert (pack.pack_ref, pack.pack_version, pack.source_type) == ("alpha", "1.5.0", "registry")
    digest = pack.checksum.removeprefix("sha256:")
    assert pack.archive == f"s3://packs/archives/sha256/{digest}.tar.gz"
    assert set(store.objects) == {f"archives/sha256/{digest}.tar.gz"}, "staging object removed"
    assert store.objects[f"archives/sha256/{digest}.tar.gz"][1] == {"pack-ref": "alpha", "pack-version": "1.5.0"}
    assert response.pack_paths == [pack.archive]


def test_a_pinned_pack_already_stored_costs_no_second_upload(registry: Path) -> None:
    store = FakeObjectStore()
    first = run(store, "alpha", registry=registry)
    uploads = store.calls["upload"]
    second = run(store, "alpha", registry=registry)
    assert store.calls["upload"] == uploads
    assert second.downloaded_packs[0].archive == first.downloaded_packs[0].archive
    assert second.downloaded_packs[0].stored is False


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
    assert response.downloaded_packs[0].archive.endswith(".zip")


def test_local_paths_are_refused_outside_the_local_stack(tmp_path: Path) -> None:
    local = tmp_path / "x.tar.gz"
    local.write_bytes(tar_gz(pack_files()))
    response = run(FakeObjectStore(), str(local), ALLOW_LOCAL_SOURCES="false")
    assert response.failed_packs[0].error_code == "SOURCE_URL_FORBIDDEN"


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("https://example.com/org/repo.git", "SOURCE_TYPE_UNSUPPORTED"),
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
