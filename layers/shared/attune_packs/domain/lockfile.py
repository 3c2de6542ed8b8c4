"""The lockfile format (``attune-packs.lock``, version 1; specified in docs/lockfile.md).

Pure: parsing, writing and comparing lockfiles. A lockfile pins, for every pack an installation
brings (in install order), what was installed: version, source, Git commit, archive digest and the
environments (Python requirements resolved to exact versions with their hashes; Node.js packages
with their lockfile integrity). :func:`lock_drift` says, field by field, what moved between a
lockfile and what the sources give now.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from attune_packs.errors import InvalidRequestError

LOCKFILE_VERSION: Literal[1] = 1
LOCKS_PREFIX = "locks/"  # verified lockfiles of locked installations: locks/<sha256 of the text>.json
MAX_LOCKFILE_BYTES = 2 * 2**20
_SHA256 = r"^sha256:[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class LockedRequirement(_Strict):
    name: str = Field(description="distribution name, normalised (PEP 503)")
    version: str = Field(description="the exact version (==)")
    hashes: list[str] = Field(default_factory=list, description="sha256:… of every accepted file")


class LockedPython(_Strict):
    env_hash: str | None = Field(default=None, description="the environment's content hash (envs/<hash>/)")
    python_version: str
    platform: str = Field(description="uv's --python-platform, e.g. aarch64-manylinux_2_28")
    requirements: list[LockedRequirement] = Field(default_factory=list)
    compiled: str | None = Field(
        default=None, description="the requirements file the build installs with --require-hashes"
    )


class LockedNodePackage(_Strict):
    version: str | None = None
    integrity: str | None = None
    resolved: str | None = None


class LockedNodejs(_Strict):
    env_hash: str | None = None
    nodejs_version: str
    lockfile: str | None = Field(default=None, description="package-lock.json or npm-shrinkwrap.json; None: none")
    packages: dict[str, LockedNodePackage] = Field(default_factory=dict, description="lockfile path -> pin")


class LockedEnvironments(_Strict):
    python: LockedPython | None = None
    nodejs: LockedNodejs | None = None


class LockedPack(_Strict):
    pack_ref: str
    pack_version: str
    source: str = Field(description="what was asked for, or ref@=version for a dependency taken from an index")
    source_type: str
    git_commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")
    checksum: str = Field(pattern=_SHA256, description="sha256 of the stored archive")
    requested: bool = Field(description="asked for (True) or brought as a dependency (False)")
    required_by: list[str] = Field(default_factory=list)
    environments: LockedEnvironments = Field(default_factory=LockedEnvironments)


class LockedTarget(_Strict):
    registry_url: str | None = None
    python_version: str = "3.12"
    nodejs_version: str = "20"
    architecture: str = "arm64"


class Lockfile(_Strict):
    lockfile_version: Literal[1] = LOCKFILE_VERSION
    generated_by: str = "attune-packs"
    target: LockedTarget = Field(default_factory=LockedTarget)
    packs: list[LockedPack] = Field(description="in install order, dependencies first")

    def pack(self, ref: str) -> LockedPack | None:
        return next((p for p in self.packs if p.pack_ref == ref), None)

    def requested_sources(self) -> list[str]:
        return [p.source for p in self.packs if p.requested]


class Drift(_Strict):
    """One thing that moved: ``field`` of ``pack_ref`` was ``locked``, is now ``found``."""

    pack_ref: str
    field: str
    locked: Any = None
    found: Any = None

    def sentence(self) -> str:
        return f"{self.pack_ref}: {self.field} is locked to {self.locked!r} but is now {self.found!r}"


def parse_lockfile(document: bytes | str | dict[str, Any]) -> Lockfile:
    """A lockfile from its JSON text (or the parsed object); ``LOCKFILE_INVALID`` says why not."""
    if isinstance(document, bytes | str):
        if len(document) > MAX_LOCKFILE_BYTES:
            raise InvalidRequestError(
                f"the lockfile is larger than {MAX_LOCKFILE_BYTES} bytes", error_code="LOCKFILE_INVALID"
            )
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise InvalidRequestError(f"the lockfile is not JSON: {exc}", error_code="LOCKFILE_INVALID") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("a lockfile is a JSON object", error_code="LOCKFILE_INVALID")
    version = document.get("lockfile_version")
    if version != LOCKFILE_VERSION:
        raise InvalidRequestError(
            f"lockfile_version {version!r} is not supported (this installer reads version {LOCKFILE_VERSION})",
            error_code="LOCKFILE_VERSION_UNSUPPORTED",
        )
    try:
        lock = Lockfile.model_validate(document)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors(include_url=False)
        ]
        raise InvalidRequestError(
            f"the lockfile is invalid: {problems[0]['field']}: {problems[0]['problem']}",
            error_code="LOCKFILE_INVALID",
            details=problems,
        ) from None
    refs = [p.pack_ref for p in lock.packs]
    if len(set(refs)) != len(refs) or not lock.packs:
        raise InvalidRequestError("a lockfile lists each pack once, and at least one", error_code="LOCKFILE_INVALID")
    return lock


def dump_lockfile(lock: Lockfile) -> str:
    """Stable text: the same lock always writes the same bytes (keys sorted, two-space indent)."""
    return json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


_REQUIREMENT_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def parse_compiled_requirements(text: str) -> list[LockedRequirement]:
    """The pins of a ``uv pip compile --generate-hashes`` output (``name==version`` and its
    ``--hash`` continuation lines), sorted by name."""
    pins: list[LockedRequirement] = []
    current: LockedRequirement | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _REQUIREMENT_LINE.match(line)
        if match:
            current = LockedRequirement(name=normalise_name(match.group(1)), version=match.group(3))
            pins.append(current)
        if current is not None:
            current.hashes.extend(_HASH.findall(line))
    for pin in pins:
        pin.hashes = sorted(set(pin.hashes))
    return sorted(pins, key=lambda p: p.name)


def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_drift(locked: Lockfile, found: Lockfile) -> list[Drift]:
    """Everything that differs between the lockfile and what the sources give now."""
    drift: list[Drift] = []
    found_refs = {p.pack_ref for p in found.packs}
    for pack in locked.packs:
        if pack.pack_ref not in found_refs:
            drift.append(Drift(pack_ref=pack.pack_ref, field="pack", locked=pack.pack_version, found=None))
    for now in found.packs:
        then = locked.pack(now.pack_ref)
        if then is None:
            drift.append(Drift(pack_ref=now.pack_ref, field="pack", locked=None, found=now.pack_version))
            continue
        for name in ("pack_version", "checksum", "git_commit"):
            if getattr(then, name) != getattr(now, name):
                drift.append(
                    Drift(pack_ref=now.pack_ref, field=name, locked=getattr(then, name), found=getattr(now, name))
                )
        drift.extend(_environment_drift(now.pack_ref, then.environments, now.environments))
    return drift


def _environment_drift(ref: str, then: LockedEnvironments, now: LockedEnvironments) -> list[Drift]:
    drift: list[Drift] = []
    if (then.python is None) != (now.python is None):
        drift.append(
            Drift(
                pack_ref=ref, field="environments.python", locked=then.python is not None, found=now.python is not None
            )
        )
    elif then.python is not None and now.python is not None:
        before = {r.name: r for r in then.python.requirements}
        after = {r.name: r for r in now.python.requirements}
        for name in sorted(before.keys() | after.keys()):
            old, new = before.get(name), after.get(name)
            if old is None or new is None or old.version != new.version:
                drift.append(
                    Drift(
                        pack_ref=ref,
                        field=f"python requirement {name}",
                        locked=old.version if old else None,
                        found=new.version if new else None,
                    )
                )
            elif old.hashes and new.hashes and not set(new.hashes) <= set(old.hashes):
                drift.append(
                    Drift(
                        pack_ref=ref,
                        field=f"python requirement {name}=={old.version} hashes",
                        locked=old.hashes,
                        found=sorted(set(new.hashes) - set(old.hashes)),
                    )
                )
    if (then.nodejs is None) != (now.nodejs is None):
        drift.append(
            Drift(
                pack_ref=ref, field="environments.nodejs", locked=then.nodejs is not None, found=now.nodejs is not None
            )
        )
    elif then.nodejs is not None and now.nodejs is not None:
        for path in sorted(then.nodejs.packages.keys() | now.nodejs.packages.keys()):
            old_pin, new_pin = then.nodejs.packages.get(path), now.nodejs.packages.get(path)
            if old_pin != new_pin:
                drift.append(
                    Drift(
                        pack_ref=ref,
                        field=f"nodejs package {path}",
                        locked=old_pin.model_dump() if old_pin else None,
                        found=new_pin.model_dump() if new_pin else None,
                    )
                )
    return drift


def pin_drift(ref: str, version: str, checksum: str, git_commit: str | None, pins: dict[str, Any]) -> list[Drift]:
    """What a downloaded pack changes against a locked install's pins (``LockPin``-like objects
    keyed by ref): empty when it is exactly the locked content."""
    pin = pins.get(ref)
    if pin is None:
        return [Drift(pack_ref=ref, field="pack", locked=None, found=version)]
    found = {"pack_version": version, "checksum": checksum, "git_commit": git_commit}
    return [
        Drift(pack_ref=ref, field=name, locked=getattr(pin, name), found=value)
        for name, value in found.items()
        if getattr(pin, name) != value
    ]


def drift_message(drift: list[Drift], *, limit: int = 10) -> str:
    shown = "; ".join(d.sentence() for d in drift[:limit])
    more = f" (and {len(drift) - limit} more)" if len(drift) > limit else ""
    return f"the lockfile does not match what the sources give now: {shown}{more}"
