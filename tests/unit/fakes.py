"""In-memory adapters for unit tests: the same Protocols the services use, no AWS."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections import Counter
from typing import Any, BinaryIO

from attune_packs.adapters.s3 import StoredObject
from attune_packs.data.operations import Delete, IndexPage, Put, TransactionConditionFailed, Update
from attune_packs.errors import SourceError, SourceGoneError
from attune_packs.s3_uri import S3Location


class FakeObjectStore:
    def __init__(self, bucket: str = "packs") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.calls: Counter[str] = Counter()

    def add(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        self.objects[key] = (body, metadata or {})
        return f"s3://{self.bucket}/{key}"

    def upload_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        max_bytes: int,
        metadata: dict[str, str] | None = None,
        if_absent: bool = False,
    ) -> StoredObject:
        self.calls["upload"] += 1
        body = stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise SourceError("too large", error_code="DOWNLOAD_TOO_LARGE")
        created = not (if_absent and key in self.objects)
        if created:
            self.objects[key] = (body, metadata or {})
        return StoredObject(S3Location(self.bucket, key), hashlib.sha256(body).hexdigest(), len(body), created)

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
        self.calls["put"] += 1
        self.objects[key] = (body, {"content-type": content_type})

    def get_json(self, location: S3Location, max_bytes: int = 4 * 2**20) -> Any:
        with self.open(location) as body:
            content = body.read()
        if len(content) > max_bytes:
            raise ValueError(f"{location.uri} is larger than {max_bytes} bytes")
        return json.loads(content)


class FakePackTable:
    """The registry table in memory, with DynamoDB's semantics for what the services use:
    consistent reads, prefix queries, the GSI1 index (ordered by GSI1SK, paged), batches, and
    all-or-nothing conditional transactions. ``calls`` counts API calls as DynamoDB would bill
    them (one per 25 items written, per 100 keys read)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next_transact = False
        self.transactions: list[list[Any]] = []

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        self.calls["get_item"] += 1
        item = self.items.get((pk, sk))
        return copy.deepcopy(item) if item else None

    def batch_get(self, keys: Any) -> dict[tuple[str, str], dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        self.calls["batch_get_item"] += -(-len(keys) // 100)
        return {key: copy.deepcopy(self.items[key]) for key in keys if key in self.items}

    def query_prefix(self, pk: str, sk_prefix: str, *, attributes: Any = None) -> list[dict[str, Any]]:
        self.calls["query"] += 1
        found = [copy.deepcopy(v) for (p, s), v in sorted(self.items.items()) if p == pk and s.startswith(sk_prefix)]
        if attributes:
            wanted = {"PK", "SK", *attributes}
            found = [{k: v for k, v in item.items() if k in wanted} for item in found]
        return found

    def _indexed(self, gsi_pk: str) -> list[dict[str, Any]]:
        rows = [v for v in self.items.values() if v.get("GSI1PK") == gsi_pk and "GSI1SK" in v]
        return sorted(rows, key=lambda v: (v["GSI1SK"], v["PK"], v["SK"]))

    def query_index(self, gsi_pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        self.calls["query"] += 1
        return [copy.deepcopy(v) for v in self._indexed(gsi_pk) if str(v["GSI1SK"]).startswith(sk_prefix)]

    def query_index_page(
        self, gsi_pk: str, *, after: str | None = None, limit: int = 100, start: dict[str, str] | None = None
    ) -> IndexPage:
        self.calls["query"] += 1
        rows = [v for v in self._indexed(gsi_pk) if after is None or v["GSI1SK"] > after]
        if start:
            position = (start["GSI1SK"], start["PK"], start["SK"])
            rows = [v for v in rows if (v["GSI1SK"], v["PK"], v["SK"]) > position]
        page = rows[:limit]
        more = len(rows) >= limit and bool(page)
        last = page[-1] if more else None
        return IndexPage(
            items=[copy.deepcopy(v) for v in page],
            next_start={k: last[k] for k in ("PK", "SK", "GSI1PK", "GSI1SK")} if last else None,
        )

    def batch_put(self, items: Any) -> int:
        items = list(items)
        self.calls["batch_write_item"] += -(-len(items) // 25)
        for item in items:
            self.items[(item["PK"], item["SK"])] = copy.deepcopy({k: v for k, v in item.items() if v is not None})
        return len(items)

    def batch_delete(self, keys: Any) -> int:
        keys = list(keys)
        self.calls["batch_write_item"] += -(-len(keys) // 25)
        for key in keys:
            self.items.pop(key, None)
        return len(keys)

    def transact(self, operations: Any) -> None:
        operations = list(operations)
        if not operations:
            return
        self.calls["transact_write_items"] += 1
        if self.fail_next_transact:
            self.fail_next_transact = False
            raise RuntimeError("injected crash before the transaction")
        keys = [op.key for op in operations]
        assert len(set(keys)) == len(keys), "DynamoDB refuses two operations on one item in a transaction"
        assert len(operations) <= 100
        failed = [
            i
            for i, op in enumerate(operations)
            if op.condition is not None and not op.condition.holds_for(self.items.get(op.key))
        ]
        if failed:
            raise TransactionConditionFailed(failed)
        self.transactions.append(operations)
        for op in operations:
            if isinstance(op, Put):
                self.items[op.key] = copy.deepcopy({k: v for k, v in op.item.items() if v is not None})
            elif isinstance(op, Delete):
                self.items.pop(op.key, None)
            elif isinstance(op, Update):
                item = self.items.setdefault(op.key, {"PK": op.pk, "SK": op.sk})
                item.update(copy.deepcopy({k: v for k, v in op.set.items() if v is not None}))
                for name in op.remove:
                    item.pop(name, None)
