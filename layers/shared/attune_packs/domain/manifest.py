"""The pack format: pack.yaml (Attune's and StackStorm Exchange's forms) and the pack as a whole.

Everything here is pure: it takes the files that :mod:`attune_packs.domain.archive` read out of an archive
and returns validated models, or raises :class:`ManifestError` naming the file and every field that
is wrong (``details`` lists them all, each with its path, e.g. ``dependencies.2`` or
``config.max_action_timeout``).

pack.yaml is accepted in two forms:

* Attune's: ``ref``, ``label``, ``version``, ``dependencies`` as a mapping ``ref: constraint``,
  ``runtime_deps`` as a list of runtime names (``[shell, python3]``) or a mapping of runtime to
  version constraint, ``system``, ``enabled``, ``conf_schema`` (a JSON Schema, object or flat form),
  ``config`` (validated against ``conf_schema``), ``meta`` (``keywords``, ``python_dependencies``,
  ``documentation_url``, ``repository_url``, ...), ``tags``, ``email``, ``attune_version``, ``testing``;
* StackStorm Exchange's: ``name`` (the ref when ``ref`` is absent), ``python_versions: ["3"]``,
  ``stackstorm_version: ">=3.0.0"``, ``dependencies`` as a list of ``pack``, ``pack=1.2.3``,
  ``pack>=1,<2`` or a Git URL of an Exchange repository (``https://.../stackstorm-aws.git=1.2.0``,
  read as the pack ``aws``, the repository naming convention of the Exchange), and the pack's
  configuration schema in ``config.schema.yaml``.

YAML 1.1 reads unquoted ``1.10`` as the float ``1.1`` and ``no`` as ``False``: where text is meant
(versions, constraints, Python versions) a number is refused with a message asking to quote it
rather than silently turned into the wrong text. Unknown fields are kept (``model_extra``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from attune_packs.domain import json_schema
from attune_packs.domain.archive import PackArchive
from attune_packs.domain.components import (
    Component,
    component_files,
    linked_workflow,
    name_key,
    parse_component,
)
from attune_packs.domain.components.builtins import SYSTEM_PACK_REFS, known_runtime_names, runtime_name
from attune_packs.domain.manifest_sections import PackMeta, Testing, TestRunner, _labels
from attune_packs.domain.pack_fields import (
    _ENTRIES,
    MAX_DEPENDENCIES,
    PACK_REF_PATTERN,
    _entries_error,
    _number_hint,
    _text,
    normalise_dependencies,
    validate_pack_ref,
)
from attune_packs.domain.safe_yaml import load_yaml
from attune_packs.domain.semver import Constraint, Version
from attune_packs.errors import ManifestError

__all__ = [
    "PACK_REF_PATTERN",
    "PackContents",
    "PackManifest",
    "PackMeta",
    "Testing",
    "TestRunner",
    "normalise_dependencies",
    "parse_manifest",
    "read_pack",
]

PYTHON_VERSION_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")


# --- problems with field paths -------------------------------------------------------------------

_LIMIT = "dependency_limit"
_RESERVED = "pack_ref_reserved"


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


_MISSING_HINTS = {
    "ref": "is required (or give name, which StackStorm packs use as their ref)",
    "name": "is required",
    "version": 'is required, as a quoted semantic version like "1.0.0"',
}


def _pydantic_problems(exc: ValidationError, source: str) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == _ENTRIES:
            for sub, problem in (err.get("ctx") or {}).get("entries", []):
                problems.append({"file": source, "field": _location(loc + ((sub,) if sub else ())), "problem": problem})
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = _MISSING_HINTS.get(_location(loc), "is required")
        problems.append({"file": source, "field": _location(loc), "problem": message})
    return problems


def _raise_problems(problems: list[dict[str, str]], source: str, code: str = "MANIFEST_INVALID") -> None:
    summary = "; ".join(
        (f"{p['file']} " if p.get("file") not in (None, source) else "") + f"{p['field']}: {p['problem']}"
        for p in problems
    )
    raise ManifestError(f"{source}: {summary}", error_code=code, details=problems)


# --- the model -----------------------------------------------------------------------------------


class _RefFromName(str):
    """A ref the normaliser took from ``name`` (StackStorm's form), so a bad one says so."""


class PackManifest(BaseModel):
    """pack.yaml. Unknown fields are kept (``extra``), never fatal."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str
    ref: str
    label: str | None = None
    description: str = ""
    version: str
    author: str | None = None
    email: str | None = None
    keywords: list[str] = Field(default_factory=list)
    dependencies: dict[str, str] = Field(default_factory=dict, description="ref -> constraint")
    python_versions: list[str] = Field(default_factory=list, description="StackStorm: major (or major.minor) versions")
    runtime_deps: dict[str, str] = Field(default_factory=dict, description="runtime -> version constraint")
    python_version: str | None = Field(default=None, description="runtime_deps.python")
    nodejs_version: str | None = Field(default=None, description="runtime_deps.nodejs")
    attune_version: str | None = Field(default=None, description="constraint on the Attune version")
    stackstorm_version: str | None = Field(default=None, description="constraint on the StackStorm version")
    testing: Testing | None = None
    system: StrictBool = Field(default=False, description="a system pack (Attune's core): removal needs force")
    enabled: StrictBool = Field(default=True, description="whether the pack is enabled once installed")
    conf_schema: dict[str, Any] | None = Field(
        default=None, description="the configuration schema as written (JSON Schema object or flat form)"
    )
    conf_schema_file: str | None = Field(
        default=None, description="where conf_schema came from: pack.yaml, or config.schema.yaml (StackStorm)"
    )
    config: dict[str, Any] | None = Field(default=None, description="default configuration, valid for conf_schema")
    meta: PackMeta = Field(default_factory=lambda: PackMeta())
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _normalise_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise ValueError(f"pack.yaml must be a mapping of fields, but it is {kind}")
        data = dict(data)
        # StackStorm packs may omit ref: it defaults to the name. Attune's may omit name.
        if data.get("ref") in (None, "") and isinstance(data.get("name"), str):
            data["ref"] = _RefFromName(data["name"])
        if data.get("name") in (None, "") and isinstance(data.get("ref"), str):
            data["name"] = data.get("label") if isinstance(data.get("label"), str) else data["ref"]
        for key in ("description", "keywords", "dependencies", "python_versions", "runtime_deps", "meta", "tags"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @field_validator("ref", mode="before")
    @classmethod
    def _ref(cls, ref: Any) -> Any:
        if not isinstance(ref, str):
            return ref  # the type error is reported as such
        try:
            return validate_pack_ref(str(ref))
        except ManifestError as exc:
            if exc.error_code == "PACK_REF_RESERVED":
                raise PydanticCustomError(_RESERVED, exc.message) from exc
            from_name = isinstance(ref, _RefFromName)
            hint = " (a pack without ref uses its name as ref: add a ref field)" if from_name else ""
            raise ValueError(exc.message + hint) from exc

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(_number_hint(value, 'version: "1.10.0" (MAJOR.MINOR.PATCH)'))
        if not isinstance(value, str):
            raise ValueError(f'must be a quoted semantic version like "1.2.0", not {type(value).__name__}')
        try:
            Version.parse(value)
        except ManifestError as exc:
            raise ValueError(exc.message) from exc
        return value

    @field_validator("keywords", "tags", mode="before")
    @classmethod
    def _keywords(cls, value: Any) -> Any:
        return _labels(value)

    @field_validator("conf_schema", mode="before")
    @classmethod
    def _conf_schema(cls, value: Any) -> Any:
        if value is None:
            return None
        problems = json_schema.check_schema(value)
        if problems:
            raise _entries_error(problems)
        return value

    @field_validator("dependencies", mode="before")
    @classmethod
    def _dependencies(cls, value: Any) -> dict[str, str]:
        if isinstance(value, list | dict) and len(value) > MAX_DEPENDENCIES:
            raise PydanticCustomError(
                _LIMIT, "{count} dependencies: more than {limit}", {"count": len(value), "limit": MAX_DEPENDENCIES}
            )
        deps, problems = normalise_dependencies(value)
        if problems:
            raise _entries_error(problems)
        return deps

    @field_validator("python_versions", mode="before")
    @classmethod
    def _python_versions(cls, value: Any) -> Any:
        if not isinstance(value, list):
            if isinstance(value, str | int):
                value = [value]  # python_versions: "3" written without a list
            else:
                return value
        versions: list[str] = []
        problems: list[tuple[str, str]] = []
        for index, item in enumerate(value):
            try:
                text = _text(item, '"3" or "3.10"', allow_int=True)
            except ValueError as exc:
                problems.append((str(index), str(exc)))
                continue
            if not PYTHON_VERSION_PATTERN.fullmatch(text):
                problems.append((str(index), f'{text!r} is not a Python version like "3" or "3.11"'))
                continue
            versions.append(text)
        if problems:
            raise _entries_error(problems)
        return versions

    @field_validator("runtime_deps", mode="before")
    @classmethod
    def _runtime_deps(cls, value: Any) -> Any:
        """Attune's list of runtime names (``[shell, python3]``: any version) or a mapping of
        runtime to version constraint (``{python: ">=3.10"}``)."""
        if isinstance(value, list):
            value = {entry: "*" for entry in value} if all(isinstance(e, str) for e in value) else value
            if not isinstance(value, dict):
                return _runtime_list_problems(value)
        if not isinstance(value, dict):
            return value
        result: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for key, spec in value.items():
            runtime = runtime_name(str(key))
            if runtime is None:
                problems.append((str(key), f"unknown runtime {key!r}: packs can declare {known_runtime_names()}"))
                continue
            if runtime in result:
                problems.append((str(key), f"{runtime} is declared twice (under two of its names)"))
                continue
            try:
                text = _text(spec, f'{key}: ">=3.10"', allow_int=True)
                _runtime_constraint(text)
            except ValueError as exc:
                problems.append((str(key), str(exc)))
                continue
            result[runtime] = text
        if problems:
            raise _entries_error(problems)
        return result

    @field_validator("attune_version", "stackstorm_version", mode="before")
    @classmethod
    def _platform(cls, value: Any) -> Any:
        if value is None:
            return None
        text = _text(value, '">=3.0.0"', allow_int=True)
        try:
            Constraint.parse(text)
        except ManifestError as exc:
            raise ValueError(exc.message) from exc
        return text

    @field_validator("python_version", "nodejs_version", mode="before")
    @classmethod
    def _runtime_version(cls, value: Any) -> Any:
        if value is None:
            return None
        text = _text(value, '">=3.10"', allow_int=True)
        _runtime_constraint(text)
        return text

    @model_validator(mode="after")
    def _runtime_versions(self) -> PackManifest:
        if self.python_version is None and self.runtime_deps.get("python") != "*":
            self.python_version = self.runtime_deps.get("python")
        if self.nodejs_version is None and self.runtime_deps.get("nodejs") != "*":
            self.nodejs_version = self.runtime_deps.get("nodejs")
        return self

    @model_validator(mode="after")
    def _config_matches_schema(self) -> PackManifest:
        problems = self.config_problems()
        if problems:
            raise _entries_error(problems)
        return self

    def config_problems(self) -> list[tuple[str, str]]:
        """Where ``config`` does not match ``conf_schema``, each with its path below ``config``."""
        if self.config is None or self.conf_schema is None:
            return []
        return json_schema.validate(self.config, self.config_schema or {}, "config")

    @property
    def config_schema(self) -> dict[str, Any] | None:
        """``conf_schema`` in JSON Schema object form, whichever form the pack wrote."""
        return json_schema.normalise(self.conf_schema) if self.conf_schema is not None else None

    @property
    def python_dependencies(self) -> list[str]:
        """``meta.python_dependencies``: a Python requirement source like ``requirements.txt``."""
        declared = self.meta.python_dependencies
        if declared is None:
            return []
        return declared if isinstance(declared, list) else declared.lines()

    @property
    def runtimes(self) -> list[str]:
        """The runtimes the pack declares (canonical names: ``python``, ``nodejs``, ``shell`` ...)."""
        return sorted(self.runtime_deps)

    def stored_fields(self) -> dict[str, Any]:
        """Every pack.yaml field the registry keeps beside the version, as JSON-ready data."""
        kept = self.model_dump(mode="json", exclude={"testing"})
        kept["runtimes"] = self.runtimes
        kept["python_dependencies"] = self.python_dependencies
        kept["config_schema"] = self.config_schema
        kept["testing"] = self.testing.model_dump(mode="json") if self.testing else None
        return kept

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)

    @property
    def platform_version(self) -> str | None:
        """The platform constraint: ``attune_version``, else StackStorm's ``stackstorm_version``."""
        return self.attune_version or self.stackstorm_version

    @property
    def python_constraint(self) -> str | None:
        """The Python versions the pack runs on: ``runtime_deps.python``, else ``python_versions``
        as alternatives (``["2", "3"]`` -> ``2 || 3``)."""
        if self.python_version:
            return self.python_version
        return " || ".join(self.python_versions) or None


def _runtime_list_problems(value: list[Any]) -> Any:
    problems = [
        (str(index), f"{entry!r} must be a runtime name ({known_runtime_names()})"[:300])
        for index, entry in enumerate(value)
        if not isinstance(entry, str)
    ]
    raise _entries_error(problems)


def _runtime_constraint(text: str) -> None:
    """A runtime version constraint: this project's grammar (``>=3.10``, ``^20``, ``3``) or, for
    Python, PEP 440 (``~=3.10``, ``>=3.10,!=3.11.*``)."""
    try:
        Constraint.parse(text)
        return
    except ManifestError as semver_error:
        try:
            SpecifierSet(text)
        except InvalidSpecifier:
            raise ValueError(semver_error.message) from None


def parse_manifest(content: bytes, *, source: str = "pack.yaml") -> PackManifest:
    data = load_yaml(content, source=source)
    try:
        manifest = PackManifest.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, source)
        invalid = {_location(tuple(e["loc"])) for e in exc.errors() if e["type"] != "missing"}
        code = "MANIFEST_INVALID"
        if any(e["type"] == _LIMIT for e in exc.errors()):
            code = "DEPENDENCY_LIMIT"
        elif any(e["type"] == _RESERVED for e in exc.errors()):
            code = "PACK_REF_RESERVED"
        elif "ref" in invalid:
            code = "PACK_REF_INVALID"
        elif "version" in invalid:
            code = "PACK_VERSION_INVALID"
        _raise_problems(problems, source, code)
        raise AssertionError("unreachable") from exc
    if manifest.ref in SYSTEM_PACK_REFS and not manifest.system:
        problem = (
            f"{manifest.ref!r} is reserved for the platform's system pack, which declares system: true "
            "(and replaces an installed one only with force)"
        )
        _raise_problems([{"file": source, "field": "ref", "problem": problem}], source, "PACK_REF_RESERVED")
    return manifest


