"""The single-table registry in DynamoDB (DESIGN.md section 5).

Items are plain dicts here; :mod:`attune_packs.data` decides what goes in them and which keys they
use, and builds the operations (:mod:`attune_packs.data.operations`) this adapter executes. This
adapter knows DynamoDB's mechanics:

* batching: 25 items per ``BatchWriteItem`` and 100 keys per ``BatchGetItem``;
* conditional writes as all-or-nothing transactions (:meth:`DynamoPackTable.transact`) built from
  the condition vocabulary, so services never write expression syntax;
* paging through boto3's paginators.

One retry layer: botocore's retry configuration (standard/adaptive, set once on the client in
:mod:`attune_packs.adapters.clients`) retries throttled and transient calls. This adapter does not
retry calls itself; it only re-sends what DynamoDB answered but left undone (``UnprocessedItems`` /
``UnprocessedKeys``), with jittered backoff for a bounded total time, then raises
:class:`ThrottledError`. Throttling that outlived botocore's retries, and transactions cancelled
by a conflicting transaction in flight, are :class:`ThrottledError` too: transient, so the stage is
retried.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from attune_packs.data.operations import (
    TRANSACTION_LIMIT,
    Check,
    Condition,
    Delete,
    IndexPage,
    Key,
    Operation,
    PackTable,
    Put,
    TransactionConditionFailed,
    Update,
)
from attune_packs.errors import ThrottledError

# Re-exported for callers that received the table's vocabulary from here before it moved to
# attune_packs.data.operations (tests, the CLI).
__all__ = [
    "BATCH_SIZE",
    "GET_BATCH_SIZE",
    "INDEX_NAME",
    "TRANSACTION_LIMIT",
    "Check",
    "Condition",
    "Delete",
    "DynamoPackTable",
    "IndexPage",
    "Key",
    "Operation",
    "PackTable",
    "Put",
    "TransactionConditionFailed",
    "Update",
]

BATCH_SIZE = 25  # items per BatchWriteItem
GET_BATCH_SIZE = 100  # keys per BatchGetItem
INDEX_NAME = "GSI1"
_THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
}
# Cancellation reasons that say "try again", not "your condition is false".
_TRANSIENT_CANCELLATIONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give callers ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dynamo(v) for v in value]
    return value


class DynamoPackTable:
    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        unprocessed_budget: float = 20.0,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
    ) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._db = client
        self.table_name = table_name
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()
        self._unprocessed_budget = unprocessed_budget  # seconds spent re-sending unprocessed work, at most
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.calls = 0  # DynamoDB API calls made through this adapter (benchmarks count them)

    # -- encoding --------------------------------------------------------------------------------
    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(_dynamo(v)) for k, v in item.items() if v is not None}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._de.deserialize(v)) for k, v in item.items()}

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {"PK": {"S": pk}, "SK": {"S": sk}}

    @staticmethod
    def _throttled(exc: Exception, what: str) -> ThrottledError | None:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in _THROTTLE_CODES:
            return ThrottledError(f"DynamoDB kept throttling {what} after the client's retries; try again shortly")
        return None

    def _call(self, name: str, *, with_table: bool = True, **kwargs: Any) -> Any:
        """One API call (botocore retries it per the client's retry configuration); throttling
        that outlived those retries becomes :class:`ThrottledError`."""
        from botocore.exceptions import ClientError

        if with_table:
            kwargs["TableName"] = self.table_name
        self.calls += 1
        try:
            return getattr(self._db, name)(**kwargs)
        except ClientError as exc:
            throttled = self._throttled(exc, name)
            if throttled is not None:
                raise throttled from exc
            raise

    def _until_processed(self, send: Any, pending: list[Any], what: str) -> None:
        """Send ``pending`` and re-send what DynamoDB leaves unprocessed, with jittered backoff,
        for at most the unprocessed budget; then :class:`ThrottledError`."""
        deadline = time.monotonic() + self._unprocessed_budget
        attempt = 0
        while True:
            pending = send(pending)
            if not pending:
                return
            delay = min(self._backoff_cap, self._backoff_base * 2**attempt) * random.random()  # noqa: S311 - jitter
            if time.monotonic() + delay > deadline:
                raise ThrottledError(
                    f"DynamoDB left {len(pending)} {what} unprocessed for {self._unprocessed_budget:.0f}s; "
                    "try again shortly"
                )
            time.sleep(delay)
            attempt += 1

    # -- reads -----------------------------------------------------------------------------------
    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call("get_item", Key=self._key(pk, sk), ConsistentRead=True)
        item = response.get("Item")
        return self._decode(item) if item else None

    def batch_get(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """Strongly consistent reads of many items, 100 keys per call; missing items are left out."""
        found: dict[Key, dict[str, Any]] = {}

        def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
            response = self._call(
                "batch_get_item",
                with_table=False,
                RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}},
            )
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = self._decode(raw)
                found[(item["PK"], item["SK"])] = item
            return list(response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", []))

        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), GET_BATCH_SIZE):
            chunk = unique[start : start + GET_BATCH_SIZE]
            self._until_processed(send, [self._key(pk, sk) for pk, sk in chunk], "keys")
        return found

    def _paged(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import ClientError

        pages = self._db.get_paginator("query").paginate(TableName=self.table_name, **kwargs)
        try:
            for page in pages:
                self.calls += 1
                for item in page.get("Items", []):
                    yield self._decode(item)
        except ClientError as exc:
            self.calls += 1  # the page that failed
            throttled = self._throttled(exc, "query")
            if throttled is not None:
                raise throttled from exc
            raise

    def query_prefix(self, pk: str, sk_prefix: str, *, attributes: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every item of partition ``pk`` whose sort key starts with ``sk_prefix`` (consistent)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)" if sk_prefix else "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}, **({":sk": {"S": sk_prefix}} if sk_prefix else {})},
            "ConsistentRead": True,
        }
        if attributes:
            names = {f"#p{i}": name for i, name in enumerate(dict.fromkeys(["PK", "SK", *attributes]))}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        return list(self._paged(**kwargs))

    def query_index(self, gsi_pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        condition = "GSI1PK = :pk"
        values: dict[str, Any] = {":pk": {"S": gsi_pk}}
        if sk_prefix:
            condition += " AND begins_with(GSI1SK, :sk)"
            values[":sk"] = {"S": sk_prefix}
        return list(
            self._paged(IndexName=INDEX_NAME, KeyConditionExpression=condition, ExpressionAttributeValues=values)
        )

    def query_index_page(
        self, gsi_pk: str, *, after: str | None = None, limit: int = 100, start: dict[str, str] | None = None
    ) -> IndexPage:
        """One page (at most ``limit`` items) of the index partition ``gsi_pk``, in sort-key order,
        from sort keys greater than ``after`` or from where the previous page stopped (``start``)."""
        condition = "GSI1PK = :pk"
        values: dict[str, Any] = {":pk": {"S": gsi_pk}}
        if after is not None:
            condition += " AND GSI1SK > :after"
            values[":after"] = {"S": after}
        kwargs: dict[str, Any] = {
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = {k: {"S": v} for k, v in start.items()}
        response = self._call("query", **kwargs)
        last = response.get("LastEvaluatedKey")
        return IndexPage(
            items=[self._decode(item) for item in response.get("Items", [])],
            next_start={k: v["S"] for k, v in last.items()} if last else None,
        )

    # -- writes ----------------------------------------------------------------------------------
    def batch_put(self, items: Iterable[dict[str, Any]]) -> int:
        """Write items 25 at a time; unprocessed items are re-sent (bounded time)."""
        return self._batched({"PutRequest": {"Item": self._encode(item)}} for item in items)

    def batch_delete(self, keys: Iterable[Key]) -> int:
        """Delete items 25 at a time (unconditionally); unprocessed deletes are re-sent."""
        return self._batched({"DeleteRequest": {"Key": self._key(pk, sk)}} for pk, sk in keys)

    def _batched(self, requests: Iterable[dict[str, Any]]) -> int:
        written = 0
        batch: list[dict[str, Any]] = []
        for request in requests:
            batch.append(request)
            if len(batch) == BATCH_SIZE:
                written += self._write_batch(batch)
                batch = []
        if batch:
            written += self._write_batch(batch)
        return written

    def _write_batch(self, requests: list[dict[str, Any]]) -> int:
        def send(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
            response = self._call("batch_write_item", with_table=False, RequestItems={self.table_name: pending})
            return list(response.get("UnprocessedItems", {}).get(self.table_name, []))

        self._until_processed(send, requests, "items")
        return len(requests)

    # -- transactions ----------------------------------------------------------------------------
    def _condition(self, condition: Condition | None, names: dict[str, str], values: dict[str, Any]) -> str | None:
        if condition is None:
            return None
        parts = []
        if condition.exists is True:
            parts.append("attribute_exists(PK)")
        elif condition.exists is False:
            parts.append("attribute_not_exists(PK)")
        for name, value in condition.equals.items():
            index = len(names)
            names[f"#c{index}"] = name
            values[f":c{index}"] = self._ser.serialize(_dynamo(value))
            parts.append(f"#c{index} = :c{index}")
        return " AND ".join(parts) or None

    def _transact_item(self, op: Operation) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        body: dict[str, Any] = {"TableName": self.table_name}
        if isinstance(op, Put):
            kind, body["Item"] = "Put", self._encode(op.item)
        elif isinstance(op, Delete):
            kind, body["Key"] = "Delete", self._key(op.pk, op.sk)
        elif isinstance(op, Check):
            kind, body["Key"] = "ConditionCheck", self._key(op.pk, op.sk)
        else:
            kind, body["Key"] = "Update", self._key(op.pk, op.sk)
            assignments = []
            for name, value in op.set.items():
                index = len(names)
                names[f"#u{index}"] = name
                values[f":u{index}"] = self._ser.serialize(_dynamo(value))
                assignments.append(f"#u{index} = :u{index}")
            expression = "SET " + ", ".join(assignments) if assignments else ""
            if op.remove:
                removed = []
                for name in op.remove:
                    index = len(names)
                    names[f"#u{index}"] = name
                    removed.append(f"#u{index}")
                expression += " REMOVE " + ", ".join(removed)
            body["UpdateExpression"] = expression.strip()
        condition = self._condition(op.condition, names, values)
        if condition:
            body["ConditionExpression"] = condition
        if names:
            body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = values
        return {kind: body}

    def transact(self, operations: Sequence[Operation]) -> None:
        """All operations or none. A failed condition raises :class:`TransactionConditionFailed`
        naming the operations whose condition failed; a cancellation by a conflicting transaction
        in flight or by throttling raises :class:`ThrottledError` (transient: try again)."""
        from botocore.exceptions import ClientError

        if not operations:
            return
        if len(operations) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction holds at most {TRANSACTION_LIMIT} operations, not {len(operations)}")
        items = [self._transact_item(op) for op in operations]
        # One token per call: botocore's own retries of this call reuse it, so a commit whose
        # answer was lost is not applied twice (nor reported as a failed condition).
        try:
            self._call(
                "transact_write_items", with_table=False, TransactItems=items, ClientRequestToken=uuid.uuid4().hex
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            failed = [i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
            if failed:
                raise TransactionConditionFailed(failed) from exc
            causes = {code for code in reasons if code not in (None, "None")}
            if reasons and not causes <= _TRANSIENT_CANCELLATIONS:
                raise
            raise ThrottledError(
                f"a registry transaction was cancelled ({', '.join(str(r) for r in reasons)}); try again shortly"
            ) from exc
