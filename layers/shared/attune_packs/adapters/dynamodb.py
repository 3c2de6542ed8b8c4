"""The single-table registry in DynamoDB (DESIGN.md section 5).

Items are plain dicts here; the registry service decides what goes in them. This adapter knows the
key shape, batching (25 items per ``BatchWriteItem``, unprocessed items retried with backoff) and
the conditional pointer flip.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, Protocol

from attune_packs.errors import RegistrationConflictError, ThrottledError

BATCH_SIZE = 25
_THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
}


class PackTable(Protocol):
    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None: ...
    def query_prefix(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]: ...
    def query_index(self, gsi_pk: str, sk_prefix: str = "") -> list[dict[str, Any]]: ...
    def batch_put(self, items: Iterable[dict[str, Any]]) -> int: ...
    def put_if_revision(self, item: dict[str, Any], expected_revision: int | None) -> None: ...


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give callers ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


class DynamoPackTable:
    def __init__(self, client: Any, table_name: str, *, max_retries: int = 8) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._db = client
        self.table_name = table_name
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()
        self._max_retries = max_retries
        self.calls = 0  # DynamoDB API calls made through this adapter (benchmarks count them)

    # -- encoding --------------------------------------------------------------------------------
    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(_dynamo(v)) for k, v in item.items() if v is not None}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: _plain(self._de.deserialize(v)) for k, v in item.items()}

    def _call(self, name: str, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        self.calls += 1
        try:
            return getattr(self._db, name)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _THROTTLE_CODES:
                raise ThrottledError(f"DynamoDB throttled {name}") from exc
            raise

    # -- reads -----------------------------------------------------------------------------------
    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call("get_item", Key={"PK": {"S": pk}, "SK": {"S": sk}}, ConsistentRead=True)
        item = response.get("Item")
        return self._decode(item) if item else None

    def _paged(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                yield self._decode(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_prefix(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        return list(
            self._paged(
                KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
                ExpressionAttributeValues={":pk": {"S": pk}, ":sk": {"S": sk_prefix}},
                ConsistentRead=True,
            )
        )

    def query_index(self, gsi_pk: str, sk_prefix: str = "") -> list[dict[str, Any]]:
        condition = "GSI1PK = :pk"
        values: dict[str, Any] = {":pk": {"S": gsi_pk}}
        if sk_prefix:
            condition += " AND begins_with(GSI1SK, :sk)"
            values[":sk"] = {"S": sk_prefix}
        return list(
            self._paged(
                IndexName="GSI1",
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        )

    # -- writes ----------------------------------------------------------------------------------
    def batch_put(self, items: Iterable[dict[str, Any]]) -> int:
        """Write items 25 at a time; unprocessed items are retried with jittered backoff."""
        written = 0
        batch: list[dict[str, Any]] = []
        for item in items:
            batch.append({"PutRequest": {"Item": self._encode(item)}})
            if len(batch) == BATCH_SIZE:
                written += self._write_batch(batch)
                batch = []
        if batch:
            written += self._write_batch(batch)
        return written

    def _write_batch(self, requests: list[dict[str, Any]]) -> int:
        pending = requests
        for attempt in range(self._max_retries + 1):
            self.calls += 1
            response = self._db.batch_write_item(RequestItems={self.table_name: pending})
            pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not pending:
                return len(requests)
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())  # noqa: S311 - jitter
        raise ThrottledError(f"DynamoDB left {len(pending)} items unprocessed after {self._max_retries} retries")

    def put_if_revision(self, item: dict[str, Any], expected_revision: int | None) -> None:
        """Put ``item`` only if the stored item's ``revision`` is still ``expected_revision``."""
        from botocore.exceptions import ClientError

        if expected_revision is None:
            condition = "attribute_not_exists(PK)"
            values: dict[str, Any] = {}
        else:
            condition = "revision = :expected"
            values = {":expected": {"N": str(expected_revision)}}
        try:
            self._call(
                "put_item",
                Item=self._encode(item),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise RegistrationConflictError(
                    f"{item['PK']} changed while this registration ran (expected revision "
                    f"{expected_revision}); another installation won. Retry to install on top of it."
                ) from exc
            raise
