"""moto's DynamoDB queries at the cost of what they read, for the local stack (:mod:`.moto_state`).

moto 5 answers a query by sorting every item of the table, then, for each item in turn, summing
its size (before testing its key condition: every item of the partition is sized), deep-copying
the ones it returns and turning them into JSON value by value. On a table holding a pack of
thousands of components, reading a small pack cost as much as reading the big one, and reading
150 packs' pointers cost more than the packs themselves.

Here a query's candidates are the items its key condition selects (the partition's, for the
table; those whose index keys match, for an index), handed to moto's own query, which sorts,
pages, filters and projects them as before: the same answers, from the items they come from.
Because every DynamoDB request is answered under one lock (:mod:`.moto_state`), nothing changes
an item while a query answers: the items are answered without a deep copy (projections make new
ones), and what a query learns (a partition's items in key order, an item's size) is kept until
the next request that is not an item read (:meth:`PartitionQueries.changed`). A condition on a
string sort key finds where its items start in the kept order by bisection, and moto is handed the
partition from there on (the items after the matches still decide where its pages end); an
answer's values are turned into plain DynamoDB JSON by one walk over their types.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

Patch = Callable[[Any, str, Any], None]

# Table.query's keyword parameters; any other keyword is a legacy QueryFilter condition.
_QUERY_KEYWORDS = {"consistent_read", "filter_expression", "hash_key_conditions", "range_key_conditions", "index_name"}


class PartitionQueries:
    """The patches of moto's query (:meth:`install`) and what they keep between two writes."""

    def __init__(self) -> None:
        self._scoped = threading.local()
        self._partitions: dict[tuple[Any, ...], _Partition] = {}  # candidates by hash key condition
        self._sizes: dict[int, tuple[Any, int]] = {}  # id(item) -> (item, its size): the item is kept alive

    def changed(self) -> None:
        """The table may have changed (a write, a table operation, a restore): forget what was kept."""
        self._partitions.clear()
        self._sizes.clear()

    def install(self, patch: Patch) -> None:
        from moto.dynamodb import responses
        from moto.dynamodb.models.dynamo_type import Item
        from moto.dynamodb.models.table import Table

        queries, scoped = self, self._scoped
        original_query, original_all_items = Table.query, Table.all_items
        original_copy, original_size = Item.__deepcopy__, Item.size

        def query(table: Any, hash_key: Any, range_comparison: Any, range_objs: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = args[4] if len(args) > 4 else kwargs.get("index_name")
            partition = queries._partition(table, hash_key, index_name, kwargs.get("hash_key_conditions") or [])
            # moto tests the last range condition only; with a legacy QueryFilter it keeps items
            # that match the filter but not the condition: then the condition is left to it
            condition = None if _has_filter(kwargs) else _RangeCondition.of(range_comparison, range_objs, kwargs)
            forward = args[2] if len(args) > 2 else kwargs.get("scan_index_forward", True)
            candidates = None if partition is None else partition.candidates(condition, forward is not False)
            scoped.pending, scoped.querying = (table, candidates), True
            try:
                return original_query(table, hash_key, range_comparison, range_objs, *args, **kwargs)
            finally:
                scoped.pending, scoped.querying = None, False

        def all_items(table: Any) -> Any:
            pending = getattr(scoped, "pending", None)
            if pending is not None and pending[0] is table and pending[1] is not None:
                scoped.pending = None
                return list(pending[1])
            return original_all_items(table)

        def deepcopy(item: Any, memo: dict[int, Any]) -> Any:
            return item if getattr(scoped, "querying", False) else original_copy(item, memo)

        def size(item: Any) -> int:
            if not getattr(scoped, "querying", False):
                return int(original_size(item))
            kept = queries._sizes.get(id(item))
            if kept is None or kept[0] is not item:
                kept = queries._sizes[id(item)] = (item, int(original_size(item)))
            return kept[1]

        patch(Table, "query", query)
        patch(Table, "all_items", all_items)
        patch(Item, "__deepcopy__", deepcopy)
        patch(Item, "size", size)
        patch(responses, "dynamo_to_dict", _plain_answer(responses.dynamo_to_dict))

    def _partition(
        self, table: Any, hash_key: Any, index_name: str | None, hash_conditions: list[tuple[str, Any]]
    ) -> _Partition | None:
        """The items of the partition a query reads, about in moto's order (moto sorts them again:
        a sorted list costs it one comparison an item); None: let moto look at all of them."""
        if not table.range_key_attr or (index_name is None and hash_key is None):
            return None
        if index_name is not None and not hash_conditions:
            return None
        if index_name is None:
            key: tuple[Any, ...] = (id(table), None, hash_key.type, _raw(hash_key))
        else:
            key = (id(table), index_name, *((name, value.type, _raw(value)) for name, value in hash_conditions))
        kept = self._partitions.get(key)
        if kept is not None:
            return kept
        if index_name is None:
            items = list(table.items.get(hash_key, {}).values())
            order = [table.range_key_attr]
        else:
            items = [
                item
                for partition in table.items.values()
                for item in partition.values()
                if all(_equals(item.attrs.get(name), value) for name, value in hash_conditions)
            ]
            # moto's order: the index's keys, then the table's (the hash keys are the same for all)
            schema = table.get_index(index_name).schema
            order = [k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"]
            order += [table.hash_key_attr, table.range_key_attr]
        kept = self._partitions[key] = _Partition(items, order)
        return kept


class _Partition:
    """A query's candidates, in the order of their keys after the hash key (``order``); when the
    first of them is a string in every item, a condition on it is answered by bisection."""

    def __init__(self, items: list[Any], order: list[str]) -> None:
        self.items, self.sorted_by = items, order[0]
        self.keys: list[str] | None = None
        try:
            items.sort(key=lambda item: tuple(_raw(item.attrs.get(name)) for name in order))
        except TypeError:  # values of different kinds: moto's own sort decides
            return
        values = [item.attrs.get(self.sorted_by) for item in items]
        if all(value is None or value.type == "S" for value in values):
            self.keys = ["" if value is None else value.value for value in values]

    def candidates(self, condition: _RangeCondition | None, forward: bool) -> list[Any]:
        """What moto's loop must see to answer as it does on every item: from the first item the
        condition can hold, in the query's direction, to the partition's end. moto tests the
        condition itself; the items after the matches still decide its page end (with ``Limit``
        reached, a next item, matching or not, gives a ``LastEvaluatedKey``; a large one ends a
        1 MB page). The items before the first match cannot change its answer."""
        if condition is None or self.keys is None or condition.name != self.sorted_by:
            return self.items
        low, high = condition.window(self.keys)
        return self.items[low:] if forward else self.items[:high]


class _RangeCondition:
    """A query's last range condition (the one moto tests), to find where its items lie."""

    def __init__(self, name: str, comparison: str, operands: list[Any]) -> None:
        self.name, self.comparison, self.operands = name, comparison, operands

    @classmethod
    def of(cls, range_comparison: Any, range_objs: Any, kwargs: dict[str, Any]) -> _RangeCondition | None:
        conditions = kwargs.get("range_key_conditions") or []
        if not range_comparison or not conditions:
            return None
        return cls(conditions[-1][0], range_comparison, list(range_objs))

    def window(self, keys: list[str]) -> tuple[int, int]:
        """Where in ``keys`` (sorted strings) the items this condition can hold lie."""
        if not self.operands or any(operand.type != "S" for operand in self.operands):
            return 0, len(keys)
        first = self.operands[0].value
        bounds: dict[str, Callable[[], tuple[int, int]]] = {
            "EQ": lambda: (bisect_left(keys, first), bisect_right(keys, first)),
            "LT": lambda: (0, bisect_left(keys, first)),
            "LE": lambda: (0, bisect_right(keys, first)),
            "GT": lambda: (bisect_right(keys, first), len(keys)),
            "GE": lambda: (bisect_left(keys, first), len(keys)),
            "BETWEEN": lambda: (bisect_left(keys, first), bisect_right(keys, self.operands[-1].value)),
            "BEGINS_WITH": lambda: _prefixed(keys, first),
        }
        return bounds.get(_NAMED.get(self.comparison, self.comparison.upper()), lambda: (0, len(keys)))()


_NAMED = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}  # moto's comparisons by either name


def _prefixed(keys: list[str], prefix: str) -> tuple[int, int]:
    low = high = bisect_left(keys, prefix)
    while high < len(keys) and keys[high].startswith(prefix):
        high += 1
    return low, high


def _has_filter(kwargs: dict[str, Any]) -> bool:
    return any(key not in _QUERY_KEYWORDS for key in kwargs)


def _equals(got: Any, wanted: Any) -> bool:
    return got is not None and bool(got == wanted)


def _raw(value: Any) -> Any:
    return "" if value is None else value.value


def _plain_answer(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto's dynamo_to_dict (an answer's DynamoType values as ``{type: value}``), walking values by
    their type; binary values, and anything not a value, dict or list, are left to moto."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    def value(typed: Any) -> Any:
        kind, raw = typed.type, typed.value
        if kind == "M":
            return {"M": {k: value(v) if type(v) is DynamoType else original(v) for k, v in raw.items()}}
        if kind == "L":
            return {"L": [value(v) if type(v) is DynamoType else original(v) for v in raw]}
        if kind in {"B", "BS"}:
            return original(typed)
        return {kind: list(raw) if isinstance(raw, list) else raw}

    def plain(obj: Any) -> Any:
        if type(obj) is DynamoType:
            return value(obj)
        if isinstance(obj, dict) and not hasattr(obj, "to_json"):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [plain(v) for v in obj]
        return original(obj)

    return plain
