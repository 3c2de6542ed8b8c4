"""Runtime requirements of a pack (Python, Node.js) and the content hash of its environments.

A pack's Python requirements come from ``requirements.txt`` (with its ``-r`` includes) and from
pack.yaml's ``meta.python_dependencies`` (Attune's form: a list of requirement lines, or a mapping
with ``dependencies`` (that list) or ``requirements_file_content`` (a requirements file's text)).
Both are checked by the same rules and merged into one set, so the same requirements give the same
environment hash whichever way a pack declares them.

``requirements.txt`` is a command language; only PEP 508 requirement lines (with ``--hash``
options) and ``-r`` includes of other requirement files *inside the pack* are accepted, so nothing
in a pack can point the build at another index, a URL or a path outside the pack:
``--index-url``, ``--extra-index-url``, ``-e``, ``-f``, ``-c``, ``--trusted-host``, direct URL
requirements and any other option are refused with ``REQUIREMENTS_FORBIDDEN`` before any build.

Requirements are normalised (canonical project names, sorted extras and specifiers, markers in
their canonical form; includes flattened; duplicates dropped), so equal requirements give equal
environment hashes whatever their order, spelling, comments or split over files. The environment
hash covers exactly what determines a built environment: the normalised requirements and their
hashes (or package.json's dependency fields + lockfile), runtime and version, target architecture
and the build recipe version. Two packs with the same requirements share one environment.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from attune_packs.domain.manifest import PackContents
from attune_packs.domain.semver import Constraint
from attune_packs.errors import ManifestError, RequirementsError
from attune_packs.models import NodeRequirements, PythonRequirements, RuntimeRequirements

# Bump when the buildspec changes what it produces: every environment is then rebuilt.
BUILD_RECIPE_VERSION = "3"
MAX_REQUIREMENTS = 500
MAX_INCLUDE_DEPTH = 8
MAX_INCLUDED_FILES = 32
REQUIREMENTS_FILE = "requirements.txt"
META_DEPENDENCIES = "pack.yaml meta.python_dependencies"
HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_COMMENT = re.compile(r"(^|\s)#.*$")
_OPTION_START = re.compile(r"(?:^|\s)(-{1,2}[A-Za-z])")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+|(?=[^\s-]))(?P<path>\S+)$")
_HASH_OPTION = re.compile(r"--hash(?:\s*=\s*|\s+)(?P<value>\S+)")
_URL_OR_PATH = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git\+|hg\+|svn\+|bzr\+|file:|\.{1,2}/|/|~)")
# A "name" that pip and uv would take for a local archive file rather than a project on the index.
_ARCHIVE_NAME = re.compile(r"\.(?:whl|zip|tar|tgz|tbz|txz|tar\.gz|tar\.bz2|tar\.xz)$", re.IGNORECASE)
_FORBIDDEN_HINTS = {
    "-e": "editable installs (-e) build from a path or URL",
    "--editable": "editable installs (-e) build from a path or URL",
    "-i": "the package index is the deployment's choice, not the pack's",
    "--index-url": "the package index is the deployment's choice, not the pack's",
    "--extra-index-url": "the package index is the deployment's choice, not the pack's",
    "-f": "find-links points the build at other locations",
    "--find-links": "find-links points the build at other locations",
    "--trusted-host": "trusted hosts turn off TLS verification",
    "-c": "constraint files are not supported",
    "--constraint": "constraint files are not supported",
}


@dataclass(frozen=True)
class ParsedRequirement:
    line: str  # normalised, e.g. "requests[security]>=2.0; python_version >= \"3.8\""
    name: str  # canonical project name
    hashes: tuple[str, ...]
    source: str = field(default=REQUIREMENTS_FILE, compare=False)
    line_number: int = field(default=0, compare=False)


class _Unread(Exception):
    """An include names a file of the pack that was not read out of the archive."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@dataclass(frozen=True)
class PythonRequirementSet:
    """A pack's Python requirements: ``requirements.txt`` with its includes flattened."""

    requirements: list[ParsedRequirement]
    included_files: list[str]
    sources: tuple[str, ...] = (REQUIREMENTS_FILE,)

    @property
    def hashed(self) -> bool:
        return bool(self.requirements) and all(r.hashes for r in self.requirements)


def _forbidden(source: str, number: int, line: str, why: str) -> RequirementsError:
    return RequirementsError(
        f"{source} line {number}: {why}; list packages as PEP 508 requirements (name, version specifier, "
        "markers) with optional --hash, and include other requirement files of the pack with -r",
        error_code="REQUIREMENTS_FORBIDDEN",
        details={"file": source, "line": number, "text": line},
    )


