"""What the registry table can be asked to do, as plain values: the operations of a transaction
(:class:`Put`, :class:`Delete`, :class:`Check`, :class:`Update`), the :class:`Condition` that guards
them, a page of an index query, and :class:`PackTable`, the port the DynamoDB adapter (and the
in-memory fake of the unit tests) implements.

Pure vocabulary: no boto3 here. The aggregate modules of :mod:`attune_packs.data` build these
values; the adapter turns them into DynamoDB requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from attune_packs.errors import RegistrationConflictError

Key = tuple[str, str]  # (partition key, sort key)
TRANSACTION_LIMIT = 100  # operations per TransactWriteItems


def item_key(item: dict[str, Any]) -> Key:
    """The primary key of an item as stored."""
    return (str(item["PK"]), str(item["SK"]))


def key_attributes(item: dict[str, Any]) -> dict[str, Any]:
    """The primary key attributes of an item, as DynamoDB names them in a request's ``Key``."""
    return {"PK": item.get("PK"), "SK": item.get("SK")}


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
        return item_key(self.item)


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
    """The single table: consistent reads, prefix queries, the GSI1 index, batches, transactions."""

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
