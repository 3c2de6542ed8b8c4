"""Pydantic contracts of the four stages (DESIGN.md section 3) and of the state machine's items.

Requests ignore nothing silently: unknown fields are refused (``extra="forbid"``) so a typo in a
client is a 400, not a default. Responses are plain data; the state machine passes them between
stages as they are.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

COMPONENT_TYPES: tuple[str, ...] = (
    "actions",
    "sensors",
    "triggers",
    "rules",
    "workflows",
    "policies",
    "runtimes",
    "permission_sets",
    "queues",
    "aliases",
)


class Request(BaseModel):
    # defer_build: a model's validator is built when the model is first used, not at import (a
    # handler uses a few of these models; building all of them was most of its cold start).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# A stage run by the state machine stores its whole response in S3 under ``report_key`` and answers
# only the fields the state machine reads (``INLINE_FIELDS``) plus ``report``, the stored copy's
# location: Step Functions payloads stay small whatever the number of packs or components.
REPORT_KEY_PATTERN = r"^reports/installs/[^/\x00-\x1f\x7f]{1,80}/[a-z0-9_-]{1,80}\.json$"


# Packs in one installation, dependencies included: with the stage summaries of ``report_key``
# (a few hundred bytes per pack) the state machine's payloads stay well under 256 KiB.
MAX_PACKS_PER_INSTALLATION = 200
# A dependency round may ask for more (the resolver's own limit); those beyond the installation
# limit fail one by one with TOO_MANY_PACKS instead of failing the request.
MAX_RESOLVED_PACKS = 1000
# Rounds of dependency downloads one installation runs at most: the bound of the state machine's
# loop (statemachine/install_packs.asl.json, MissingDependencies; a contract test keeps them equal).
MAX_DEPENDENCY_ROUNDS = 5


class Reported(Request):
    # Not in the OpenAPI document: only the state machine sets it (the API refuses it).
    report_key: SkipJsonSchema[str | None] = Field(
        default=None,
        pattern=REPORT_KEY_PATTERN,
        description="store the whole response here and answer only its summary fields and `report`",
    )


class ReportedResponse(Response):
    INLINE_FIELDS: ClassVar[frozenset[str]] = frozenset()
    report: str | None = Field(default=None, description="s3:// location of the whole response (report_key)")


class PackFailure(Response):
    """One pack that a stage could not handle, with a stable code and an actionable message."""

    source: str
    pack_ref: str | None = None
    error: str
    error_code: str
    retriable: bool = False
    details: Any = None


# --- Download -----------------------------------------------------------------------------------


class LockPin(Request):
    """What a lockfile pins for one pack (``install --locked``): the download stage refuses any
    other content with ``LOCK_MISMATCH``."""

    pack_version: str = Field(max_length=256)
    checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    git_commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")
