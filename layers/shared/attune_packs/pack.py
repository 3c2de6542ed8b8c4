"""The pack format: pack.yaml (Attune's and StackStorm Exchange's forms) and component metadata.

Everything here is pure: it takes the files that :mod:`attune_packs.archive` read out of an archive
and returns validated models, or raises :class:`ManifestError` naming the file and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from attune_packs.archive import PackArchive
from attune_packs.components import Component, component_files, parse_component
from attune_packs.errors import ManifestError
from attune_packs.safe_yaml import load_yaml
from attune_packs.semver import Constraint, Version, parse_dependency

PACK_REF_PATTERN = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,63}$")
RESERVED_REFS = frozenset({"attune", "st2", "_global", "system"})


def validate_pack_ref(ref: str) -> str:
    if not PACK_REF_PATTERN.fullmatch(ref):
        raise ManifestError(
            f"pack ref {ref!r} is not a safe identifier: use lower-case letters, digits, '_' and '-'"
            " (at most 64, not starting with '-')",
            error_code="PACK_REF_INVALID",
        )
    if ref in RESERVED_REFS:
        raise ManifestError(f"pack ref {ref!r} is reserved", error_code="PACK_REF_INVALID")
    return ref


def _pydantic_problems(exc: ValidationError, source: str) -> list[dict[str, str]]:
    return [
        {"file": source, "field": ".".join(str(p) for p in err["loc"]) or "(root)", "problem": err["msg"]}
        for err in exc.errors()
    ]


def _raise_problems(problems: list[dict[str, str]], source: str, code: str = "MANIFEST_INVALID") -> None:
    summary = "; ".join(
        (f"{p['file']} " if p.get("file") not in (None, source) else "") + f"{p['field']}: {p['problem']}"
        for p in problems
    )
    raise ManifestError(f"{source}: {summary}", error_code=code, details=problems)


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


class PackManifest(BaseModel):
    """pack.yaml. Unknown fields are kept (``extra``), never fatal."""

    model_config = ConfigDict(extra="allow")

    ref: str
    name: str
    label: str | None = None
    description: str = ""
    version: str
    author: str | None = None
    email: str | None = None
    keywords: list[str] = Field(default_factory=list)
    dependencies: dict[str, str] = Field(default_factory=dict, description="ref -> constraint")
    python_versions: list[str] = Field(default_factory=list)
    python_version: str | None = None
    nodejs_version: str | None = None
    platform_version: str | None = Field(default=None, description="attune_version / stackstorm_version")
    testing: Testing | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("pack.yaml must be a mapping of fields")
        data = dict(data)
        # StackStorm packs may omit ref: it defaults to the name.
        if not data.get("ref") and isinstance(data.get("name"), str):
            data["ref"] = data["name"]
        if not data.get("name") and isinstance(data.get("ref"), str):
            data["name"] = data.get("label") or data["ref"]
        data["dependencies"] = _dependency_map(data.get("dependencies"))
        runtime = data.get("runtime_deps") or {}
        if isinstance(runtime, dict):
            data.setdefault("python_version", runtime.get("python"))
            data.setdefault("nodejs_version", runtime.get("nodejs") or runtime.get("node"))
        platform = data.get("attune_version") or data.get("stackstorm_version")
        if platform is not None:
            data["platform_version"] = str(platform)
        if isinstance(data.get("python_versions"), list):
            data["python_versions"] = [str(v) for v in data["python_versions"]]
        return data

    @field_validator("ref")
    @classmethod
    def _ref(cls, ref: str) -> str:
        try:
            return validate_pack_ref(ref)
        except ManifestError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f'version must be a quoted string like "1.2.0", not {type(value).__name__} {value!r}')
        try:
            Version.parse(value)
        except ManifestError as exc:
            raise ValueError(exc.message) from exc
        return value

    @field_validator("dependencies")
    @classmethod
    def _constraints(cls, deps: dict[str, str]) -> dict[str, str]:
        try:
            for ref, spec in deps.items():
                validate_pack_ref(ref)
                Constraint.parse(spec)
        except ManifestError as exc:
            raise ValueError(exc.message) from exc
        return deps

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)


def _dependency_map(raw: Any) -> Any:
    """Accept `[ "slack", "core=3.0.0", "http>=1" ]` and `{slack: ">=1"}`; give ref -> constraint."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): "*" if v in (None, "") else str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        result: dict[str, str] = {}
        for entry in raw:
            if isinstance(entry, dict) and "ref" in entry:
                result[str(entry["ref"])] = str(entry.get("version") or "*")
                continue
            if not isinstance(entry, str):
                raise ValueError(f"dependency {entry!r} must be a string like 'pack' or 'pack>=1.0.0'")
            try:
                ref, constraint = parse_dependency(entry)
            except ManifestError as exc:
                raise ValueError(exc.message) from exc
            result[ref] = str(constraint)
        return result
    raise ValueError("dependencies must be a list or a mapping")


def parse_manifest(content: bytes, *, source: str = "pack.yaml") -> PackManifest:
    data = load_yaml(content, source=source)
    try:
        return PackManifest.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, source)
        codes = {"ref": "PACK_REF_INVALID", "version": "PACK_VERSION_INVALID"}
        fields = {".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["type"] != "missing"}
        code = next((codes[f] for f in codes if f in fields), "MANIFEST_INVALID")
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