def _invalid(source: str, number: int, line: str, why: str) -> RequirementsError:
    return RequirementsError(
        f"{source} line {number}: {why}",
        error_code="REQUIREMENTS_INVALID",
        details={"file": source, "line": number, "text": line},
    )


def _logical_lines(content: bytes, source: str) -> list[tuple[int, str]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequirementsError(f"{source} is not UTF-8 text", error_code="REQUIREMENTS_INVALID") from exc
    if "\x00" in text:
        raise RequirementsError(f"{source} contains a NUL byte", error_code="REQUIREMENTS_INVALID")
    logical: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            logical.append((start, line))
    if pending.strip():
        logical.append((start, pending.strip()))
    return logical


def _split_options(line: str, source: str, number: int) -> tuple[str, list[str]]:
    """``pkg==1.0 --hash=sha256:...`` -> ``("pkg==1.0", ["sha256:..."])``; other options refused."""
    match = _OPTION_START.search(line)
    if match is None:
        return line, []
    head, options = line[: match.start(1)].strip(), line[match.start(1) :]
    hashes = []
    position = 0
    for found in _HASH_OPTION.finditer(options):
        if options[position : found.start()].strip():
            break
        hashes.append(found["value"])
        position = found.end()
    rest = options[position:].strip()
    if rest:
        option = rest.split()[0].split("=", 1)[0]
        raise _forbidden(source, number, line, f"option {option!r} is not allowed after a requirement")
    for value in hashes:
        algorithm, _, digest = value.partition(":")
        if HASH_LENGTHS.get(algorithm) != len(digest) or not re.fullmatch(r"[0-9a-f]+", digest):
            raise _invalid(
                source,
                number,
                line,
                f"malformed --hash {value!r}: expected sha256:, sha384: or sha512: and the hex digest",
            )
    return head, hashes


def _normalised(requirement: Requirement) -> tuple[str, str]:
    name = canonicalize_name(requirement.name)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{name}{extras}{requirement.specifier}{marker}", name


def _include_target(path: str, including: str, source: str, number: int, line: str) -> str:
    if "://" in path or path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", path) or "\\" in path:
        raise _forbidden(source, number, line, f"-r {path!r} must name a requirement file inside the pack")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(including), path))
    if target == ".." or target.startswith("../") or target.startswith("/"):
        raise _forbidden(source, number, line, f"-r {path!r} leaves the pack")
    return target


def parse_requirements(
    content: bytes, *, source: str = REQUIREMENTS_FILE, files: Mapping[str, bytes] | None = None
) -> list[ParsedRequirement]:
    """The requirements of ``content`` (the pack's file ``source``), ``-r`` includes resolved
    against ``files`` (the pack's files by path from its root). Without ``files`` an include is
    refused, as it cannot be checked."""
    return _parse_set(content, source=source, files=files).requirements


def _requirement(line: str, name: str, number: int) -> ParsedRequirement:
    """One requirement line of the file ``name``: checked and normalised."""
    if line.startswith("-"):
        option = line.split()[0].split("=", 1)[0]
        why = _FORBIDDEN_HINTS.get(option, "only requirements, --hash and -r are allowed")
        raise _forbidden(name, number, line, f"option {option!r} is not allowed ({why})")
    if _URL_OR_PATH.match(line):
        raise _forbidden(name, number, line, "URLs and paths are not allowed as requirements")
    text, hashes = _split_options(line, name, number)
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise _invalid(name, number, line, f"{text!r} is not a valid requirement ({exc})") from exc
    if _ARCHIVE_NAME.search(requirement.name):
        raise _forbidden(name, number, line, f"{requirement.name!r} names a local archive file, not a project")
    if requirement.url:
        raise _forbidden(
            name,
            number,
            line,
            f"direct URL requirements ({requirement.name} @ ...) are not allowed; pin "
            "a version from the package index instead",
        )
    normalised, project = _normalised(requirement)
    return ParsedRequirement(normalised, project, tuple(sorted(hashes)), name, number)


