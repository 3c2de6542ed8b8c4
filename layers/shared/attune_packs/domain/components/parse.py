"""Component metadata files: one file in, one validated :class:`Component` out.

Read in Attune's form (``ref``, ``label``, ``runner_type``, ``entry_point`` or ``workflow_file``,
``parameters`` as a JSON Schema object or inline, ``output``/``output_schema``; sensors'
``trigger_types``; rules' ``trigger_ref``/``action_ref``; runtimes whose ``name`` is a display label)
and StackStorm's (``name`` + ``pack``; rules' ``trigger.type`` and ``action.ref``; sensors declaring
their trigger types inline; command runners with an empty ``entry_point``; aliases). Pure:
validates what the archive scanner read and raises :class:`ManifestError` naming the file and the
field. A malformed file fails its pack; nothing is skipped silently.

References may be short inside their own pack (``trigger_ref: intervaltimer`` in pack ``core``
means ``core.intervaltimer``); they are stored fully qualified.
"""

from __future__ import annotations

import re
from posixpath import normpath
from typing import Any

from attune_packs.domain import json_schema
from attune_packs.domain.archive import PackArchive
from attune_packs.domain.components.model import Component, EntryPointKind, component_error
from attune_packs.domain.components.workflows import WORKFLOW_RUNNERS, check_graph
from attune_packs.domain.safe_yaml import load_yaml
from attune_packs.models import COMPONENT_TYPES

COMPONENT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_DESCRIPTION_CHARS = 4096
_SCHEMA_PARAMETER_KINDS = frozenset({"actions", "sensors", "triggers", "workflows"})
# Runners whose work is a command given as a parameter: their entry_point may be empty.
COMMAND_RUNNERS = frozenset(
    {
        "local-shell-cmd",
        "remote-shell-cmd",
        "http-request",
        "noop",
        "inquirer",
        "announcement",
        "winrm-cmd",
        "winrm-ps-cmd",
        "local-shell-cmd-sudo",
    }
)
NATIVE_RUNNERS = frozenset({"native", "builtin", "standalone"})
PLATFORM_BINARY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
# Kinds whose ``name`` is a display label when ``ref`` gives the identity (``name: Python``).
_LABEL_NAMED_KINDS = frozenset({"runtimes"})

_COMMON_KEYS = {
    "name",
    "ref",
    "pack",
    "description",
    "runner_type",
    "runner",
    "runtime",
    "entry_point",
    "parameters",
    "enabled",
    "label",
    "output",
    "output_schema",
}
_KIND_KEYS: dict[str, set[str]] = {
    "sensors": {"trigger_types"},
    "rules": {"trigger_ref", "trigger_type", "action_ref"},  # StackStorm's trigger/action blocks stay
    "policies": {"resource_ref"},
    "aliases": {"action_ref"},
    "runtimes": {"pack_ref"},
}


def _component_name(kind: str, meta: dict[str, Any], pack_ref: str, path: str, strict: bool) -> tuple[str, str | None]:
    """The component's name and, for kinds whose ``name`` is a label, that label."""
    name = meta.get("name")
    ref = meta.get("ref")
    label = None
    if ref is not None and not isinstance(ref, str):
        raise component_error(path, "ref", f"must be a string like '{pack_ref}.name', not {type(ref).__name__}")
    if isinstance(ref, str):
        owner, dot, ref_name = ref.partition(".")
        if strict and dot and owner != pack_ref:
            raise component_error(path, "ref", f"{ref!r} belongs to pack {owner!r}, not to pack {pack_ref!r}")
        ref_name = ref_name if dot and owner == pack_ref else ref
        if kind in _LABEL_NAMED_KINDS and isinstance(name, str) and name != ref_name:
            name, label = ref_name, name
        if name is None:
            name = ref_name
        elif strict and name != ref_name:
            raise component_error(path, "ref", f"{ref!r} disagrees with name {name!r}")
    if name is None:
        # Policies and rules sometimes carry neither; the file name is the last resort.
        name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not isinstance(name, str) or not COMPONENT_NAME_PATTERN.fullmatch(name):
        raise component_error(
            path, "name", f"{name!r} is not a valid component name (letters, digits, '_', '-', '.'; at most 128)"
        )
    return name, label