@dataclass
class PackContents:
    """A pack read from its archive: its manifest, components and runtime files."""

    manifest: PackManifest
    components: list[Component]
    archive: PackArchive
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return self.manifest.ref

    def file(self, path: str) -> bytes | None:
        return self.archive.files.get(path)

    @property
    def requirements_txt(self) -> bytes | None:
        return self.file("requirements.txt")

    @property
    def package_json(self) -> bytes | None:
        return self.file("package.json")

    @property
    def node_lockfile(self) -> str | None:
        for name in ("package-lock.json", "npm-shrinkwrap.json"):
            if name in self.archive.files:
                return name
        return None


CONFIG_SCHEMA_FILE = "config.schema.yaml"


def _config_schema_file(manifest: PackManifest, archive: PackArchive) -> None:
    """StackStorm keeps the configuration schema in ``config.schema.yaml``: it becomes the pack's
    ``conf_schema``. A pack that writes it in both places is refused (which one holds?)."""
    content = archive.files.get(CONFIG_SCHEMA_FILE)
    if content is None:
        if manifest.conf_schema is not None:
            manifest.conf_schema_file = "pack.yaml"
        return
    if manifest.conf_schema is not None:
        problem = "the configuration schema is given twice: keep conf_schema in pack.yaml or config.schema.yaml"
        _raise_problems([{"file": CONFIG_SCHEMA_FILE, "field": "(root)", "problem": problem}], CONFIG_SCHEMA_FILE)
    schema = load_yaml(content, source=CONFIG_SCHEMA_FILE)
    if schema is None:
        return  # an empty file: no configuration
    problems = json_schema.check_schema(schema)
    if problems:
        details = [{"file": CONFIG_SCHEMA_FILE, "field": path or "(root)", "problem": p} for path, p in problems]
        _raise_problems(details, CONFIG_SCHEMA_FILE)
    manifest.conf_schema, manifest.conf_schema_file = schema, CONFIG_SCHEMA_FILE
    config_problems = manifest.config_problems()
    if config_problems:
        details = [{"file": "pack.yaml", "field": path, "problem": p} for path, p in config_problems]
        _raise_problems(details, "pack.yaml")


