"""The single-table registry in DynamoDB (DESIGN.md section 5).

Items are plain dicts here; the registry services decide what goes in them and which keys they
use. This adapter knows DynamoDB's mechanics:

* batching: 25 items per ``BatchWriteItem`` and 100 keys per ``BatchGetItem``, unprocessed items
  and keys retried with jittered exponential backoff;
* conditional writes as all-or-nothing transactions (:meth:`DynamoPackTable.transact`) built from a
  tiny condition vocabulary (:class:`Condition`), so services never write expression syntax;
* throttling (and transaction conflicts, which AWS reports when two transactions touch one item at
  once) retried with backoff, then :class:`ThrottledError`, which is transient: the stage is retried.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from attune_packs.errors import RegistrationConflictError, ThrottledError

BATCH_SIZE = 25  # items per BatchWriteItem
GET_BATCH_SIZE = 100  # keys per BatchGetItem
TRANSACTION_LIMIT = 100  # operations per TransactWriteItems
INDEX_NAME = "GSI1"
_THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}
# Cancellation reasons that say "try again", not "your condition is false".
_TRANSIENT_CANCELLATIONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}

Key = tuple[str, str]


# -- the condition vocabulary and the operations of a transaction ----------------------------------


@dataclass(frozen=True)
class Condition:
    """What must hold for the stored item before a write: ``exists`` True (present) or False (absent),
    and every ``equals`` attribute equal to its value (which implies presence)."""

    exists: bool | None = None
    equals: dict[str, Any] = field(default_factory=dict)

    def holds_for(self, item: dict[str, Any] | None) -> bool:
        """The same test DynamoDB applies (used by the in-memory fake of the unit tests)."""
        if self.exists is True and item is None:
            return False
        if self.exists is False and item is not None:
            return False
        return all(item is not None and name in item and item[name] == value for name, value in self.equals.items())


@dataclass(frozen=True)
class Put:
    item: dict[str, Any]
    condition: Condition | None = None

    @property
    def key(self) -> Key:
        return (str(self.item["PK"]), str(self.item["SK"]))


@dataclass(frozen=True)
class Delete:
    pk: str
    sk: str
    condition: Condition | None = None

    @property
    def key(self) -> Key:
        return (self.pk, self.sk)


@dataclass(frozen=True)
class Check:
    pk: str
    sk: str
    condition: Condition

    @property
    def key(self) -> Key:
        return (self.pk, self.sk)


@dataclass(frozen=True)
class Update:
    """Set (and remove) some attributes of an item, creating it if absent unless the condition says."""

    pk: str
    sk: str
    set: dict[str, Any]
    remove: tuple[str, ...] = ()
    condition: Condition | None = None

    @property
    def key(self) -> Key:
        return (self.pk, self.sk)


Operation = Put | Delete | Check | Update


class TransactionConditionFailed(RegistrationConflictError):
    """A transaction was cancelled because a condition did not hold. ``failed`` holds the indexes of
    the operations whose condition failed; the caller knows what each one guarded."""

    def __init__(self, failed: list[int]) -> None:
        super().__init__(
            f"a registry write was refused because the pack changed meanwhile (operations {failed})",
            details={"failed_operations": failed},
        )
        self.failed = failed


@dataclass
class IndexPage:
    items: list[dict[str, Any]]
    next_start: dict[str, str] | None  # pass back as ``start`` for the next page; None: no more


class PackTable(Protocol):
    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None: ...
    def batch_get(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]: ...
    def query_prefix(
        self, pk: str, sk_prefix: str, *, attributes: Sequence[str] | None = None
    ) -> list[dict[str, Any]]: ...
    def query_index(self, gsi_pk: str, sk_prefix: str = "") -> list[dict[str, Any]]: ...
    def query_index_page(
        self, gsi_pk: str, *, after: str | None = None, limit: int = 100, start: dict[str, str] | None = None
    ) -> IndexPage: ...
    def batch_put(self, items: Iterable[dict[str, Any]]) -> int: ...
    def batch_delete(self, keys: Iterable[Key]) -> int: ...
    def transact(self, operations: Sequence[Operation]) -> None: ...


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
        max_retries: int = 8,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
    ) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._db = client
        self.table_name = table_name
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.calls = 0  # DynamoDB API calls made through this adapter, retries included (benchmarks count them)

    # -- encoding --------------------------------------------------------------------------------
    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(_dynamo(v)) for k, v in item.items() if v is not None}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._de.deserialize(v)) for k, v in item.items()}

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {"PK": {"S": pk}, "SK": {"S": sk}}

    def _backoff(self, attempt: int) -> None:
        time.sleep(min(self._backoff_cap, self._backoff_base * 2**attempt) * random.random())  # noqa: S311 - jitter

    def _call(self, name: str, *, with_table: bool = True, **kwargs: Any) -> Any:
        """One API call; throttling is retried with full-jitter backoff, then ThrottledError."""
        from botocore.exceptions import ClientError

        if with_table:
            kwargs["TableName"] = self.table_name
        for attempt in range(self._max_retries + 1):
            self.calls += 1
            try:
                return getattr(self._db, name)(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _THROTTLE_CODES:
                    raise
                if attempt == self._max_retries:
                    raise ThrottledError(
                        f"DynamoDB kept throttling {name} after {self._max_retries} retries; try again shortly"
                    ) from exc
                self._backoff(attempt)
        raise AssertionError("unreachable")

    # -- reads -----------------------------------------------------------------------------------
    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call("get_item", Key=self._key(pk, sk), ConsistentRead=True)
        item = response.get("Item")
        return self._decode(item) if item else None

    def batch_get(self, keys: Sequence[Key]) -> dict[Key, dict[str, Any]]:
        """Strongly consistent reads of many items, 100 keys per call; missing items are left out."""
        found: dict[Key, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), GET_BATCH_SIZE):
            pending = [self._key(pk, sk) for pk, sk in unique[start : start + GET_BATCH_SIZE]]
            for attempt in range(self._max_retries + 1):
                response = self._call(
                    "batch_get_item",
                    with_table=False,
                    RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}},
                )
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    item = self._decode(raw)
                    found[(item["PK"], item["SK"])] = item
                pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if not pending:
                    break
                if attempt == self._max_retries:
                    raise ThrottledError(f"DynamoDB left {len(pending)} keys unread after {self._max_retries} retries")
                self._backoff(attempt)
        return found

    def _paged(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                yield self._decode(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

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
        """Write items 25 at a time; unprocessed items are retried with jittered backoff."""
        return self._batched({"PutRequest": {"Item": self._encode(item)}} for item in items)

    def batch_delete(self, keys: Iterable[Key]) -> int:
        """Delete items 25 at a time (unconditionally); unprocessed deletes are retried."""
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
        pending = requests
        for attempt in range(self._max_retries + 1):
            response = self._call("batch_write_item", with_table=False, RequestItems={self.table_name: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not pending:
                return len(requests)
            if attempt < self._max_retries:
                self._backoff(attempt)
        raise ThrottledError(f"DynamoDB left {len(pending)} items unprocessed after {self._max_retries} retries")

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
        naming the operations whose condition failed; conflicts with another transaction in flight
        and throttling are retried with backoff, then :class:`ThrottledError`."""
        from botocore.exceptions import ClientError

        if not operations:
            return
        if len(operations) > TRANSACTION_LIMIT:
            raise ValueError(f"a transaction holds at most {TRANSACTION_LIMIT} operations, not {len(operations)}")
        items = [self._transact_item(op) for op in operations]
        for attempt in range(self._max_retries + 1):
            # One token per attempt: botocore's own retries of this call reuse it, so a commit whose
            # answer was lost is not applied twice (nor reported as a failed condition).
            token = uuid.uuid4().hex
            try:
                self._call("transact_write_items", with_table=False, TransactItems=items, ClientRequestToken=token)
                return
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if error.get("Code") not in {"TransactionCanceledException", "TransactionInProgressException"}:
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                failed = [i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
                if failed:
                    raise TransactionConditionFailed(failed) from exc
                causes = {code for code in reasons if code not in (None, "None")}
                if reasons and not causes <= _TRANSIENT_CANCELLATIONS:
                    raise
                if attempt == self._max_retries:
                    raise ThrottledError(
                        f"a registry transaction kept being cancelled ({', '.join(str(r) for r in reasons)}) "
                        f"after {self._max_retries} retries; try again shortly"
                    ) from exc
                self._backoff(attempt)
