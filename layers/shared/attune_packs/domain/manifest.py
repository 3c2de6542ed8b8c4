"""The pack format: pack.yaml (Attune's and StackStorm Exchange's forms) and component metadata.

Everything here is pure: it takes the files that :mod:`attune_packs.domain.archive` read out of an archive
and returns validated models, or raises :class:`ManifestError` naming the file and every field that
is wrong (``details`` lists them all, each with its path, e.g. ``dependencies.2``).

pack.yaml is accepted in two forms:

* Attune's: ``ref``, ``label``, ``version``, ``dependencies`` as a mapping ``ref: constraint``,
  ``runtime_deps: {python: ">=3.10", nodejs: ">=18"}``, ``attune_version``, ``conf_schema``,
  ``testing``;
* StackStorm Exchange's: ``name`` (the ref when ``ref`` is absent), ``python_versions: ["3"]``,
  ``stackstorm_version: ">=3.0.0"``, ``dependencies`` as a list of ``pack``, ``pack=1.2.3``,
  ``pack>=1,<2`` or a Git URL of an Exchange repository (``https://.../stackstorm-aws.git=1.2.0``,
  read as the pack ``aws``, the repository naming convention of the Exchange).

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
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from attune_packs.domain.archive import PackArchive
from attune_packs.domain.components import Component, component_files, parse_component
from attune_packs.domain.safe_yaml import load_yaml
from attune_packs.domain.semver import Constraint, Version, cached_constraint, cached_dependency
from attune_packs.errors import ManifestError

PACK_REF_PATTERN = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,63}$")
RESERVED_REFS = frozenset({"attune", "st2", "_global", "system"})
# Runtimes a pack may declare in runtime_deps ("node" is accepted as a spelling of "nodejs").
RUNTIMES = {"python": "python", "nodejs": "nodejs", "node": "nodejs"}
MAX_DEPENDENCIES = 200
PYTHON_VERSION_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")
# Exchange repositories are named stackstorm-<pack>: the pack a Git URL dependency names.
_EXCHANGE_URL = re.compile(r"^(?:https?|git|ssh)://[^\s=]+?/(?:stackstorm-)?(?P<name>[^/\s=]+?)(?:\.git)?/?(?:=(?P<version>\S+))?$")


def validate_pack_ref(ref: str) -> str:
    if not isinstance(ref, str) or not PACK_REF_PATTERN.fullmatch(ref):
        raise ManifestError(
            f"pack ref {ref!r} is not a safe identifier: use lower-case letters, digits, '_' and '-'"
            " (at most 64, not starting with '-')",
            error_code="PACK_REF_INVALID",
        )
    if ref in RESERVED_REFS:
        raise ManifestError(f"pack ref {ref!r} is reserved", error_code="PACK_REF_INVALID")
    return ref


# --- problems with field paths -------------------------------------------------------------------

_ENTRIES = "manifest_entries"
_LIMIT = "dependency_limit"


def _entries_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """One pydantic error carrying several problems, each with a path below the field."""
    summary = "; ".join(f"{path}: {problem}" if path else problem for path, problem in problems)
    return PydanticCustomError(_ENTRIES, summary, {"entries": [list(p) for p in problems]})


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


def normalise_dependencies(raw: Any) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``["slack", "core=3.0.0", "http>=1"]`` or ``{slack: ">=1"}`` -> ``ref -> constraint`` and the
    problems found, each with its path below ``dependencies`` (an index for the list form, the ref
    for the mapping form). Shared by pack.yaml and registry index entries."""
    if raw is None:
        return {}, []
    result: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    where: dict[str, str] = {}

    def add(path: str, ref: Any, spec: Any, parsed: Constraint | None = None) -> None:
        if not isinstance(ref, str):
            problems.append((path, f"the pack ref {ref!r} must be text"))
            return
        try:
            validate_pack_ref(ref)
        except ManifestError as exc:
            problems.append((path, exc.message))
            return
        if spec is None or spec == "":
            spec = "*"
        try:
            constraint = parsed or cached_constraint(_text(spec, f'{ref}: ">=1.10.0"', allow_int=True))
        except (ValueError, ManifestError) as exc:
            problems.append((path, exc.message if isinstance(exc, ManifestError) else f"the constraint {exc}"))
            return
        if ref in where:
            problems.append((path, f"{ref} is listed twice (also at {where[ref]}): merge the constraints"))
            return
        where[ref] = f"dependencies.{path}"
        result[ref] = str(constraint)

    if isinstance(raw, dict):
        entries = list(raw.items())
        if len(entries) > MAX_DEPENDENCIES:
            return {}, [("", f"more than {MAX_DEPENDENCIES} dependencies")]
        for ref, spec in entries:
            add(str(ref), ref, spec)
        return result, problems
    if isinstance(raw, list):
        if len(raw) > MAX_DEPENDENCIES:
            return {}, [("", f"more than {MAX_DEPENDENCIES} dependencies")]
        for index, entry in enumerate(raw):
            path = str(index)
            if isinstance(entry, dict) and "ref" in entry:  # {ref: x, version: ">=1"}
                add(path, entry["ref"], entry.get("version"))
                continue
            if not isinstance(entry, str):
                problems.append((path, f"{entry!r} must be text like 'pack', 'pack=1.2.3' or 'pack>=1.0.0,<2.0.0'"))
                continue
            url = _url_dependency(entry) if "://" in entry else None
            if "://" in entry and url is None:
                problems.append((path, f"{entry!r} is a URL that names no Exchange pack; name the pack ref instead"))
                continue
            if url is not None:
                add(path, *url)
                continue
            try:
                ref, constraint = cached_dependency(entry)
            except ManifestError as exc:
                problems.append((path, exc.message))
                continue
            add(path, ref, None, constraint)
        return result, problems
    return {}, [("", f"must be a list like ['core', 'slack=1.2.0'] or a mapping of ref to constraint, "
                     f"not {type(raw).__name__}")]


