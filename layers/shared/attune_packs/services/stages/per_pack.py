"""One pack's failure is that pack's failure: the guard every stage puts around its per-pack work.

A typed :class:`AttuneError` becomes the pack's :class:`PackFailure` with its ``error_code``,
message and details (a YAML error keeps its file, line and column there). Any other exception is a
bug: it is logged with its traceback and reported for that pack as ``INTERNAL_ERROR`` with the
exception type, and the batch goes on. A :class:`TransientError` propagates by default so the
state machine retries the stage as a whole (every stage is idempotent); a stage that reports
transient failures per pack says so with ``propagate_transient=False``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from attune_packs.errors import AttuneError, InternalError, TransientError
from attune_packs.models import PackFailure

log = logging.getLogger("attune_packs.stages")

MAX_DETAILS = 50  # results travel through Step Functions (256 KB): the first problems and a count


@dataclass
class Attempt:
    """What one guarded block did: ``failed`` is set when it ended in a recorded failure."""

    failed: bool = False
    pack_ref: str | None = None  # set inside the block once the pack's ref is known


def internal_error(exc: BaseException, stage: str) -> InternalError:
    kind = type(exc).__name__
    return InternalError(
        f"internal error in the {stage} stage ({kind}: {exc}); this is a bug, the other packs went on",
        details={"exception_type": kind, "stage": stage},
    )


def pack_failure(source: str, pack_ref: str | None, exc: AttuneError) -> PackFailure:
    details: Any = exc.details
    if isinstance(details, list) and len(details) > MAX_DETAILS:
        details = [*details[:MAX_DETAILS], {"problem": f"... and {len(details) - MAX_DETAILS} more"}]
    return PackFailure(
        source=source,
        pack_ref=pack_ref,
        error=exc.message,
        error_code=exc.error_code,
        retriable=exc.retriable,
        details=details,
    )


@dataclass
class PackFailures:
    """The failures of one stage run, and the guard that records them."""

    stage: str
    propagate_transient: bool = True
    failed: list[PackFailure] = field(default_factory=list)

    @contextmanager
    def guard(self, source: str, pack_ref: str | None = None) -> Iterator[Attempt]:
        attempt = Attempt()
        try:
            yield attempt
        except TransientError as exc:
            if self.propagate_transient:
                raise
            self._record(attempt, source, pack_ref, exc)
        except AttuneError as exc:
            self._record(attempt, source, pack_ref, exc)
        except Exception as exc:  # noqa: BLE001 - a bug fails its pack, not the batch
            log.exception("unexpected %s in the %s stage for %s", type(exc).__name__, self.stage, source)
            self._record(attempt, source, pack_ref, internal_error(exc, self.stage))

    def _record(self, attempt: Attempt, source: str, pack_ref: str | None, exc: AttuneError) -> None:
        attempt.failed = True
        self.failed.append(pack_failure(source, attempt.pack_ref or pack_ref, exc))

    def append(self, failure: PackFailure) -> None:
        self.failed.append(failure)


@contextmanager
def bugs_as_internal_errors(stage: str) -> Iterator[None]:
    """For work that is one pack already (a Map item of the state machine): a typed error passes
    as it is; any other exception is logged and raised as :class:`InternalError`, so the state
    machine's Catch sees ``InternalError`` (and the pack fails as ``INTERNAL_ERROR``) rather than
    a bare ``KeyError``."""
    try:
        yield
    except AttuneError:
        raise
    except Exception as exc:
        log.exception("unexpected %s in the %s stage", type(exc).__name__, stage)
        raise internal_error(exc, stage) from exc
