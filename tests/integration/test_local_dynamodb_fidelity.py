"""The local stack's DynamoDB answers item reads exactly as moto (and AWS) would, fast paths included."""

from __future__ import annotations

from pathlib import Path

import pytest

from attune_cli.local_stack import LocalStack

pytestmark = pytest.mark.slow

ITEM = {
    "PK": {"S": "PACK#fidelity"},
    "SK": {"S": "CURRENT"},
    "GSI1PK": {"S": "PACKS"},
    "GSI1SK": {"S": "fidelity"},
    "text": {"S": 'ünïcode "quoted"'},
    "number": {"N": "12.50"},
    "binary": {"B": b"\x00\x01binary\xff"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "nested": {"M": {"list": {"L": [{"S": "a"}, {"N": "1"}, {"M": {}}]}, "empty": {"S": ""}}},
    "strings": {"SS": ["x", "y"]},
    "numbers": {"NS": ["1", "2.5"]},
}


def test_item_reads_return_every_attribute_type_unchanged(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "state", persist=False) as stack:
        dynamodb = stack.client("dynamodb")
        dynamodb.put_item(TableName=stack.table, Item=ITEM)
        for rank in range(3):  # neighbours, to sort among
            dynamodb.put_item(
                TableName=stack.table,
                Item={"PK": {"S": "PACK#fidelity"}, "SK": {"S": f"VERSION#{rank}"}, "n": {"N": str(10 - rank)}},
            )

        got = dynamodb.get_item(TableName=stack.table, Key={"PK": ITEM["PK"], "SK": ITEM["SK"]})["Item"]
        queried = dynamodb.query(
            TableName=stack.table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": ITEM["PK"]},
        )["Items"]
        by_index = dynamodb.query(
            TableName=stack.table,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk AND begins_with(GSI1SK, :sk)",
            ExpressionAttributeValues={":pk": {"S": "PACKS"}, ":sk": {"S": "fid"}},
        )["Items"]
        page = dynamodb.query(
            TableName=stack.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :v)",
            ExpressionAttributeValues={":pk": ITEM["PK"], ":v": {"S": "VERSION#"}},
            Limit=2,
        )

    sets = {"strings": "SS", "numbers": "NS"}  # sets come back in any order
    assert {k: v for k, v in got.items() if k not in sets} == {k: v for k, v in ITEM.items() if k not in sets}
    assert all(sorted(got[name][kind]) == sorted(ITEM[name][kind]) for name, kind in sets.items())
    assert [i["SK"]["S"] for i in queried] == ["CURRENT", "VERSION#0", "VERSION#1", "VERSION#2"]
    assert [i["GSI1SK"]["S"] for i in by_index] == ["fidelity"]
    assert [i["SK"]["S"] for i in page["Items"]] == ["VERSION#0", "VERSION#1"]
    assert page["LastEvaluatedKey"] == {"PK": ITEM["PK"], "SK": {"S": "VERSION#1"}}