def _entry_point(
    meta: dict[str, Any], runner: str | None, path: str, files: set[str], strict: bool
) -> tuple[str | None, EntryPointKind | None]:
    """``(entry_point, kind)``: a pack file, a platform binary (native runner), or none at all
    (command runners, whose command is a parameter, may leave it empty)."""
    entry = meta.get("entry_point")
    code = "COMPONENT_ENTRY_POINT_INVALID"
    if entry == "" and (runner in COMMAND_RUNNERS or not strict):
        return None, None
    if entry is None:
        return None, None
    if (
        not isinstance(entry, str)
        or not entry
        or "\x00" in entry
        or entry.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", entry)
    ):
        raise component_error(path, "entry_point", f"{entry!r} must be a relative path inside the pack", code)
    resolved = normpath(f"{path.rsplit('/', 1)[0]}/{entry}")
    if resolved.startswith("../") or resolved == "..":
        raise component_error(path, "entry_point", f"{entry!r} leaves the pack", code)
    in_pack = resolved in files or normpath(entry) in files
    if runner in NATIVE_RUNNERS and not in_pack:
        if not PLATFORM_BINARY_PATTERN.fullmatch(entry):
            raise component_error(path, "entry_point", f"{entry!r} is neither a pack file nor a binary name", code)
        return entry, "platform_binary"
    if strict and not in_pack:
        raise component_error(
            path, "entry_point", f"{entry!r} does not exist in the pack", "COMPONENT_ENTRY_POINT_MISSING"
        )
    return entry, ("workflow" if runner in WORKFLOW_RUNNERS else "file")


def _optional_text(meta: dict[str, Any], key: str, path: str, *, limit: int = 256) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise component_error(path, key, f"must be a string, not {type(value).__name__} {value!r}"[:300])
    if len(value) > limit:
        raise component_error(path, key, f"is {len(value)} characters long; at most {limit}")
    return value


def _schema(value: Any, path: str, field_name: str) -> dict[str, Any] | None:
    """A schema field in either form (JSON Schema object or StackStorm's flat form), checked."""
    if value is None:
        return None
    problems = json_schema.check_schema(value, field_name)
    if problems:
        where, problem = problems[0]
        raise component_error(path, where, problem)
    schema: dict[str, Any] = value  # check_schema refuses anything but a mapping
    return schema


def _parameters(kind: str, meta: dict[str, Any], path: str) -> dict[str, Any]:
    """Actions, sensors, triggers and workflows declare parameter *schemas* (inline, or a JSON
    Schema object); policies and the rest give parameter *values* (``threshold: 5``)."""
    parameters = meta.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise component_error(path, "parameters", "must be a mapping of parameter name to schema")
    if kind in _SCHEMA_PARAMETER_KINDS:
        _schema(parameters, path, "parameters")
    return parameters


def qualified_ref(value: Any, pack_ref: str, path: str, field_name: str) -> str:
    """A reference to another component: ``pack.name``, or a short ``name`` of the same pack."""
    if not isinstance(value, str) or not value:
        raise component_error(path, field_name, f"must be a reference like 'pack.name', not {value!r}"[:300])
    if "." not in value:
        if not COMPONENT_NAME_PATTERN.fullmatch(value):
            raise component_error(path, field_name, f"{value!r} is not a reference 'pack.name' or a name")
        return f"{pack_ref}.{value}"
    owner, _, name = value.partition(".")
    if not owner or not name:
        raise component_error(path, field_name, f"{value!r} is not a full reference 'pack.name'")
    return value


