"""The local stack's item sizes are moto's own (they decide where a 1 MB query page ends)."""

from __future__ import annotations

import pytest
from moto.dynamodb.models.dynamo_type import DynamoType

from attune_cli.moto_state import _value_size

VALUES = [
    {"S": "ünïcode"},
    {"S": ""},
    {"N": "12.50"},
    {"B": b"\x00\x01binary"},
    {"B": "AAE="},
    {"BOOL": True},
    {"NULL": True},
    {"SS": ["a", "bb"]},
    {"NS": ["1", "2.5"]},
    {"BS": [b"x", "eQ=="]},
    {"L": [{"S": "a"}, {"N": "1"}, {"M": {"k": {"S": "v"}}}]},
    {"M": {"list": {"L": [{"S": "a"}]}, "empty": {"S": ""}, "n": {"N": "3"}}},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: next(iter(v)))
def test_a_value_has_the_size_moto_gives_it(value: dict[str, object]) -> None:
    typed = DynamoType(value)
    assert _value_size(typed) == typed.size()