@dataclass
class _SetReader:
    """Reads a requirements file and its includes into one list (duplicates dropped)."""

    source: str
    files: Mapping[str, bytes] | None
    listed: frozenset[str]
    result: list[ParsedRequirement] = field(default_factory=list)
    seen: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    included: list[str] = field(default_factory=list)

    def include(self, path: str, name: str, number: int, line: str, stack: tuple[str, ...]) -> None:
        target = _include_target(path, name, name, number, line)
        if self.files is None:
            raise _invalid(name, number, line, "-r includes can only be read together with the pack's files")
        if target in stack:
            raise _invalid(name, number, line, f"-r {target} includes itself (via {' -> '.join(stack)})")
        if len(stack) >= MAX_INCLUDE_DEPTH:
            raise _invalid(name, number, line, f"-r includes nest deeper than {MAX_INCLUDE_DEPTH} files")
        body = self.files.get(target)
        if body is None and target in self.listed:
            raise _Unread(target)
        if body is None:
            raise _invalid(name, number, line, f"-r {target}: no such file in the pack")
        if target not in self.included:
            self.included.append(target)
            if len(self.included) > MAX_INCLUDED_FILES:
                raise _invalid(name, number, line, f"more than {MAX_INCLUDED_FILES} included files")
        self.walk(body, target, (*stack, target))

    def walk(self, data: bytes, name: str, stack: tuple[str, ...]) -> None:
        for number, line in _logical_lines(data, name):
            include = _INCLUDE.match(line)
            if include is not None:
                self.include(include["path"], name, number, line, stack)
                continue
            requirement = _requirement(line, name, number)
            key = (requirement.line, requirement.hashes)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.result.append(requirement)
            if len(self.result) > MAX_REQUIREMENTS:
                raise RequirementsError(
                    f"{self.source} lists more than {MAX_REQUIREMENTS} requirements", error_code="REQUIREMENTS_INVALID"
                )


def _parse_set(
    content: bytes, *, source: str, files: Mapping[str, bytes] | None, listed: frozenset[str] = frozenset()
) -> PythonRequirementSet:
    reader = _SetReader(source, files, listed)
    reader.walk(content, source, (source,))
    return PythonRequirementSet(reader.result, reader.included, (source,))


ReadFiles = Callable[[set[str]], Mapping[str, bytes]]


def meta_python_dependencies(manifest: Any) -> bytes | None:
    """pack.yaml's ``meta.python_dependencies`` as the text of a requirements file, or None.

    Read from the typed ``meta`` field when the manifest model has one, else from the raw
    mapping the model keeps (``model_extra``)."""
    meta = getattr(manifest, "meta", None)
    if meta is None:
        meta = (getattr(manifest, "model_extra", None) or {}).get("meta")
    if isinstance(meta, Mapping):
        declared = meta.get("python_dependencies")
    else:
        declared = getattr(meta, "python_dependencies", None)
    if declared is not None and hasattr(declared, "model_dump"):
        declared = declared.model_dump(exclude_none=True)
    if declared is None:
        return None
    if isinstance(declared, Mapping):
        if isinstance(declared.get("requirements_file_content"), str):
            return str(declared["requirements_file_content"]).encode()
        declared = declared.get("dependencies")
    if not isinstance(declared, list) or not all(isinstance(line, str) for line in declared):
        raise RequirementsError(
            f"{META_DEPENDENCIES} must be a list of requirements like ['requests>=2.28'] (or a mapping with "
            "dependencies or requirements_file_content)",
            error_code="REQUIREMENTS_INVALID",
            details={"field": "meta.python_dependencies"},
        )
    if any("\n" in line or "\r" in line for line in declared):
        raise RequirementsError(
            f"{META_DEPENDENCIES}: each entry is one requirement line", error_code="REQUIREMENTS_INVALID"
        )
    return "\n".join(declared).encode()


def pack_requirements(pack: PackContents, read_files: ReadFiles | None = None) -> PythonRequirementSet | None:
    """The pack's Python requirements (``requirements.txt`` and its includes, and pack.yaml's
    ``meta.python_dependencies``, merged), or None when it declares none."""
    sets = []
    if pack.requirements_txt is not None:
        sets.append(_file_requirements(pack, pack.requirements_txt, REQUIREMENTS_FILE, read_files))
    meta = meta_python_dependencies(pack.manifest)
    if meta is not None:
        sets.append(_file_requirements(pack, meta, META_DEPENDENCIES, read_files))
    if not sets:
        return None
    merged: dict[tuple[str, tuple[str, ...]], ParsedRequirement] = {}
    for found in sets:
        for requirement in found.requirements:
            merged.setdefault((requirement.line, requirement.hashes), requirement)
    if len(merged) > MAX_REQUIREMENTS:
        raise RequirementsError(f"more than {MAX_REQUIREMENTS} Python requirements", error_code="REQUIREMENTS_INVALID")
    included = list(dict.fromkeys(f for found in sets for f in found.included_files))
    return PythonRequirementSet(list(merged.values()), included, tuple(s for found in sets for s in found.sources))


