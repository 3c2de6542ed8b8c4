"""Component metadata files: actions, sensors, triggers, rules, workflows, policies, runtimes,
permission sets and queues.

Read in Attune's form (``ref``, ``label``, ``runner_type``, ``entry_point``, ``parameters``,
``output``/``output_schema``; sensors' ``trigger_types``; rules' ``trigger_ref``/``action_ref``;
workflow files with ``tasks``) and StackStorm's (``name`` + ``pack``; rules' ``trigger.type`` and
``action.ref``; sensors declaring their trigger types inline). Pure: validates what the archive
scanner read and raises :class:`ManifestError` naming the file and the field. A malformed file fails
its pack; nothing is skipped silently.

Cross-component checks (a rule's trigger and action must exist) need the registry, so they are
split in two: :func:`references` lists what each component points at, :func:`resolve_references`
judges them against what a caller says exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from posixpath import normpath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.domain.archive import PackArchive
from attune_packs.domain.safe_yaml import load_yaml
from attune_packs.errors import ManifestError
from attune_packs.models import COMPONENT_TYPES

COMPONENT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_DESCRIPTION_CHARS = 4096
_SCHEMA_PARAMETER_KINDS = frozenset({"actions", "sensors", "triggers", "workflows"})
_JSON_SCHEMA_TYPES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})

# The platform's own triggers and actions (pack ``core``), which every pack may refer to without
# declaring a dependency. These are the StackStorm core pack's, which Attune provides under the
# same refs; nothing else is assumed to exist.
CORE_PACK = "core"
BUILTIN_TRIGGERS = frozenset(
    {
        "core.st2.IntervalTimer",
        "core.st2.DateTimer",
        "core.st2.CronTimer",
        "core.st2.webhook",
        "core.st2.generic.actiontrigger",
        "core.st2.generic.notifytrigger",
        "core.st2.generic.inquiry",
        "core.st2.action.file_written",
        "core.st2.key_value_pair.create",
        "core.st2.key_value_pair.update",
        "core.st2.key_value_pair.value_change",
        "core.st2.key_value_pair.delete",
        "core.st2.sensor.process_spawn",
        "core.st2.sensor.process_exit",
    }
)
BUILTIN_ACTIONS = frozenset(
    {
        "core.local",
        "core.local_sudo",
        "core.remote",
        "core.remote_sudo",
        "core.http",
        "core.noop",
        "core.echo",
        "core.announcement",
        "core.ask",
        "core.inject_trigger",
        "core.pause",
        "core.error",
        "core.sendmail",
        "core.uuid",
        "core.winrm_cmd",
        "core.winrm_ps_cmd",
    }
)

ReferenceKind = Literal["triggers", "actions"]


class Component(BaseModel):
    """One registrable component, normalised from Attune's or StackStorm's metadata form."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str
    ref: str
    label: str | None = None
    description: str = ""
    runner_type: str | None = Field(default=None, description="runner (actions, sensors) or runtime")
    entry_point: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    enabled: bool = True
    source_file: str
    # What the component points at (refs ``pack.name``), checked by :func:`resolve_references`.
    trigger_types: list[str] = Field(default_factory=list, description="sensors: the triggers it emits")
    trigger_ref: str | None = Field(default=None, description="rules: the trigger that fires it")
    action_ref: str | None = Field(default=None, description="rules: the action it runs")
    resource_ref: str | None = Field(default=None, description="policies: the action they apply to")
    declared_by: str | None = Field(default=None, description="triggers declared inline by a sensor: its ref")
    attributes: dict[str, Any] = Field(default_factory=dict)


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
    "rules": {"trigger_ref", "action_ref"},  # StackStorm's trigger/action blocks stay: they hold parameters
    "policies": {"resource_ref"},
}


def _component_error(path: str, field_name: str, problem: str, code: str = "COMPONENT_INVALID") -> ManifestError:
    return ManifestError(
        f"{path}: {field_name}: {problem}",
        error_code=code,
        details=[{"file": path, "field": field_name, "problem": problem}],
    )


def _component_name(meta: dict[str, Any], pack_ref: str, path: str, strict: bool) -> str:
    name = meta.get("name")
    ref = meta.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise _component_error(path, "ref", f"must be a string like '{pack_ref}.name', not {type(ref).__name__}")
    if isinstance(ref, str):
        owner, dot, ref_name = ref.partition(".")
        if strict and dot and owner != pack_ref:
            raise _component_error(path, "ref", f"{ref!r} belongs to pack {owner!r}, not to pack {pack_ref!r}")
        ref_name = ref_name if dot and owner == pack_ref else ref
        if name is None:
            name = ref_name
        elif strict and name != ref_name:
            raise _component_error(path, "ref", f"{ref!r} disagrees with name {name!r}")
    if name is None:
        # Policies and rules sometimes carry neither; the file name is the last resort.
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


