"""Component metadata files, split by concern.

:mod:`.model` (the normalised :class:`Component`), :mod:`.parse` (one metadata file in, one
component out), :mod:`.workflows` (Attune graphs, Orquesta, ActionChain), :mod:`.references` (what
components point at and whether it exists), :mod:`.builtins` (the platform's own refs, reserved
pack refs, known runtimes).
"""

from attune_packs.domain.components.builtins import (
    BUILTIN_ACTIONS,
    BUILTIN_REFS,
    BUILTIN_TRIGGERS,
    CORE_PACK,
    RESERVED_PACK_REFS,
)
from attune_packs.domain.components.model import Component, component_error, name_key
from attune_packs.domain.components.parse import COMPONENT_NAME_PATTERN, component_files, parse_component
from attune_packs.domain.components.references import (
    Reference,
    is_builtin,
    references,
    resolve_references,
    with_declared_triggers,
)
from attune_packs.domain.components.workflows import linked_workflow, workflow_path

__all__ = [
    "BUILTIN_ACTIONS",
    "BUILTIN_REFS",
    "BUILTIN_TRIGGERS",
    "COMPONENT_NAME_PATTERN",
    "CORE_PACK",
    "RESERVED_PACK_REFS",
    "Component",
    "Reference",
    "component_error",
    "component_files",
    "is_builtin",
    "linked_workflow",
    "name_key",
    "parse_component",
    "references",
    "resolve_references",
    "with_declared_triggers",
    "workflow_path",
]
