"""In-memory adapters for unit tests: the same Protocols the services use, no AWS."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from typing import Any, BinaryIO

from attune_packs.adapters.s3 import S3Location, StoredObject
from attune_packs.errors import RegistrationConflictError, SourceError, SourceGoneError


class FakeObjectStore:
    def __init__(self, bucket: str = "packs") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.calls: Counter[str] = Counter()

    def add(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        self.objects[key] = (body, metadata or {})
        return f"s3://{self.bucket}/{key}"

    def upload_stream(
        self, key: str, stream: BinaryIO, *, max_bytes: int, metadata: dict[str, str] | None = None
    ) -> StoredObject:
        self.calls["upload"] += 1
        body = stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise SourceError("too large", error_code="DOWNLOAD_TOO_LARGE")
        self.objects[key] = (body, metadata or {})
        return StoredObject(S3Location(self.bucket, key), hashlib.sha256(body).hexdigest(), len(body))

    def head(self, location: S3Location) -> dict[str, Any] | None:
        self.calls["head"] += 1
        found = self.objects.get(location.key) if location.bucket == self.bucket else None
        return None if found is None else {"ContentLength": len(found[0]), "Metadata": dict(found[1])}

    def open(self, location: S3Location) -> BinaryIO:
        self.calls["get"] += 1
        if location.bucket != self.bucket or location.key not in self.objects:
            raise SourceGoneError(f"{location.uri} no longer exists")
        return io.BytesIO(self.objects[location.key][0])

    def copy(self, src: S3Location, dst_key: str, metadata: dict[str, str] | None = None) -> None:
        self.calls["copy"] += 1
        body, meta = self.objects[src.key]
        self.objects[dst_key] = (body, metadata if metadata is not None else meta)

    def delete(self, key: str) -> None:
        self.calls["delete"] += 1
        self.objects.pop(key, None)

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.objects[key] = (body, {})

    def get_json(self, location: S3Location) -> Any:
        with self.open(location) as body:
            return json.loads(body.read())


class FakePackTable:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next_flip = False

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        self.calls["get_item"] += 1
        item = self.items.get((pk, sk))
        return dict(item) if item else None

    def query_prefix(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        self.calls["query"] += 1
        return [dict(v) for (p, s), v in sorted(self.items.items()) if p == pk and s.startswith(sk_prefix)]

    def query_index(self, gsi_pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        self.calls["query"] += 1
        return [
            dict(v)
            for v in self.items.values()
            if v.get("GSI1PK") == gsi_pk and str(v.get("GSI1SK", "")).startswith(sk_prefix)
        ]

    def batch_put(self, items: Any) -> int:
        items = list(items)
        self.calls["batch_write_item"] += -(-len(items) // 25)
        for item in items:
            self.items[(item["PK"], item["SK"])] = dict(item)
        return len(items)

    def put_if_revision(self, item: dict[str, Any], expected_revision: int | None) -> None:
        self.calls["put_item"] += 1
        if self.fail_next_flip:
            self.fail_next_flip = False
            raise RuntimeError("injected crash before the pointer flip")
        current = self.items.get((item["PK"], item["SK"]))
        if (current is None) != (expected_revision is None) or (
            current is not None and current.get("revision") != expected_revision
        ):
            raise RegistrationConflictError("conflict")
        self.items[(item["PK"], item["SK"])] = dict(item)