def _optional_text(meta: dict[str, Any], key: str, path: str, *, limit: int = 256) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _component_error(path, key, f"must be a string, not {type(value).__name__} {value!r}"[:300])
    if len(value) > limit:
        raise _component_error(path, key, f"is {len(value)} characters long; at most {limit}")
    return value


def _schema_mapping(value: Any, path: str, field_name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _component_error(path, field_name, f"must be a mapping (a JSON schema), not {type(value).__name__}")
    return value


def _parameters(kind: str, meta: dict[str, Any], path: str) -> dict[str, Any]:
    """Actions, sensors, triggers and workflows declare parameter *schemas*; policies and the
    rest give parameter *values* (``threshold: 5``): only their shape is checked."""
    parameters = meta.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise _component_error(path, "parameters", "must be a mapping of parameter name to schema")
    if kind not in _SCHEMA_PARAMETER_KINDS:
        return parameters
    for name, schema in parameters.items():
        if not isinstance(schema, dict):
            raise _component_error(
                path, f"parameters.{name}", f"must be a mapping (a parameter schema), not {type(schema).__name__}"
            )
        declared = schema.get("type")
        kinds = declared if isinstance(declared, list) else [declared]
        if declared is not None and not all(isinstance(k, str) and k in _JSON_SCHEMA_TYPES for k in kinds):
            raise _component_error(
                path,
                f"parameters.{name}.type",
                f"{declared!r} is not a JSON schema type ({', '.join(sorted(_JSON_SCHEMA_TYPES))})",
            )
        if "required" in schema and not isinstance(schema["required"], bool):
            raise _component_error(path, f"parameters.{name}.required", "must be true or false")
    return parameters


def _ref_text(value: Any, path: str, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _component_error(path, field_name, f"must be a reference like 'pack.name', not {value!r}"[:300])
    owner, dot, name = value.partition(".")
    if not dot or not owner or not name:
        raise _component_error(path, field_name, f"{value!r} is not a full reference 'pack.name'")
    return value


def _sensor_triggers(meta: dict[str, Any], pack_ref: str, path: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Sensors' ``trigger_types``: refs of existing triggers (Attune) or inline declarations
    (StackStorm: mappings with ``name``), which become trigger components of the pack."""
    raw = meta.get("trigger_types")
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        raise _component_error(path, "trigger_types", "must be a list of trigger refs or trigger declarations")
    refs: list[str] = []
    declared: list[dict[str, Any]] = []
    for index, entry in enumerate(raw):
        where = f"trigger_types[{index}]"
        if isinstance(entry, str):
            refs.append(_ref_text(entry, path, where))
        elif isinstance(entry, dict):
            name = entry.get("name")
            if not isinstance(name, str) or not COMPONENT_NAME_PATTERN.fullmatch(name):
                raise _component_error(path, f"{where}.name", f"{name!r} is not a valid trigger name")
            for key in ("payload_schema", "parameters_schema"):
                _schema_mapping(entry.get(key), path, f"{where}.{key}")
            declared.append(entry)
            refs.append(f"{pack_ref}.{name}")
        else:
            raise _component_error(path, where, "must be a trigger ref or a mapping declaring a trigger")
    return refs, declared


def _rule_refs(meta: dict[str, Any], path: str, strict: bool) -> tuple[str | None, str | None]:
    """A rule's trigger and action, from ``trigger_ref``/``action_ref`` or ``trigger.type``/``action.ref``."""
    found: dict[str, str | None] = {}
    for key, nested, inner in (("trigger_ref", "trigger", "type"), ("action_ref", "action", "ref")):
        if key in meta and nested in meta:
            raise _component_error(path, key, f"give either {key} or {nested}.{inner}, not both")
        if key in meta:
            found[key] = _ref_text(meta[key], path, key)
        elif nested in meta:
            block = meta[nested]
            if not isinstance(block, dict):
                raise _component_error(path, nested, f"must be a mapping with {inner}")
            if inner not in block:
                raise _component_error(path, f"{nested}.{inner}", "is missing")
            found[key] = _ref_text(block[inner], path, f"{nested}.{inner}")
            params_key = "parameters"
            if params_key in block and not isinstance(block[params_key], dict):
                raise _component_error(path, f"{nested}.{params_key}", "must be a mapping")
        elif strict:
            raise _component_error(path, key, f"a rule needs {key} (or {nested}.{inner})")
        else:
            found[key] = None
    for key in ("criteria", "action_params"):
        if key in meta and not isinstance(meta[key], dict):
            raise _component_error(path, key, "must be a mapping")
    return found["trigger_ref"], found["action_ref"]


def _check_workflow(meta: dict[str, Any], path: str) -> None:
    if "tasks" not in meta and "entry_point" not in meta:
        raise _component_error(path, "tasks", "a workflow needs tasks (or an entry_point naming its definition)")
    tasks = meta.get("tasks")
    if tasks is None:
        return
    if isinstance(tasks, list):
        seen: set[str] = set()
        for index, task in enumerate(tasks):
            if not isinstance(task, dict):
                raise _component_error(path, f"tasks[{index}]", "must be a mapping with name and action")
            name = task.get("name")
            if not isinstance(name, str) or not name:
                raise _component_error(path, f"tasks[{index}].name", "every task needs a name")
            if name in seen:
                raise _component_error(path, f"tasks[{index}].name", f"duplicate task name {name!r}")
            seen.add(name)
            if "action" in task and not isinstance(task["action"], str):
                raise _component_error(path, f"tasks[{index}].action", "must be an action ref (a string)")
    elif isinstance(tasks, dict):
        for name, task in tasks.items():
            if not isinstance(task, dict):
                raise _component_error(path, f"tasks.{name}", "must be a mapping")
    else:
        raise _component_error(path, "tasks", "must be a list of tasks or a mapping of task name to task")


def _check_kind(kind: str, meta: dict[str, Any], path: str, strict: bool) -> None:
    if kind == "actions" and strict and not (meta.get("runner_type") or meta.get("runner")):
        raise _component_error(path, "runner_type", "an action needs runner_type")
    if kind == "triggers":
        for key in ("payload_schema", "parameters_schema"):
            _schema_mapping(meta.get(key), path, key)
    if kind == "workflows":
        _check_workflow(meta, path)
    if kind == "policies":
        _optional_text(meta, "policy_type", path)
    if kind == "permission_sets":
        grants = meta.get("permissions", meta.get("grants"))
        if strict and grants is None:
            raise _component_error(path, "permissions", "a permission set needs permissions (a list)")
        if grants is not None and not isinstance(grants, list):
            raise _component_error(path, "permissions", "must be a list of permissions")
        for index, grant in enumerate(grants or []):
            if not isinstance(grant, str | dict):
                raise _component_error(path, f"permissions[{index}]", "must be a permission name or a mapping")
    if kind == "queues":
        for key in ("concurrency", "max_concurrency", "max_size"):
            value = meta.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise _component_error(path, key, "must be a positive integer")


def parse_component(
    kind: str, path: str, content: bytes, pack_ref: str, files: set[str], *, strict: bool = True
) -> Component:
    meta = load_yaml(content, source=path)
    if not isinstance(meta, dict):
        raise _component_error(path, "(root)", "a component file must be a mapping of fields")
    if "pack" in meta and not isinstance(meta["pack"], str):
        raise _component_error(path, "pack", "must be a pack ref (a string)")
    if strict and isinstance(meta.get("pack"), str) and meta["pack"] != pack_ref:
        raise _component_error(path, "pack", f"declares pack {meta['pack']!r} but belongs to pack {pack_ref!r}")
    name = _component_name(meta, pack_ref, path, strict)
    comp_dir = path.rsplit("/", 1)[0]
    entry = _check_entry_point(meta.get("entry_point"), comp_dir, path, files, strict)
    parameters = _parameters(kind, meta, path)
    if "output" in meta and "output_schema" in meta:
        raise _component_error(path, "output_schema", "give either output or output_schema, not both")
    output_key = "output_schema" if "output_schema" in meta else "output"
    output_schema = _schema_mapping(meta.get(output_key), path, output_key)
    enabled = meta.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _component_error(path, "enabled", f"must be true or false, not {enabled!r}"[:300])
    runner_key = next((k for k in ("runner_type", "runner", "runtime") if meta.get(k) is not None), "runner_type")
    runner = _optional_text(meta, runner_key, path)
    label = _optional_text(meta, "label", path)
    description = _optional_text(meta, "description", path, limit=MAX_DESCRIPTION_CHARS)
    _check_kind(kind, meta, path, strict)
    fields: dict[str, Any] = {}
    if kind == "sensors":
        fields["trigger_types"], declared = _sensor_triggers(meta, pack_ref, path)
        attributes_extra = {"trigger_declarations": declared} if declared else {}
    else:
        attributes_extra = {}
    if kind == "rules":
        fields["trigger_ref"], fields["action_ref"] = _rule_refs(meta, path, strict)
    if kind == "policies" and meta.get("resource_ref") is not None:
        fields["resource_ref"] = _ref_text(meta["resource_ref"], path, "resource_ref")
    skipped = _COMMON_KEYS | _KIND_KEYS.get(kind, set())
    return Component(
        type=kind,
        name=name,
        ref=f"{pack_ref}.{name}",
        label=label,
        description=description or label or "",
        runner_type=runner,
        entry_point=entry,
        parameters=parameters,
        output_schema=output_schema,
        enabled=enabled,
        source_file=path,
        attributes={**{k: v for k, v in meta.items() if k not in skipped}, **attributes_extra},
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


# -- the pack as a whole -----------------------------------------------------------------------------


def with_declared_triggers(pack_ref: str, components: list[Component]) -> list[Component]:
    """The pack's components plus the triggers its sensors declare inline (StackStorm's form), each
    a trigger component of its own. A declared trigger whose name a trigger file already uses is
    an error naming the sensor file."""
    names = {c.name for c in components if c.type == "triggers"}
    result = list(components)
    for sensor in (c for c in components if c.type == "sensors"):
        for index, declaration in enumerate(sensor.attributes.get("trigger_declarations", [])):
            name = declaration["name"]
            if name in names:
                raise _component_error(
                    sensor.source_file,
                    f"trigger_types[{index}].name",
                    f"trigger {name!r} is declared twice in the pack",
                )
            names.add(name)
            description = declaration.get("description")
            result.append(
                Component(
                    type="triggers",
                    name=name,
                    ref=f"{pack_ref}.{name}",
                    description=description if isinstance(description, str) else "",
                    source_file=sensor.source_file,
                    declared_by=sensor.ref,
                    attributes={k: v for k, v in declaration.items() if k not in {"name", "description"}},
                )
            )
    return result


@dataclass(frozen=True)
class Reference:
    """A component's pointer at another component: which file and field, what kind, which ref."""

    source_file: str
    field: str
    kind: ReferenceKind
    ref: str

    @property
    def pack(self) -> str:
        return self.ref.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.ref.split(".", 1)[1]


def references(components: Iterable[Component]) -> list[Reference]:
    found: list[Reference] = []
    for c in components:
        if c.type == "rules":
            if c.trigger_ref:
                where = "trigger.type" if "trigger" in c.attributes else "trigger_ref"
                found.append(Reference(c.source_file, where, "triggers", c.trigger_ref))
            if c.action_ref:
                where = "action.ref" if "action" in c.attributes else "action_ref"
                found.append(Reference(c.source_file, where, "actions", c.action_ref))
        if c.type == "sensors":
            found.extend(
                Reference(c.source_file, f"trigger_types[{i}]", "triggers", ref)
                for i, ref in enumerate(c.trigger_types)
            )
        if c.type == "policies" and c.resource_ref:
            found.append(Reference(c.source_file, "resource_ref", "actions", c.resource_ref))
    return found


def is_builtin(reference: Reference) -> bool:
    return reference.ref in (BUILTIN_TRIGGERS if reference.kind == "triggers" else BUILTIN_ACTIONS)


def resolve_references(
    pack_ref: str,
    components: list[Component],
    dependencies: Iterable[str],
    exists_elsewhere: Callable[[list[Reference]], set[tuple[str, str]]],
) -> None:
    """Every reference must name a component of the pack itself, a core built-in, or a component
    of a pack this one depends on. ``exists_elsewhere`` answers for references into dependencies
    with the set of (kind, ref) that exist. Raises one :class:`ManifestError` listing every
    unresolved reference with its file and field."""
    own = {(c.type, c.ref) for c in components}
    declared = set(dependencies)
    problems: list[dict[str, str]] = []
    outside: list[Reference] = []
    for reference in references(components):
        if is_builtin(reference) or (reference.kind, reference.ref) in own:
            continue
        if reference.pack == pack_ref:
            problems.append(_unresolved(reference, f"pack {pack_ref} has no {reference.kind[:-1]} {reference.name!r}"))
        elif reference.pack == CORE_PACK and CORE_PACK not in declared:
            problems.append(_unresolved(reference, f"{reference.ref!r} is not a core built-in {reference.kind[:-1]}"))
        elif reference.pack not in declared:
            problems.append(
                _unresolved(
                    reference,
                    f"{reference.ref!r} is in pack {reference.pack!r}, which {pack_ref} does not depend on: "
                    "declare it under dependencies in pack.yaml",
                )
            )
        else:
            outside.append(reference)
    if outside:
        existing = exists_elsewhere(outside)
        for reference in outside:
            if (reference.kind, reference.ref) not in existing:
                problems.append(
                    _unresolved(
                        reference,
                        f"pack {reference.pack} (a dependency) has no {reference.kind[:-1]} {reference.name!r}",
                    )
                )
    if problems:
        summary = "; ".join(f"{p['file']}: {p['field']}: {p['problem']}" for p in problems)
        raise ManifestError(
            f"pack {pack_ref}: unresolved references: {summary}",
            error_code="COMPONENT_REFERENCE_UNRESOLVED",
            details=problems,
        )


def _unresolved(reference: Reference, problem: str) -> dict[str, str]:
    return {"file": reference.source_file, "field": reference.field, "problem": problem}
