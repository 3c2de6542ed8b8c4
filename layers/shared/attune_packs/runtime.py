"""Runtime requirements of a pack (Python, Node.js) and the content hash of its environments.

``requirements.txt`` is a command language; only PEP 508 requirement lines (with ``--hash``
options) are accepted, so nothing in a pack can point the build at another index or a local path.
The environment hash covers exactly what determines a built environment: the normalised
requirements (or package.json + lockfile), runtime and version, target architecture and the build
recipe version. Two packs with the same requirements share one environment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from attune_packs.errors import RequirementsError
from attune_packs.models import NodeRequirements, PythonRequirements, RuntimeRequirements
from attune_packs.pack import PackContents

# Bump when the buildspec changes what it produces: every environment is then rebuilt.
BUILD_RECIPE_VERSION = "1"
MAX_REQUIREMENTS = 500


@dataclass(frozen=True)
class ParsedRequirement:
    line: str  # normalised, e.g. "six==1.16.0"
    name: str
    hashes: tuple[str, ...]


def parse_requirements(content: bytes, *, source: str = "requirements.txt") -> list[ParsedRequirement]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequirementsError(f"{source} is not UTF-8 text", error_code="REQUIREMENTS_INVALID") from exc
    logical: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            logical.append((start, line))
    result: list[ParsedRequirement] = []
    for number, line in logical:
        requirement_text, hashes = _split_hashes(line, source, number)
        if requirement_text.startswith("-"):
            option = requirement_text.split()[0]
            raise RequirementsError(
                f"{source} line {number}: option {option!r} is not allowed; list packages as PEP 508 "
                "requirements (name, version specifier, markers) with optional --hash",
                error_code="REQUIREMENTS_FORBIDDEN",
                details={"line": number, "text": line},
            )
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            raise RequirementsError(
                f"{source} line {number}: {requirement_text!r} is not a valid requirement ({exc})",
                error_code="REQUIREMENTS_INVALID",
                details={"line": number, "text": line},
            ) from exc
        if requirement.url:
            raise RequirementsError(
                f"{source} line {number}: direct URL requirements ({requirement.name} @ ...) are not"
                " allowed; pin a version from the package index instead",
                error_code="REQUIREMENTS_FORBIDDEN",
                details={"line": number, "text": line},
            )
        result.append(ParsedRequirement(str(requirement), requirement.name, tuple(sorted(hashes))))
        if len(result) > MAX_REQUIREMENTS:
            raise RequirementsError(
                f"{source} lists more than {MAX_REQUIREMENTS} requirements", error_code="REQUIREMENTS_INVALID"
            )
    return result


def _split_hashes(line: str, source: str, number: int) -> tuple[str, list[str]]:
    if "--hash" not in line:
        return line, []
    head, *rest = line.split("--hash")
    hashes = []
    for part in rest:
        value = part.strip().lstrip("=").strip()
        if ":" not in value or " " in value:
            raise RequirementsError(
                f"{source} line {number}: malformed --hash {value!r}",
                error_code="REQUIREMENTS_INVALID",
                details={"line": number},
            )
        hashes.append(value)
    return head.strip(), hashes


def runtime_requirements(pack: PackContents) -> RuntimeRequirements:
    python = None
    if pack.requirements_txt is not None:
        parsed = parse_requirements(pack.requirements_txt)
        python = PythonRequirements(
            version=pack.manifest.python_version or _python_from_versions(pack.manifest.python_versions),
            requirements_file="requirements.txt",
            packages=[r.line for r in parsed],
        )
    nodejs = None
    if pack.package_json is not None:
        _check_package_json(pack.package_json)
        nodejs = NodeRequirements(
            version=pack.manifest.nodejs_version, package_file="package.json", lockfile=pack.node_lockfile
        )
    return RuntimeRequirements(python=python, nodejs=nodejs)


def _python_from_versions(versions: list[str]) -> str | None:
    return ",".join(versions) if versions else None


def _check_package_json(content: bytes) -> None:
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequirementsError(f"package.json is not valid JSON: {exc}", error_code="NPM_PACKAGE_INVALID") from exc
    if not isinstance(data, dict):
        raise RequirementsError("package.json must be a JSON object", error_code="NPM_PACKAGE_INVALID")


def _digest(document: dict[str, object]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def python_env_hash(requirements: list[ParsedRequirement], *, python_version: str, architecture: str) -> str:
    return _digest(
        {
            "kind": "python",
            "requirements": sorted(f"{r.line} {' '.join(r.hashes)}".strip() for r in requirements),
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
