"""How the download stage stores an archive in S3 (moto): the calls it makes and what it leaves.

A pack that fits in one upload part is read into memory, never staged in S3, and stored at its
content-addressed key with one conditional PUT (``If-None-Match: *``). When the key is already
taken the archive is written again (an object is never trusted by its key) and reported as not
``stored`` by this download. A source larger than one part still goes through a staging key,
which is removed.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import boto3
import pytest
from moto import mock_aws

from attune_packs.adapters.s3 import PART_SIZE, S3ObjectStore
from attune_packs.models import DownloadedPack, DownloadRequest
from attune_packs.s3_uri import parse_s3_uri
from attune_packs.services.stages.download import download_packs
from attune_packs.settings import Settings
from testkit.pack_archives import pack_files, tar_gz

BUCKET = "packs"


@dataclass
class Bucket:
    store: S3ObjectStore
    client: Any
    calls: Counter[str]

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def body(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def upload(self, key: str, body: bytes) -> str:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)
        return f"s3://{BUCKET}/{key}"

    def download(self, source: str) -> DownloadedPack:
        self.calls.clear()
        response = download_packs(DownloadRequest(packs=[source]), self.store, Settings(BUCKET_NAME=BUCKET))
        assert response.failed_packs == [], response.failed_packs
        [pack] = response.downloaded_packs
        return pack

    def pending_uploads(self) -> list[Any]:
        return list(self.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        calls: Counter[str] = Counter()

        def count(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        store_client = boto3.client("s3", region_name="us-east-1")
        store_client.meta.events.register("before-call", count)
        yield Bucket(S3ObjectStore(store_client, BUCKET), client, calls)


def test_a_small_pack_costs_one_read_and_one_conditional_put_and_stages_nothing(bucket: Bucket) -> None:
    # Given a pack uploaded to the bucket
    source = bucket.upload("uploads/demo.tar.gz", tar_gz(pack_files("demo"), root="demo/"))

    # When it is downloaded
    pack = bucket.download(source)

    # Then the source was read once and the canonical archive written once, nothing staged
    assert bucket.calls == Counter({"GetObject": 1, "PutObject": 1})
    key = parse_s3_uri(pack.archive).key
    assert pack.stored is True and bucket.keys() == sorted(["uploads/demo.tar.gz", key])
    assert f"sha256:{hashlib.sha256(bucket.body(key)).hexdigest()}" == pack.checksum


def test_an_archive_already_stored_is_written_again_and_reported_as_not_stored_by_this_download(
    bucket: Bucket,
) -> None:
    # Given a pack downloaded once, whose stored archive was then damaged in place
    source = bucket.upload("uploads/demo.tar.gz", tar_gz(pack_files("demo"), root="demo/"))
    first = bucket.download(source)
    key = parse_s3_uri(first.archive).key
    canonical = bucket.body(key)
    bucket.client.put_object(Bucket=BUCKET, Key=key, Body=b"damaged")

    # When it is downloaded again
    again = bucket.download(source)

    # Then the conditional PUT was refused, the archive written again (repaired), and this download
    # did not create it (a plan that cleans up what it created leaves it alone)
    assert bucket.calls == Counter({"GetObject": 1, "PutObject": 2})
    assert (again.archive, again.stored) == (first.archive, False)
    assert bucket.body(key) == canonical


def test_a_source_larger_than_one_part_goes_through_a_staging_key_that_is_removed(bucket: Bucket) -> None:
    # Given a pack whose archive is larger than one upload part (incompressible content)
    big = os.urandom(PART_SIZE + 2**20)
    source = bucket.upload("uploads/big.tar.gz", tar_gz({**pack_files("big"), "data/blob.bin": big}, root="big/"))

    # When it is downloaded
    pack = bucket.download(source)

    # Then it was staged as a multipart upload and stored; no staging object or upload is left
    assert bucket.calls["CreateMultipartUpload"] == 2 and bucket.calls["DeleteObject"] == 1
    assert pack.stored is True
    assert bucket.keys() == sorted(["uploads/big.tar.gz", parse_s3_uri(pack.archive).key])
    assert bucket.pending_uploads() == []


@pytest.mark.parametrize("size", [10, PART_SIZE + 1], ids=["one PUT", "multipart"])
def test_a_conditional_upload_writes_nothing_where_an_object_is(bucket: Bucket, size: int) -> None:
    # Given an object at a key
    bucket.client.put_object(Bucket=BUCKET, Key="archives/x", Body=b"first")
    body = os.urandom(size)

    # When an upload if absent is made to that key, then to a free one
    refused = bucket.store.upload_stream("archives/x", cast(BinaryIO, io.BytesIO(body)), max_bytes=size, if_absent=True)
    created = bucket.store.upload_stream("archives/y", cast(BinaryIO, io.BytesIO(body)), max_bytes=size, if_absent=True)

    # Then the first wrote nothing (and left no multipart upload behind), the second wrote the body;
    # both hashed the whole stream
    assert (refused.created, created.created) == (False, True)
    assert bucket.body("archives/x") == b"first" and bucket.body("archives/y") == body
    assert refused.sha256 == created.sha256 == hashlib.sha256(body).hexdigest()
    assert bucket.pending_uploads() == []
