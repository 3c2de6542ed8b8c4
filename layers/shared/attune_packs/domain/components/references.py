"""What components point at, and whether it exists.

Cross-component checks need the registry, so they are split in two: :func:`references` lists what
each component points at (a rule's trigger and action, a sensor's triggers, a policy's action, an
alias's action), :func:`resolve_references` judges them against what a caller says exists.
Triggers that sensors declare inline (StackStorm's form) become components of their own:
:func:`with_declared_triggers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from attune_packs.domain.components.builtins import BUILTIN_ACTIONS, BUILTIN_TRIGGERS, CORE_PACK
from attune_packs.domain.components.model import Component, component_error, name_key
from attune_packs.errors import ManifestError

ReferenceKind = Literal["triggers", "actions"]


def with_declared_triggers(pack_ref: str, components: list[Component]) -> list[Component]:
    """The pack's components plus the triggers its sensors declare inline (StackStorm's form), each
    a trigger component of its own. A declared trigger whose name a trigger file already uses is
    an error naming the sensor file."""
    names = {name_key(c.name) for c in components if c.type == "triggers"}
    result = list(components)
    for sensor in (c for c in components if c.type == "sensors"):
        for index, declaration in enumerate(sensor.attributes.get("trigger_declarations", [])):
            name = declaration["name"]
            if name_key(name) in names:
                raise component_error(
                    sensor.source_file,
                    f"trigger_types[{index}].name",
                    f"trigger {name!r} is declared twice in the pack (names are compared ignoring case)",
                    "COMPONENT_DUPLICATE",
                )
            names.add(name_key(name))
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
        if c.type == "aliases" and c.action_ref:
            found.append(Reference(c.source_file, "action_ref", "actions", c.action_ref))
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
