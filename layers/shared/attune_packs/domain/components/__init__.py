"""Component metadata files, split by concern: :mod:`.parse` (one file -> a :class:`Component`)."""

from attune_packs.domain.components.parse import *  # noqa: F403
from attune_packs.domain.components.parse import (
    BUILTIN_ACTIONS,
    BUILTIN_TRIGGERS,
    CORE_PACK,
    Component,
    Reference,
    component_files,
    is_builtin,
    parse_component,
    references,
    resolve_references,
    with_declared_triggers,
)

__all__ = [
    "BUILTIN_ACTIONS",
    "BUILTIN_TRIGGERS",
    "CORE_PACK",
    "Component",
    "Reference",
    "component_files",
    "is_builtin",
    "parse_component",
    "references",
    "resolve_references",
    "with_declared_triggers",
]