def _collect_components(
    manifest: PackManifest, archive: PackArchive, strict: bool
) -> tuple[list[Component], list[dict[str, str]]]:
    files = set(archive.file_list)
    components: list[Component] = []
    problems: list[dict[str, str]] = []
    for kind, path in component_files(archive):
        try:
            component = parse_component(kind, path, archive.files[path], manifest.ref, files, strict=strict)
            components.append(component)
            workflow = linked_workflow(component, archive.files, strict=strict) if kind == "actions" else None
        except ManifestError as exc:
            problems.extend(_file_problems(path, exc))
            continue
        if workflow is not None:
            components.append(workflow)
    return components, problems


def _pack_wide_problems(manifest: PackManifest, components: list[Component]) -> list[dict[str, str]]:
    """Names unique per kind (after NFC normalisation and case folding). Built-in refs need no
    check here: they are all ``core.*``, a component's ref is always its pack's, and only the
    system pack may be ``core`` (:func:`parse_manifest`)."""
    problems: list[dict[str, str]] = []
    seen: dict[tuple[str, str], Component] = {}
    for component in components:
        key = (component.type, name_key(component.name))
        first = seen.setdefault(key, component)
        if first is not component:
            problem = (
                f"{component.type[:-1]} {component.name!r} has the name of {first.name!r} ({first.source_file}):"
                " names are compared ignoring case and Unicode normalisation"
            )
            where = {"file": component.source_file, "field": "name", "problem": problem}
            problems.append({**where, "error_code": "COMPONENT_DUPLICATE"})
    return problems


