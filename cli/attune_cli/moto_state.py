"""moto's DynamoDB and S3 as AWS keeps them: writes serialised, every change journalled.

* **Serialised DynamoDB.** AWS applies each write, conditional write and transaction atomically
  and in one order; moto's threaded server runs requests side by side, so a transaction's
  condition checks and writes could interleave with another's (lost updates, half-applied
  transactions). Every DynamoDB request is answered under one lock, reads included (a read never
  sees half a transaction, as on AWS).
* **Journalled changes.** After a DynamoDB write the new state of each item it named is appended
  to the :class:`~attune_cli.persistence.StateStore` journal (under the same lock: the journal's
  order is the table's). After an S3 request that put or deleted objects of the stack's bucket,
  each body goes to the blob store by digest and the object's digest and metadata to the journal.
* **Item answers at the speed of JSON.** moto 5 serialises every answer by walking the API's
  shape model value by value: 3 s for a query of 500 items. Answers that carry items (GetItem,
  Query, Scan, BatchGetItem, TransactGetItems) are already plain DynamoDB JSON, so they are
  written with ``json.dumps`` (binary values base64-encoded, as on the wire); anything else, and
  errors, go through moto's serializer. Comparing two string (or binary, or boolean) values — what
  a query does for every item it sorts or matches — skips moto's generic value casting, and an
  item's size (summed for every item a query returns) is computed without re-wrapping values,
  and a JSON answer is not searched for an XML ``<RequestId>`` element to rewrite.
* **Queries at the cost of what they read** (:mod:`attune_cli.moto_queries`): moto sorts and
  sizes every item of the table for every query; here a query looks at the items its key
  condition selects, and what it learns about them is kept until the next write.
* **Restore.** The stored state is written straight into moto's backends at start (no HTTP, no
  S3 notifications: restoring is not uploading).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from attune_cli.moto_queries import PartitionQueries
from attune_cli.persistence import StateStore, StoredState, item_record, object_record

_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_ITEM_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
SKIPPED_PREFIXES = ("staging/",)

Patch = Callable[[Any, str, Any], None]


def _persisted(key: str) -> bool:
    return not key.startswith(SKIPPED_PREFIXES) and "/tmp/" not in key


class MotoState:
    def __init__(self, account: str, region: str, table: str, bucket: str, store: StateStore | None) -> None:
        self.account = account
        self.region = region
        self.table = table
        self.bucket = bucket
        self.store = store
        self.dynamodb_lock = threading.RLock()
        self.queries = PartitionQueries()
        self._local = threading.local()

    # -- backends --------------------------------------------------------------------------------
    def dynamodb(self) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[self.account][self.region]

    def s3(self) -> Any:
        from moto.s3.models import s3_backends

        return s3_backends[self.account]["aws"]

    # -- patches ---------------------------------------------------------------------------------
    def install(self, patch: Patch) -> None:
        from moto.dynamodb.responses import DynamoHandler
        from moto.s3.models import S3Backend
        from moto.s3.responses import S3Response

        state = self
        original_call = DynamoHandler.call_action

        def call_action(handler: Any) -> Any:
            with state.dynamodb_lock:
                try:
                    response = original_call(handler)
                finally:
                    if handler._get_action() not in _ITEM_READS:
                        state.queries.changed()
                if state.store is not None and handler._get_action() in _WRITES:
                    state._journal_items(handler._get_action(), handler.body)
                return response

        patch(DynamoHandler, "call_action", call_action)
        patch(DynamoHandler, "serialized", _fast_serialized(DynamoHandler.serialized))
        _enrich_json_as_is(patch)
        _fast_comparisons(patch)
        self.queries.install(patch)

        original_put, original_delete = S3Backend.put_object, S3Backend.delete_object

        def put_object(backend: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
            result = original_put(backend, bucket_name, key_name, *args, **kwargs)
            state._touched(bucket_name, key_name)
            return result

        def delete_object(backend: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
            result = original_delete(backend, bucket_name, key_name, *args, **kwargs)
            state._touched(bucket_name, key_name)
            return result

        patch(S3Backend, "put_object", put_object)
        patch(S3Backend, "delete_object", delete_object)
        for name in ("bucket_response", "key_response", "ambiguous_response"):
            patch(S3Response, name, self._collecting(getattr(S3Response, name)))

    def _collecting(self, original: Any) -> Any:
        """Wraps an S3 request: objects it touches are journalled once it is answered (moto sets
        an object's metadata after storing it)."""
        state = self

        def respond(response: Any, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(state._local, "depth", 0)
            if depth == 0:
                state._local.touched = []
            state._local.depth = depth + 1
            try:
                return original(response, *args, **kwargs)
            finally:
                state._local.depth = depth
                if depth == 0:
                    touched, state._local.touched = state._local.touched, []
                    state._journal_objects(touched)

        return respond

    def _touched(self, bucket: str, key: str) -> None:
        if self.store is None or bucket != self.bucket or not _persisted(key):
            return
        if getattr(self._local, "depth", 0):
            self._local.touched.append(key)
        else:
            self._journal_objects([key])

    def _journal_objects(self, keys: list[str]) -> None:
        if not keys or self.store is None:
            return
        bucket = self.s3().buckets.get(self.bucket)
        records = []
        for key in dict.fromkeys(keys):
            stored = bucket.keys.get(key) if bucket is not None else None
            if stored is None:
                records.append(object_record(self.bucket, key, None, None))
            else:
                digest = self.store.put_blob(stored.value)
                records.append(object_record(self.bucket, key, digest, dict(stored.metadata)))
        self.store.append(records)

    def _journal_items(self, action: str, body: dict[str, Any]) -> None:
        assert self.store is not None
        backend = self.dynamodb()
        touched: list[tuple[str, dict[str, Any]]] = []
        if action in {"UpdateItem", "DeleteItem"}:
            touched.append((body["TableName"], body["Key"]))
        elif action == "PutItem":
            touched.append((body["TableName"], self._key_of(body["TableName"], body["Item"])))
        elif action == "BatchWriteItem":
            for table, requests in (body.get("RequestItems") or {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        touched.append((table, self._key_of(table, request["PutRequest"]["Item"])))
                    else:
                        touched.append((table, request["DeleteRequest"]["Key"]))
        else:
            for entry in body.get("TransactItems") or []:
                kind, op = next(iter(entry.items()))
                if kind == "ConditionCheck":
                    continue
                key = op["Key"] if kind != "Put" else self._key_of(op["TableName"], op["Item"])
                touched.append((op["TableName"], key))
        records = []
        for table, key in touched:
            if table != self.table:
                continue
            try:
                item = backend.get_item(table, key)
            except Exception:  # noqa: BLE001, S112 - a malformed request changed nothing
                continue
            records.append(item_record(table, key, None if item is None else item.to_json()["Attributes"]))
        self.store.append(records)

    def _key_of(self, table_name: str, item: dict[str, Any]) -> dict[str, Any]:
        table = self.dynamodb().get_table(table_name)
        key = {table.hash_key_attr: item[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = item[table.range_key_attr]
        return key

    # -- restore ---------------------------------------------------------------------------------
    def restore(self, state: StoredState) -> None:
        assert self.store is not None
        backend = self.dynamodb()
        with self.dynamodb_lock:
            for (table, _key), item in state.items.items():
                backend.put_item(table or self.table, item)
            self.queries.changed()
        s3 = self.s3()
        store, self.store = self.store, None  # restoring is not a change
        try:
            for (bucket, key), entry in state.objects.items():
                metadata = dict(entry["metadata"])
                body = store.blob(entry["digest"])
                stored = s3.put_object(bucket or self.bucket, key, body, disable_notification=True)
                stored.set_metadata(metadata)
        finally:
            self.store = store


def _wire(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not DynamoDB JSON")


def _fast_serialized(original: Any) -> Any:
    """DynamoHandler.serialized, with item-carrying answers written straight as JSON."""
    import json

    from moto.dynamodb.responses import DynamoResult

    def serialized(handler: Any, action_result: Any) -> Any:
        if isinstance(action_result, DynamoResult) and handler._get_action() in _ITEM_READS:
            try:
                body = json.dumps(action_result.result, default=_wire, separators=(",", ":"))
            except (TypeError, ValueError):
                return original(handler, action_result)
            headers = {"Content-Type": JSON_CONTENT_TYPE, "status": 200}
            headers.update(handler.response_headers)
            return 200, headers, body
        return original(handler, action_result)

    return serialized


def _enrich_json_as_is(patch: Patch) -> None:
    """moto writes its request id into every answer's ``<RequestId>`` element with a regular
    expression run over the whole body (a 1 MB query answer included); a body without that element
    (every JSON answer) comes back unchanged from it, so it is not searched."""
    from moto.core.responses import BaseResponse

    original = BaseResponse._enrich_response

    def enrich(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:
            return original(headers, "")[0], body
        return original(headers, body)

    patch(BaseResponse, "_enrich_response", staticmethod(enrich))


_PLAIN = frozenset({"S", "B", "BOOL"})  # types whose cast value is the value itself


def _fast_comparisons(patch: Patch) -> None:
    """DynamoType's comparisons and cast value, answered directly for plain values (same results:
    moto casts numbers, sets, lists and maps, and returns every other value unchanged)."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    cast, eq, ne, lt = DynamoType.cast_value, DynamoType.__eq__, DynamoType.__ne__, DynamoType.__lt__

    def cast_value(value: Any) -> Any:
        return value.value if value.type in _PLAIN else cast.fget(value)

    def equal(value: Any, other: Any) -> bool:
        if value.type in _PLAIN and isinstance(other, DynamoType) and other.type == value.type:
            return bool(value.value == other.value)
        return bool(eq(value, other))

    def not_equal(value: Any, other: Any) -> bool:
        if value.type in _PLAIN and isinstance(other, DynamoType) and other.type == value.type:
            return bool(value.value != other.value)
        return bool(ne(value, other))

    def less(value: Any, other: Any) -> bool:
        if value.type == "S" and isinstance(other, DynamoType) and other.type == "S":
            return bool(value.value < other.value)
        return bool(lt(value, other))

    patch(DynamoType, "size", _value_size)
    patch(Item, "size", lambda item: sum(_bytesize(key) + _value_size(value) for key, value in item.attrs.items()))
    patch(DynamoType, "cast_value", property(cast_value))
    patch(DynamoType, "__eq__", equal)
    patch(DynamoType, "__ne__", not_equal)
    patch(DynamoType, "__lt__", less)


def _bytesize(value: str | bytes) -> int:
    return len(value if isinstance(value, bytes) else value.encode("utf-8"))


def _value_size(value: Any) -> int:
    """moto's DynamoType.size, the same sums: numbers by their text, sets, lists and maps by their
    members (map keys counted), booleans and nulls 1, strings and binaries by their bytes."""
    kind, raw = value.type, value.value
    if kind == "N":
        return len(str(raw))
    if kind in {"SS", "NS", "BS"}:
        return sum(len(str(member)) if kind == "NS" else _bytesize(member) for member in raw)
    if kind == "L":
        return sum(_value_size(_typed(member)) for member in raw)
    if kind == "M":
        return sum(_bytesize(key) + _value_size(_typed(member)) for key, member in raw.items())
    if isinstance(raw, bool):
        return 1
    return _bytesize(raw)


def _typed(value: Any) -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return value if isinstance(value, DynamoType) else DynamoType(value)