# --- the model -----------------------------------------------------------------------------------


class TestRunner(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(pattern=r"^(script|unittest|pytest)$")
    entry_point: str | None = None
    timeout: int = Field(default=300, ge=1, le=3600)
    result_format: str = Field(default="simple", pattern=r"^(simple|json|junit)$")


class Testing(BaseModel):
    model_config = ConfigDict(extra="allow")
    enabled: bool = True
    runners: dict[str, TestRunner] = Field(default_factory=dict)
    min_pass_rate: float = Field(default=1.0, ge=0, le=1)
    on_failure: str = Field(default="block", pattern=r"^(block|warn|ignore)$")


class _RefFromName(str):
    """A ref the normaliser took from ``name`` (StackStorm's form), so a bad one says so."""


class PackManifest(BaseModel):
    """pack.yaml. Unknown fields are kept (``extra``), never fatal."""

    model_config = ConfigDict(extra="allow")

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
        for key in ("description", "keywords", "dependencies", "python_versions", "runtime_deps"):
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

    @field_validator("keywords", mode="before")
    @classmethod
    def _keywords(cls, value: Any) -> Any:
        # Keywords are labels: a number written unquoted ("- 365") is kept as its text.
        if isinstance(value, list):
            return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value]
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
                problems.append((str(index), f"{text!r} is not a Python version like \"3\" or \"3.11\""))
                continue
            versions.append(text)
        if problems:
            raise _entries_error(problems)
        return versions

    @field_validator("runtime_deps", mode="before")
    @classmethod
    def _runtime_deps(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        result: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        for key, spec in value.items():
            runtime = RUNTIMES.get(str(key))
            if runtime is not None and runtime in result:
                problems.append((str(key), f"{runtime} is declared twice (as node and nodejs)"))
                continue
            if runtime is None:
                known = ", ".join(sorted(set(RUNTIMES.values())))
                problems.append((str(key), f"unknown runtime {key!r}: packs can declare {known}"))
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
        if self.python_version is None:
            self.python_version = self.runtime_deps.get("python")
        if self.nodejs_version is None:
            self.nodejs_version = self.runtime_deps.get("nodejs")
        return self

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
        return PackManifest.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, source)
        invalid = {_location(tuple(e["loc"])) for e in exc.errors() if e["type"] != "missing"}
        code = "MANIFEST_INVALID"
        if any(e["type"] == _LIMIT for e in exc.errors()):
            code = "DEPENDENCY_LIMIT"
        elif "ref" in invalid:
            code = "PACK_REF_INVALID"
        elif "version" in invalid:
            code = "PACK_VERSION_INVALID"
        _raise_problems(problems, source, code)
        raise AssertionError("unreachable") from exc


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


def read_pack(archive: PackArchive, *, strict: bool = True) -> PackContents:
    """Validate pack.yaml and every component file. ``strict=False`` skips content checks that are
    not about safety (entry points present, runner types, pack names); YAML safety limits stay."""
    content = archive.files.get("pack.yaml")
    if content is None:
        raise ManifestError("the archive has no pack.yaml at its pack root", error_code="PACK_MANIFEST_MISSING")
    manifest = parse_manifest(content)
    files = set(archive.file_list)
    components: list[Component] = []
    problems: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for kind, path in component_files(archive):
        try:
            component = parse_component(kind, path, archive.files[path], manifest.ref, files, strict=strict)
        except ManifestError as exc:
            problems.extend(exc.details or [{"file": path, "field": "(root)", "problem": exc.message}])
            continue
        if (kind, component.name) in seen:
            problems.append({"file": path, "field": "name", "problem": f"duplicate {kind} name {component.name!r}"})
            continue
        seen.add((kind, component.name))
        components.append(component)
    if problems:
        _raise_problems(problems, f"pack {manifest.ref}", "COMPONENT_INVALID")
    return PackContents(manifest=manifest, components=components, archive=archive)
