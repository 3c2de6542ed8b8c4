"""What every step of a registration shares: the retention and size policy, the clock, ids."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


TRANSACTION_BYTES = 4_000_000  # what one TransactWriteItems may carry, all items together


@dataclass(frozen=True)
class RegistryPolicy:
    """How much history is kept and where large content goes."""

    keep_versions: int = 5  # registrations whose component items are kept (the current one included)
    # A registration still STAGED after this long is dead (a Lambda runs at most 15 minutes).
    staged_grace: timedelta = timedelta(minutes=30)
    # Component parameter / output schemas and attributes larger than this go to S3.
    offload_bytes: int = 32 * 1024
    max_item_bytes: int = 350 * 1024  # DynamoDB's limit is 400 KB, names included
    # A registration whose items take at most this (as JSON) and fit in the room the flip's
    # transaction leaves (100 operations) is written in that transaction: half of the 4 MB a
    # TransactWriteItems may carry, the rest is for the pointer and the version record. 0: always
    # staged first, in batches.
    inline_registration_bytes: int = 2 * 2**20

    def __post_init__(self) -> None:
        if self.keep_versions < 1:
            raise ValueError("keep_versions must be at least 1 (the current version)")
        # The flip's own items (the pointer and the version record, each up to max_item_bytes, and
        # small ones) must still fit beside the registration in TransactWriteItems' 4 MB.
        room = TRANSACTION_BYTES - 3 * self.max_item_bytes
        if not 0 <= self.inline_registration_bytes <= room:
            raise ValueError(f"inline_registration_bytes must be between 0 and {room}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_registration_id() -> str:
    return uuid.uuid4().hex[:16]
