"""Component metadata files: actions, sensors, triggers, rules, workflows, policies.

Read in Attune's form (``ref``, ``label``, ``runner_type``, ``entry_point``, ``parameters``) and
StackStorm's (``name`` + ``pack``). Pure: validates what the archive scanner read, raises
:class:`ManifestError` naming the file and field.
"""

from __future__ import annotations

import re
from posixpath import normpath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.archive import PackArchive
from attune_packs.errors import ManifestError
from attune_packs.models import COMPONENT_TYPES
from attune_packs.safe_yaml import load_yaml

COMPONENT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class Component(BaseModel):
    """One registrable component, normalised from Attune's or StackStorm's metadata form."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str
    ref: str
    description: str = ""
    runner_type: str | None = None
    entry_point: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    source_file: str
    attributes: dict[str, Any] = Field(default_factory=dict)


_COMMON_KEYS = {"name", "ref", "pack", "description", "runner_type", "entry_point", "parameters", "enabled", "label"}


def _component_error(path: str, field_name: str, problem: str, code: str = "COMPONENT_INVALID") -> ManifestError:
    return ManifestError(
        f"{path}: {field_name}: {problem}",
        error_code=code,
        details=[{"file": path, "field": field_name, "problem": problem}],
    )


def _component_name(meta: dict[str, Any], pack_ref: str, path: str) -> str:
    name = meta.get("name")
    if name is None and isinstance(meta.get("ref"), str):
        ref = meta["ref"]
        name = ref.split(".", 1)[1] if ref.startswith(f"{pack_ref}.") else ref
    if name is None:
        # Policies and rules sometimes carry only a ref; the file name is the last resort.
        name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not isinstance(name, str) or not COMPONENT_NAME_PATTERN.fullmatch(name):
        raise _component_error(
            path, "name", f"{name!r} is not a valid component name (letters, digits, '_', '-', '.'; at most 128)"
        )
    return name


def _check_entry_point(entry: Any, comp_dir: str, path: str, files: set[str], strict: bool) -> str | None:
    if entry is None:
        return None
    code = "COMPONENT_ENTRY_POINT_INVALID"
    if (
        not isinstance(entry, str)
        or not entry
        or "\x00" in entry
        or entry.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", entry)
    ):
        raise _component_error(path, "entry_point", f"{entry!r} must be a relative path inside the pack", code)
    resolved = normpath(f"{comp_dir}/{entry}")
    if resolved.startswith("../") or resolved == "..":
        raise _component_error(path, "entry_point", f"{entry!r} leaves the pack", code)
    if strict and resolved not in files and normpath(entry) not in files:
        raise _component_error(
            path, "entry_point", f"{entry!r} does not exist in the pack", "COMPONENT_ENTRY_POINT_MISSING"
        )
    return entry


def parse_component(
    kind: str, path: str, content: bytes, pack_ref: str, files: set[str], *, strict: bool = True
) -> Component:
    meta = load_yaml(content, source=path)
    if not isinstance(meta, dict):
        raise _component_error(path, "(root)", "a component file must be a mapping of fields")
    if strict and isinstance(meta.get("pack"), str) and meta["pack"] != pack_ref:
        raise _component_error(path, "pack", f"declares pack {meta['pack']!r} but belongs to pack {pack_ref!r}")
    name = _component_name(meta, pack_ref, path)
    comp_dir = path.rsplit("/", 1)[0]
    entry = _check_entry_point(meta.get("entry_point"), comp_dir, path, files, strict)
    parameters = meta.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise _component_error(path, "parameters", "must be a mapping of parameter name to schema")
    if kind == "actions" and strict and not (meta.get("runner_type") or meta.get("runner")):
        raise _component_error(path, "runner_type", "an action needs runner_type")
    enabled = meta.get("enabled", True)
    return Component(
        type=kind,
        name=name,
        ref=f"{pack_ref}.{name}",
        description=str(meta.get("description") or meta.get("label") or ""),
        runner_type=meta.get("runner_type") or meta.get("runner"),
        entry_point=entry,
        parameters=parameters,
        enabled=bool(enabled),
        source_file=path,
        attributes={k: v for k, v in meta.items() if k not in _COMMON_KEYS},
    )


def component_files(archive: PackArchive) -> list[tuple[str, str]]:
    """(type, path) of every component metadata file: YAML files directly in each type folder."""
    found = []
    for path in sorted(archive.files):
        parts = path.split("/")
        if len(parts) == 2 and parts[0] in COMPONENT_TYPES and parts[1].endswith((".yaml", ".yml")):
            found.append((parts[0], path))
    return found