def _file_requirements(
    pack: PackContents, content: bytes, source: str, read_files: ReadFiles | None
) -> PythonRequirementSet:
    """One requirement source of the pack. The archive scanner keeps only well-known files in
    memory; an included file it did not keep is asked for with ``read_files`` (paths from the
    pack root -> contents), as often as the includes nest."""
    files = dict(pack.archive.files)
    listed = frozenset(pack.archive.file_list)
    for _ in range(MAX_INCLUDE_DEPTH + 1):
        try:
            parsed = _parse_set(content, source=source, files=files, listed=listed)
            return PythonRequirementSet(parsed.requirements, parsed.included_files, (source,))
        except _Unread as unread:
            if read_files is None:
                raise RequirementsError(
                    f"{source} includes {unread.path}, which was not read out of the archive",
                    error_code="REQUIREMENTS_INVALID",
                ) from None
            more = read_files({unread.path})
            if unread.path not in more:
                raise RequirementsError(
                    f"{source} includes {unread.path}, which could not be read from the pack",
                    error_code="REQUIREMENTS_INVALID",
                ) from None
            files.update(more)
    raise RequirementsError(f"{source}: includes nest too deeply", error_code="REQUIREMENTS_INVALID")


def runtime_requirements(pack: PackContents, read_files: ReadFiles | None = None) -> RuntimeRequirements:
    """What the pack needs to run: refuses forbidden requirement lines and invalid npm files."""
    python = None
    parsed = pack_requirements(pack, read_files)
    if parsed is not None:
        python = PythonRequirements(
            version=pack.manifest.python_constraint,
            requirements_file=" + ".join(parsed.sources),
            packages=[r.line for r in parsed.requirements],
            included_files=parsed.included_files,
            hashed=parsed.hashed,
        )
    nodejs = None
    if pack.package_json is not None:
        package = _package_json(pack.package_json)
        lockfile = pack.node_lockfile
        warnings = []
        if lockfile is None:
            warnings.append(
                "no package-lock.json or npm-shrinkwrap.json: npm resolves versions at build time, so builds "
                "may differ; commit a lockfile"
            )
        else:
            _check_lockfile(lockfile, pack.file(lockfile) or b"")
        nodejs = NodeRequirements(
            version=pack.manifest.nodejs_version or _engines_node(package),
            package_file="package.json",
            lockfile=lockfile,
            warnings=warnings,
        )
    return RuntimeRequirements(python=python, nodejs=nodejs)


def _package_json(content: bytes) -> dict[str, object]:
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequirementsError(f"package.json is not valid JSON: {exc}", error_code="NPM_PACKAGE_INVALID") from exc
    if not isinstance(data, dict):
        raise RequirementsError("package.json must be a JSON object", error_code="NPM_PACKAGE_INVALID")
    return data


def _check_lockfile(name: str, content: bytes) -> None:
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequirementsError(f"{name} is not valid JSON: {exc}", error_code="NPM_LOCK_INVALID") from exc
    version = data.get("lockfileVersion") if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise RequirementsError(
            f"{name} has no lockfileVersion: it is not an npm lockfile (regenerate it with npm install)",
            error_code="NPM_LOCK_INVALID",
        )


def _engines_node(package: dict[str, object]) -> str | None:
    """package.json's ``engines.node``, when it is a range this project can check."""
    engines = package.get("engines")
    node = engines.get("node") if isinstance(engines, dict) else None
    if not isinstance(node, str):
        return None
    try:
        Constraint.parse(node)
    except ManifestError:
        return None
    return node


def _digest(document: dict[str, object]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def python_env_hash(requirements: list[ParsedRequirement], *, python_version: str, architecture: str) -> str:
    return _digest(
        {
            "kind": "python",
            "requirements": sorted({f"{r.line} {' '.join(sorted(r.hashes))}".strip() for r in requirements}),
            "python": python_version,
            "arch": architecture,
            "recipe": BUILD_RECIPE_VERSION,
        }
    )


def nodejs_env_hash(package_json: bytes, lockfile: bytes | None, *, nodejs_version: str, architecture: str) -> str:
    data = json.loads(package_json)
    relevant = {k: data.get(k) for k in ("dependencies", "optionalDependencies", "overrides", "engines")}
    return _digest(
        {
            "kind": "nodejs",
            "package": relevant,
            "lock": hashlib.sha256(lockfile).hexdigest() if lockfile else None,
            "node": nodejs_version,
            "arch": architecture,
            "recipe": BUILD_RECIPE_VERSION,
        }
    )
