"""Pack refs and dependency lists: the fields pack.yaml and registry index entries share.

Pure. :func:`validate_pack_ref` checks a ref is a safe identifier and not reserved (the reserved refs
are one list with the built-in component refs: :mod:`attune_packs.domain.components.builtins`);
:func:`normalise_dependencies` turns every dependency form packs write into ``ref -> constraint``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic_core import PydanticCustomError

from attune_packs.domain.components.builtins import RESERVED_PACK_REFS
from attune_packs.domain.semver import Constraint, cached_constraint, cached_dependency
from attune_packs.errors import ManifestError

PACK_REF_PATTERN = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,63}$")
MAX_DEPENDENCIES = 200
_ENTRIES = "manifest_entries"
# Exchange repositories are named stackstorm-<pack>: the pack a Git URL dependency names.
_EXCHANGE_URL = re.compile(
    r"^(?:https?|git|ssh)://[^\s=]+?/(?:stackstorm-)?(?P<name>[^/\s=]+?)(?:\.git)?/?(?:=(?P<version>\S+))?$"
)


def validate_pack_ref(ref: str) -> str:
    if not isinstance(ref, str) or not PACK_REF_PATTERN.fullmatch(ref):
        raise ManifestError(
            f"pack ref {ref!r} is not a safe identifier: use lower-case letters, digits, '_' and '-'"
            " (at most 64, not starting with '-')",
            error_code="PACK_REF_INVALID",
        )
    if ref in RESERVED_PACK_REFS:
        raise ManifestError(f"pack ref {ref!r} is reserved: {RESERVED_PACK_REFS[ref]}", error_code="PACK_REF_RESERVED")
    return ref


def _number_hint(value: object, example: str) -> str:
    """Why a YAML number where text is meant is refused, with the quoted form to write."""
    return (
        f"is the number {value!r}, not text: YAML reads an unquoted value like 1.10 as the number 1.1;"
        f" quote it, e.g. {example}"
    )


def _text(value: object, example: str, *, allow_int: bool = False) -> str:
    """A string field that YAML may have turned into a number."""
    if isinstance(value, bool):
        raise ValueError(f"is the boolean {value!r}, not text (YAML reads yes/no/on/off as booleans): quote it")
    if isinstance(value, int) and allow_int:
        return str(value)
    if isinstance(value, int | float):
        raise ValueError(_number_hint(value, example))
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    return value


# --- dependencies --------------------------------------------------------------------------------


def _url_dependency(text: str) -> tuple[str, str] | None:
    """``https://github.com/StackStorm-Exchange/stackstorm-aws.git=1.2.0`` -> ``("aws", "=1.2.0")``."""
    match = _EXCHANGE_URL.fullmatch(text.strip())
    if match is None:
        return None
    name, version = match["name"].lower(), match["version"]
    if version is None:
        return name, "*"
    return name, "=" + (version[1:] if version[:1] in ("v", "V") and version[1:2].isdigit() else version)


class _Dependencies:
    """Collects ``ref -> constraint`` and the problems found, each with its path."""

    def __init__(self) -> None:
        self.result: dict[str, str] = {}
        self.problems: list[tuple[str, str]] = []
        self.where: dict[str, str] = {}

    def add(self, path: str, ref: Any, spec: Any, parsed: Constraint | None = None) -> None:
        if not isinstance(ref, str):
            self.problems.append((path, f"the pack ref {ref!r} must be text"))
            return
        try:
            validate_pack_ref(ref)
        except ManifestError as exc:
            self.problems.append((path, exc.message))
            return
        if spec is None or spec == "":
            spec = "*"
        try:
            constraint = parsed or cached_constraint(_text(spec, f'{ref}: ">=1.10.0"', allow_int=True))
        except (ValueError, ManifestError) as exc:
            self.problems.append((path, exc.message if isinstance(exc, ManifestError) else f"the constraint {exc}"))
            return
        if ref in self.where:
            self.problems.append((path, f"{ref} is listed twice (also at {self.where[ref]}): merge the constraints"))
            return
        self.where[ref] = f"dependencies.{path}"
        self.result[ref] = str(constraint)

    def add_entry(self, path: str, entry: Any) -> None:
        """One entry of the list form."""
        if isinstance(entry, dict) and "ref" in entry:  # {ref: x, version: ">=1"}
            self.add(path, entry["ref"], entry.get("version"))
            return
        if not isinstance(entry, str):
            self.problems.append((path, f"{entry!r} must be text like 'pack', 'pack=1.2.3' or 'pack>=1.0.0,<2.0.0'"))
            return
        if "://" in entry:
            url = _url_dependency(entry)
            if url is None:
                problem = f"{entry!r} is a URL that names no Exchange pack; name the pack ref instead"
                self.problems.append((path, problem))
            else:
                self.add(path, *url)
            return
        try:
            ref, constraint = cached_dependency(entry)
        except ManifestError as exc:
            self.problems.append((path, exc.message))
            return
        self.add(path, ref, None, constraint)


def normalise_dependencies(raw: Any) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``["slack", "core=3.0.0", "http>=1"]`` or ``{slack: ">=1"}`` -> ``ref -> constraint`` and the
    problems found, each with its path below ``dependencies`` (an index for the list form, the ref
    for the mapping form). Shared by pack.yaml and registry index entries."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict | list):
        return {}, [
            (
                "",
                f"must be a list like ['core', 'slack=1.2.0'] or a mapping of ref to constraint, "
                f"not {type(raw).__name__}",
            )
        ]
    if len(raw) > MAX_DEPENDENCIES:
        return {}, [("", f"more than {MAX_DEPENDENCIES} dependencies")]
    found = _Dependencies()
    if isinstance(raw, dict):
        for ref, spec in raw.items():
            found.add(str(ref), ref, spec)
    else:
        for index, entry in enumerate(raw):
            found.add_entry(str(index), entry)
    return found.result, found.problems


def _entries_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """One pydantic error carrying several problems, each with a path below the field."""
    summary = "; ".join(f"{path}: {problem}" if path else problem for path, problem in problems)
    return PydanticCustomError(_ENTRIES, summary, {"entries": [list(p) for p in problems]})
