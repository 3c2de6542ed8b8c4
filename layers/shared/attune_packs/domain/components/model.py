"""The normalised component: what every metadata form becomes, and how problems are reported."""

from __future__ import annotations

import unicodedata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.errors import ManifestError

EntryPointKind = Literal["file", "platform_binary", "workflow"]


class Component(BaseModel):
    """One registrable component, normalised from Attune's or StackStorm's metadata form."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: str
    name: str
    ref: str
    label: str | None = None
    description: str = ""
    runner_type: str | None = Field(default=None, description="runner (actions, sensors) or runtime")
    entry_point: str | None = None
    entry_point_kind: EntryPointKind | None = Field(
        default=None,
        description="file: a file of the pack; platform_binary: a binary the platform supplies (native "
        "runner); workflow: the workflow file an action runs. None: no entry point (command runners)",
    )
    parameters: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    enabled: bool = True
    source_file: str
    # What the component points at (refs ``pack.name``), checked by :func:`resolve_references`.
    trigger_types: list[str] = Field(default_factory=list, description="sensors: the triggers it emits")
    trigger_ref: str | None = Field(default=None, description="rules: the trigger that fires it")
    action_ref: str | None = Field(default=None, description="rules and aliases: the action they run")
    resource_ref: str | None = Field(default=None, description="policies: the action they apply to")
    declared_by: str | None = Field(
        default=None, description="triggers declared inline by a sensor, workflows run by an action: its ref"
    )
    attributes: dict[str, Any] = Field(default_factory=dict)


def component_error(path: str, field_name: str, problem: str, code: str = "COMPONENT_INVALID") -> ManifestError:
    return ManifestError(
        f"{path}: {field_name}: {problem}",
        error_code=code,
        details=[{"file": path, "field": field_name, "problem": problem, "error_code": code}],
    )


def name_key(name: str) -> str:
    """Names equal for a person or a case-insensitive file system are the same name: Unicode NFC
    normalisation, then case folding (``Run`` = ``run``; ``café`` composed = decomposed)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