def _sensor_triggers(meta: dict[str, Any], pack_ref: str, path: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Sensors' ``trigger_types``: refs of existing triggers (Attune) or inline declarations
    (StackStorm: mappings with ``name``), which become trigger components of the pack."""
    raw = meta.get("trigger_types")
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise component_error(path, "trigger_types", "must be a list of trigger refs or trigger declarations")
    refs: list[str] = []
    declared: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        where = f"trigger_types[{index}]"
        if isinstance(entry, str):
            refs.append(qualified_ref(entry, pack_ref, path, where))
        elif isinstance(entry, dict):
            name = entry.get("name")
            if not isinstance(name, str) or not COMPONENT_NAME_PATTERN.fullmatch(name):
                raise component_error(path, f"{where}.name", f"{name!r} is not a valid trigger name")
            for key in ("payload_schema", "parameters_schema"):
                _schema(entry.get(key), path, f"{where}.{key}")
            declared.append(entry)
            refs.append(f"{pack_ref}.{name}")
        else:
            raise component_error(path, where, "must be a trigger ref or a mapping declaring a trigger")
    return refs, declared


def _rule_refs(meta: dict[str, Any], pack_ref: str, path: str, strict: bool) -> tuple[str | None, str | None]:
    """A rule's trigger and action: ``trigger_ref`` (or ``trigger_type``) / ``action_ref``, or
    StackStorm's ``trigger.type`` / ``action.ref``."""
    if "trigger_type" in meta and "trigger_ref" in meta:
        raise component_error(path, "trigger_type", "give either trigger_ref or trigger_type, not both")
    meta = {**meta, "trigger_ref": meta["trigger_type"]} if "trigger_type" in meta else meta
    found: dict[str, str | None] = {}
    for key, nested, inner in (("trigger_ref", "trigger", "type"), ("action_ref", "action", "ref")):
        if key in meta and nested in meta:
            raise component_error(path, key, f"give either {key} or {nested}.{inner}, not both")
        if key in meta:
            found[key] = qualified_ref(meta[key], pack_ref, path, key)
        elif nested in meta:
            block = meta[nested]
            if not isinstance(block, dict):
                raise component_error(path, nested, f"must be a mapping with {inner}")
            if inner not in block:
                raise component_error(path, f"{nested}.{inner}", "is missing")
            found[key] = qualified_ref(block[inner], pack_ref, path, f"{nested}.{inner}")
            if "parameters" in block and not isinstance(block["parameters"], dict):
                raise component_error(path, f"{nested}.parameters", "must be a mapping")
        elif strict:
            raise component_error(path, key, f"a rule needs {key} (or {nested}.{inner})")
        else:
            found[key] = None
    for key in ("criteria", "action_params"):
        if key in meta and not isinstance(meta[key], dict):
            raise component_error(path, key, "must be a mapping")
    return found["trigger_ref"], found["action_ref"]


def _check_alias(meta: dict[str, Any], path: str) -> None:
    """StackStorm action aliases: ``action_ref`` and ``formats`` (text, or ``display`` with
    ``representation`` texts)."""
    formats = meta.get("formats")
    if not isinstance(formats, list) or not formats:
        raise component_error(path, "formats", "an alias needs formats: a non-empty list of command formats")
    for index, entry in enumerate(formats):
        if isinstance(entry, str):
            continue
        if not isinstance(entry, dict):
            raise component_error(path, f"formats[{index}]", "must be a format text or a mapping with representation")
        representation = entry.get("representation")
        texts = [representation] if isinstance(representation, str) else representation
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise component_error(path, f"formats[{index}].representation", "must be a format text or a list of them")
        if "display" in entry and not isinstance(entry["display"], str):
            raise component_error(path, f"formats[{index}].display", "must be text")


def _check_action(meta: dict[str, Any], path: str, strict: bool) -> None:
    if "workflow_file" in meta and (meta.get("runner_type") or meta.get("entry_point")):
        raise component_error(
            path, "workflow_file", "a workflow action has no runner_type or entry_point: its workflow runs it"
        )
    if strict and not (meta.get("runner_type") or meta.get("runner") or "workflow_file" in meta):
        raise component_error(path, "runner_type", "an action needs runner_type (or workflow_file)")
    if "workflow_file" in meta and not isinstance(meta["workflow_file"], str):
        raise component_error(path, "workflow_file", "must be the path of the workflow file, relative to actions/")


def _check_permission_set(meta: dict[str, Any], path: str, strict: bool) -> None:
    """Attune's ``grants`` (``{resource, actions}`` mappings) or a list of ``permissions``."""
    key = "permissions" if "permissions" in meta else "grants"
    grants = meta.get(key)
    if strict and grants is None:
        raise component_error(path, key, "a permission set needs grants (or permissions): a list")
    if grants is not None and not isinstance(grants, list):
        raise component_error(path, key, f"must be a list of {key}")
    for index, grant in enumerate(grants or []):
        if not isinstance(grant, str | dict):
            raise component_error(path, f"{key}[{index}]", "must be a permission name or a mapping")


def _check_queue(meta: dict[str, Any], path: str, strict: bool) -> None:
    for key in ("concurrency", "max_concurrency", "max_size"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise component_error(path, key, "must be a positive integer")


def _check_trigger(meta: dict[str, Any], path: str, strict: bool) -> None:
    for key in ("payload_schema", "parameters_schema"):
        _schema(meta.get(key), path, key)


_KIND_CHECKS = {
    "actions": _check_action,
    "triggers": _check_trigger,
    "workflows": lambda meta, path, strict: check_graph(meta, path, allow_entry_point=True),
    "policies": lambda meta, path, strict: _optional_text(meta, "policy_type", path),
    "aliases": lambda meta, path, strict: _check_alias(meta, path),
    "permission_sets": _check_permission_set,
    "queues": _check_queue,
}


def _check_kind(kind: str, meta: dict[str, Any], path: str, strict: bool) -> None:
    check = _KIND_CHECKS.get(kind)
    if check is not None:
        check(meta, path, strict)


def _reference_fields(kind: str, meta: dict[str, Any], pack_ref: str, path: str, strict: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if kind == "rules":
        fields["trigger_ref"], fields["action_ref"] = _rule_refs(meta, pack_ref, path, strict)
    if kind == "policies" and meta.get("resource_ref") is not None:
        fields["resource_ref"] = qualified_ref(meta["resource_ref"], pack_ref, path, "resource_ref")
    if kind == "aliases":
        if "action_ref" in meta or strict:
            fields["action_ref"] = qualified_ref(meta.get("action_ref"), pack_ref, path, "action_ref")
    if kind == "runtimes" and meta.get("pack_ref") not in (None, pack_ref) and strict:
        raise component_error(path, "pack_ref", f"names pack {meta['pack_ref']!r} but belongs to pack {pack_ref!r}")
    return fields


def parse_component(
    kind: str, path: str, content: bytes, pack_ref: str, files: set[str], *, strict: bool = True
) -> Component:
    meta = load_yaml(content, source=path)
    if not isinstance(meta, dict):
        raise component_error(path, "(root)", "a component file must be a mapping of fields")
    if "pack" in meta and not isinstance(meta["pack"], str):
        raise component_error(path, "pack", "must be a pack ref (a string)")
    if strict and isinstance(meta.get("pack"), str) and meta["pack"] != pack_ref:
        raise component_error(path, "pack", f"declares pack {meta['pack']!r} but belongs to pack {pack_ref!r}")
    name, name_label = _component_name(kind, meta, pack_ref, path, strict)
    runner_key = next((k for k in ("runner_type", "runner", "runtime") if meta.get(k) is not None), "runner_type")
    runner = _optional_text(meta, runner_key, path)
    _check_kind(kind, meta, path, strict)
    entry, entry_kind = _entry_point(meta, runner, path, files, strict)
    if "workflow_file" in meta:
        entry, entry_kind = meta["workflow_file"], "workflow"
    parameters = _parameters(kind, meta, path)
    # A workflow's ``output`` maps results to expressions; everywhere else it is a schema.
    output_keys = ("output_schema",) if kind == "workflows" else ("output_schema", "output")
    if all(key in meta for key in output_keys) and len(output_keys) == 2:
        raise component_error(path, "output_schema", "give either output or output_schema, not both")
    output_key = next((key for key in output_keys if key in meta), "output_schema")
    output_schema = _schema(meta.get(output_key), path, output_key)
    enabled = meta.get("enabled", True)
    if not isinstance(enabled, bool):
        raise component_error(path, "enabled", f"must be true or false, not {enabled!r}"[:300])
    label = _optional_text(meta, "label", path) or name_label
    description = _optional_text(meta, "description", path, limit=MAX_DESCRIPTION_CHARS)
    fields = _reference_fields(kind, meta, pack_ref, path, strict)
    extra: dict[str, Any] = {}
    if kind == "sensors":
        fields["trigger_types"], declared = _sensor_triggers(meta, pack_ref, path)
        extra = {"trigger_declarations": declared} if declared else {}
    if name_label is not None:
        extra["display_name"] = name_label
    skipped = (_COMMON_KEYS | _KIND_KEYS.get(kind, set())) - ({"output"} if kind == "workflows" else set())
    return Component(
        type=kind,
        name=name,
        ref=f"{pack_ref}.{name}",
        label=label,
        description=description or label or "",
        runner_type=runner,
        entry_point=entry,
        entry_point_kind=entry_kind,
        parameters=parameters,
        output_schema=output_schema,
        enabled=enabled,
        source_file=path,
        attributes={**{k: v for k, v in meta.items() if k not in skipped}, **extra},
        **fields,
    )


def component_files(archive: PackArchive) -> list[tuple[str, str]]:
    """(type, path) of every component metadata file: YAML files directly in each type folder."""
    found = []
    for path in sorted(archive.files):
        parts = path.split("/")
        if len(parts) == 2 and parts[0] in COMPONENT_TYPES and parts[1].endswith((".yaml", ".yml")):
            found.append((parts[0], path))
    return found
