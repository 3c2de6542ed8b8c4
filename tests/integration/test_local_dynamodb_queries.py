"""The local stack's DynamoDB queries (which look only at the partition their key condition selects,
from where its range starts, and keep what they learnt until the next write) answer exactly as
moto's own: the same items, in the same order, in the same pages (where ``Limit`` or 1 MB ends them,
with or without a ``LastEvaluatedKey``), before and after writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from attune_cli.local_stack import LocalStack

pytestmark = pytest.mark.slow

TABLE = "query-fidelity"
INDEX = "GSI1"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _create(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": INDEX,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def _items() -> list[dict[str, Any]]:
    """A big partition (components and listings of two registrations), small ones, items that are
    not in the index, numbers and nested values, and large items that end 1 MB pages."""
    items = []
    for n in range(260):
        rid = "r1" if n % 3 else "r2"
        kind = "actions" if n % 5 else "sensors"
        items.append(
            {
                "PK": _s("PACK#big"),
                "SK": _s(f"COMPONENT#1.0.0#{rid}#{kind}#c{n:04}"),
                "GSI1PK": _s(f"COMPONENT#{kind}"),
                "GSI1SK": _s(f"big.c{n:04}#1.0.0#{rid}"),
                "n": {"N": str(n % 17)},
                "document": {"M": {"tags": {"L": [_s("a"), {"N": "1.5"}]}, "flag": {"BOOL": n % 2 == 0}}},
            }
        )
    for pack in ("alpha", "beta", "gamma"):
        items.append({"PK": _s(f"PACK#{pack}"), "SK": _s("CURRENT"), "GSI1PK": _s("PACKS"), "GSI1SK": _s(pack)})
        items.append({"PK": _s(f"PACK#{pack}"), "SK": _s("CURRENT#DEPENDENT#big"), "version": _s("1")})
        for version in ("1.0.0", "1.10.0", "1.2.0"):
            items.append({"PK": _s(f"PACK#{pack}"), "SK": _s(f"VERSION#{version}"), "size": {"N": "3"}})
        items.append(
            {
                "PK": _s(f"PACK#{pack}"),
                "SK": _s("COMPONENT#1.0.0#r9#actions#x"),
                "GSI1PK": _s("COMPONENT#actions"),
                "GSI1SK": _s(f"{pack}.x#1.0.0#r9"),
            }
        )
    items.append({"PK": _s("PACK#big"), "SK": _s("CURRENT"), "GSI1PK": _s("PACKS"), "GSI1SK": _s("big")})
    items.append({"PK": _s("PACK#unlisted"), "SK": _s("CURRENT"), "GSI1PK": _s("PACKS")})  # not in the index
    for n in range(14):  # about 100 KB each: a page holds ten of them
        items.append({"PK": _s("PACK#large"), "SK": _s(f"BLOB#{n:02}"), "body": _s("x" * 100_000)})
    return items


LARGE_PARTITION: dict[str, Any] = {
    "KeyConditionExpression": "PK = :pk",
    "ExpressionAttributeValues": {":pk": _s("PACK#large")},
}
PACKS_INDEX: dict[str, Any] = {
    "IndexName": INDEX,
    "KeyConditionExpression": "GSI1PK = :pk",
    "ExpressionAttributeValues": {":pk": _s("PACKS")},
}
ACTIONS_INDEX: dict[str, Any] = {
    "IndexName": INDEX,
    "KeyConditionExpression": "GSI1PK = :pk",
    "ExpressionAttributeValues": {":pk": _s("COMPONENT#actions")},
    "Limit": 64,
}
QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": _s("PACK#alpha")}},
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": _s("PACK#big")}, "Limit": 97},
    {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
        "ExpressionAttributeValues": {":pk": _s("PACK#big"), ":sk": _s("COMPONENT#1.0.0#r2#")},
        "Limit": 30,
    },
    {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
        "ExpressionAttributeValues": {":pk": _s("PACK#beta"), ":sk": _s("CURRENT")},
        "ConsistentRead": True,
    },
    {
        "KeyConditionExpression": "PK = :pk AND SK BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":pk": _s("PACK#big"), ":a": _s("COMPONENT#1.0.0#r1#a"), ":b": _s("COMPONENT#z")},
        "ScanIndexForward": False,
        "Limit": 50,
    },
    {  # to the end of the partition
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
        "ExpressionAttributeValues": {":pk": _s("PACK#gamma"), ":sk": _s("VERSION#")},
    },
    {
        "KeyConditionExpression": "PK = :pk AND SK > :after",
        "ExpressionAttributeValues": {":pk": _s("PACK#gamma"), ":after": _s("VERSION#1.10.0")},
    },
    {
        "KeyConditionExpression": "PK = :pk AND begins_with(SK, :sk)",
        "FilterExpression": "n > :n",
        "ExpressionAttributeValues": {":pk": _s("PACK#big"), ":sk": _s("COMPONENT#"), ":n": {"N": "9"}},
        "ProjectionExpression": "SK, n, document.flag",
        "Limit": 40,
    },
    *(
        {
            "KeyConditionExpression": f"PK = :pk AND SK {operator} :v",
            "ExpressionAttributeValues": {":pk": _s("PACK#big"), ":v": _s("COMPONENT#1.0.0#r1#actions#c0101")},
            "Limit": 70,
        }
        for operator in ("=", "<", "<=", ">=")
    ),
    LARGE_PARTITION,
    {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": _s("PACK#none")}},
    PACKS_INDEX,
    {
        "IndexName": INDEX,
        "KeyConditionExpression": "GSI1PK = :pk AND GSI1SK > :after",
        "ExpressionAttributeValues": {":pk": _s("COMPONENT#actions"), ":after": _s("big.~")},
        "Limit": 2,
    },
    ACTIONS_INDEX,
    {
        "IndexName": INDEX,
        "KeyConditionExpression": "GSI1PK = :pk AND GSI1SK BETWEEN :a AND :b",
        "ExpressionAttributeValues": {
            ":pk": _s("COMPONENT#actions"),
            ":a": _s("big.c0050"),
            ":b": _s("big.c0101#1.0.0#r1"),
        },
    },
    {
        "IndexName": INDEX,
        "KeyConditionExpression": "GSI1PK = :pk AND GSI1SK <= :v",
        "ExpressionAttributeValues": {":pk": _s("PACKS"), ":v": _s("big")},
    },
    {
        "IndexName": INDEX,
        "KeyConditionExpression": "GSI1PK = :pk AND begins_with(GSI1SK, :sk)",
        "ExpressionAttributeValues": {":pk": _s("COMPONENT#sensors"), ":sk": _s("big.c01")},
        "ScanIndexForward": False,
        "Select": "COUNT",
    },
    # Limit equal to the matches, with items after them (either way) or at the partition's end:
    # moto's page ends (LastEvaluatedKey or none) depend on the items that follow the matches
    *(
        {
            "KeyConditionExpression": f"PK = :pk AND {condition}",
            "ExpressionAttributeValues": {":pk": _s("PACK#gamma"), ":v": _s(value)},
            "ScanIndexForward": forward,
            "Limit": limit,
        }
        for condition, value, forward, limit in (
            ("begins_with(SK, :v)", "COMPONENT#", True, 1),
            ("begins_with(SK, :v)", "CURRENT", True, 2),
            ("SK < :v", "CURRENT#", True, 2),
            ("SK > :v", "CURRENT#DEPENDENT#big", False, 3),
            ("begins_with(SK, :v)", "VERSION#", True, 3),
            ("begins_with(SK, :v)", "COMPONENT#", False, 1),
        )
    ),
    {  # an index page that ends exactly where the prefix ends
        "IndexName": INDEX,
        "KeyConditionExpression": "GSI1PK = :pk AND begins_with(GSI1SK, :sk)",
        "ExpressionAttributeValues": {":pk": _s("PACKS"), ":sk": _s("b")},
        "Limit": 2,
    },
]


def _pages(dynamodb: Any, query: dict[str, Any]) -> list[dict[str, Any]]:
    pages, start = [], None
    while True:
        answer = dynamodb.query(TableName=TABLE, **query, **({"ExclusiveStartKey": start} if start else {}))
        pages.append({k: answer.get(k) for k in ("Items", "Count", "ScannedCount", "LastEvaluatedKey")})
        start = answer.get("LastEvaluatedKey")
        if not start:
            return pages


def _answers(dynamodb: Any) -> list[Any]:
    """Every query's pages; then again after writes that move items in and out of what the
    queries select (and change an item's size)."""
    _create(dynamodb)
    items = _items()
    for at in range(0, len(items), 25):
        chunk = items[at : at + 25]
        dynamodb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": item}} for item in chunk]})
    answers = [_pages(dynamodb, query) for query in QUERIES]
    answers.append([_pages(dynamodb, query) for query in QUERIES])  # asked twice: the same answers
    dynamodb.update_item(
        TableName=TABLE,
        Key={"PK": _s("PACK#big"), "SK": _s("COMPONENT#1.0.0#r1#actions#c0001")},
        UpdateExpression="SET GSI1SK = :moved, body = :body",
        ExpressionAttributeValues={":moved": _s("aaa.first#1.0.0#r1"), ":body": _s("y" * 200_000)},
    )
    dynamodb.delete_item(TableName=TABLE, Key={"PK": _s("PACK#alpha"), "SK": _s("CURRENT")})
    dynamodb.put_item(TableName=TABLE, Item={"PK": _s("PACK#large"), "SK": _s("BLOB#00"), "body": _s("small")})
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"PK": _s("PACK#delta"), "SK": _s("CURRENT"), **_index("delta")}}},
            {"Delete": {"TableName": TABLE, "Key": {"PK": _s("PACK#gamma"), "SK": _s("VERSION#1.2.0")}}},
        ]
    )
    answers.append([_pages(dynamodb, query) for query in QUERIES])
    return answers


def _index(ref: str) -> dict[str, Any]:
    return {"GSI1PK": _s("PACKS"), "GSI1SK": _s(ref)}


def test_queries_answer_as_moto_does_before_and_after_writes(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "state", persist=False) as stack:
        local = _answers(stack.client("dynamodb"))
    with mock_aws():
        plain = _answers(boto3.client("dynamodb", region_name="us-east-1"))
    assert len(local) == len(plain) == len(QUERIES) + 2
    for got, wanted in zip(local, plain, strict=True):
        assert got == wanted
    # what the writes changed shows in the answers read after them
    after_writes = local[-1]
    packs, actions, large = (QUERIES.index(q) for q in (PACKS_INDEX, ACTIONS_INDEX, LARGE_PARTITION))
    assert [i["GSI1SK"]["S"] for i in after_writes[packs][0]["Items"]] == ["beta", "big", "delta", "gamma"]
    assert after_writes[actions][0]["Items"][0]["GSI1SK"]["S"] == "aaa.first#1.0.0#r1"
    assert [len(page["Items"]) for page in local[large]] == [9, 5]  # 1 MB pages of ~100 KB items
    assert [len(page["Items"]) for page in after_writes[large]] == [10, 4]  # one of them is small now