def _file_problems(path: str, exc: ManifestError) -> list[dict[str, Any]]:
    """One component file's problems: a list as the component checks give it, or the YAML error's
    own position (``line``, ``column`` as ``details``) with its code and the file named."""
    if isinstance(exc.details, list):
        return exc.details
    where = exc.details if isinstance(exc.details, dict) else {}
    return [{"file": path, "field": "(root)", "problem": exc.message, **where, "error_code": exc.error_code}]


def unlinked_workflow_files(archive: PackArchive, components: list[Component]) -> list[str]:
    """Workflow files under ``actions/workflows/`` that no action runs: kept in the archive, not
    registered (an Orquesta subworkflow is always run through an action of its own)."""
    linked = {c.source_file for c in components if c.type == "workflows"}
    return [
        path
        for path in archive.file_list
        if path.startswith("actions/workflows/") and path.endswith((".yaml", ".yml")) and path not in linked
    ]


def read_pack(archive: PackArchive, *, strict: bool = True) -> PackContents:
    """Validate pack.yaml and every component file. ``strict=False`` skips content checks that are
    not about safety (entry points present, runner types, pack names); YAML safety limits stay."""
    content = archive.files.get("pack.yaml")
    if content is None:
        raise ManifestError("the archive has no pack.yaml at its pack root", error_code="PACK_MANIFEST_MISSING")
    manifest = parse_manifest(content)
    _config_schema_file(manifest, archive)
    components, problems = _collect_components(manifest, archive, strict)
    if not problems:
        problems = _pack_wide_problems(manifest, components)
    if problems:
        codes = {p.get("error_code", "COMPONENT_INVALID") for p in problems}
        _raise_problems(problems, f"pack {manifest.ref}", codes.pop() if len(codes) == 1 else "COMPONENT_INVALID")
    unlinked = "no action runs this workflow: kept in the archive, not registered"
    orphans = unlinked_workflow_files(archive, components)
    notes = [{"file": path, "field": "(root)", "problem": unlinked} for path in orphans]
    return PackContents(manifest=manifest, components=components, archive=archive, problems=notes)
