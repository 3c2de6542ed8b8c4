"""``PUT /packs/{ref}``: change what an operator may change about an installed pack without
installing it again: its label, description, whether it is enabled, and its configuration
(validated against the pack's ``conf_schema``, read from its stored archive).

The pointer (``CURRENT``) is rewritten with a conditional write on its revision, as registration
does: a concurrent registration or update makes this one a 409, never a lost write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.data.operations import PackTable
from attune_packs.data.packs import pointer_item, public, put_pointer, read_pointer
from attune_packs.domain import json_schema
from attune_packs.errors import InvalidRequestError, NotFoundError, RegistrationConflictError
from attune_packs.services.catalog import check_pack_ref


class DescriptionPatch(BaseModel):
    """Attune's PackDescriptionPatch: {"op": "set", "value": "..."} or {"op": "clear"}."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    op: Literal["set", "clear"]
    value: str | None = Field(default=None, max_length=4000)


class PackUpdate(BaseModel):
    """Attune's UpdatePackRequest, the fields an installed pack may change here. Version, schema,
    dependencies and the rest come from the pack's archive: install another version to change them."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)
    label: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | DescriptionPatch | None = Field(
        default=None, description="the new text, or Attune's patch form {op: set, value} / {op: clear}"
    )
    enabled: bool | None = None
    config: dict[str, Any] | None = Field(default=None, description="validated against the pack's conf_schema")


def update_pack(
    table: PackTable, store: ObjectStore, ref: str, update: PackUpdate, *, updated_by: str
) -> dict[str, Any]:
    from attune_packs.services.stored_packs import load_pack

    check_pack_ref(ref)
    current = read_pointer(table, ref)
    if current is None:
        raise NotFoundError(f"pack {ref!r} is not installed")
    if current.get("removing"):
        raise RegistrationConflictError(f"pack {ref} is being removed", error_code="CONFLICT")
    changes = update.model_dump(exclude_unset=True, exclude_none=True)
    if isinstance(update.description, DescriptionPatch):
        changes["description"] = update.description.value if update.description.op == "set" else None
    if not changes:
        raise InvalidRequestError("nothing to change: give label, description, enabled or config")
    if "config" in changes:
        manifest = load_pack(str(current["archive"]), store, table).contents.manifest
        schema = manifest.config_schema
        if schema is None:
            raise InvalidRequestError(
                f"pack {ref} declares no conf_schema: it takes no configuration",
                details=[{"field": "config", "problem": "the pack has no conf_schema"}],
            )
        problems = json_schema.validate(changes["config"], schema, "config")
        if problems:
            raise InvalidRequestError(
                f"config does not match the pack's conf_schema: {problems[0][0]}: {problems[0][1]}",
                error_code="CONFIG_INVALID",
                details=[{"field": path, "problem": problem} for path, problem in problems[:50]],
            )
    updated = {
        **public(current),
        "retained": current.get("retained"),
        **changes,
        "revision": int(current["revision"]) + 1,
        "updated_at": datetime.now(UTC).isoformat(),
        "updated_by": updated_by,
    }
    if updated["retained"] is None:
        del updated["retained"]
    table.transact([put_pointer(pointer_item(ref, updated), if_revision=int(current["revision"]))])
    from attune_packs.services.catalog import show_pack

    return show_pack(table, ref)
