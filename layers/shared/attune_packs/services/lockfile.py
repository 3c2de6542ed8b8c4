"""Lockfiles: write the lock of a plan or of a finished installation, verify one before a locked
install (the format is :mod:`attune_packs.domain.lockfile`, documented in docs/lockfile.md).

``lock_install`` runs the install plan (:mod:`attune_packs.services.plan`) and pins, for every
pack of it, version, source, Git commit and archive digest, its Python requirements resolved to
exact versions with hashes (``uv pip compile --generate-hashes`` for the target's Python version and
platform) and its Node.js packages with their lockfile integrity.

``locked_install_request`` is ``install --locked``: it computes the lock of what the lockfile's
sources give now, refuses any drift with ``LOCK_MISMATCH`` (``details`` lists each: pack, field,
locked, found), and returns the install request carrying the pins, which the download stages
enforce inside the state machine (so content that moves after the check is refused there too).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.adapters.s3 import ObjectStore, S3Location, parse_s3_uri
from attune_packs.domain.lockfile import (
    LOCKS_PREFIX,
    Drift,
    LockedEnvironments,
    LockedNodejs,
    LockedNodePackage,
    LockedPack,
    LockedPython,
    LockedTarget,
    Lockfile,
    drift_message,
    dump_lockfile,
    lock_drift,
    parse_compiled_requirements,
    parse_lockfile,
)
from attune_packs.domain.runtime import pack_requirements, parse_requirements, python_env_hash
from attune_packs.errors import DependencyError, LockMismatchError, RequirementsError
from attune_packs.models import InstallRequest, LockPin
from attune_packs.services import catalog
from attune_packs.services.plan import InstallPlan, PlannedPack, plan_install
from attune_packs.services.registry_indices import StoredIndices, no_stored_indices
from attune_packs.services.stages.build_envs import PYTHON_PLATFORMS
from attune_packs.services.stages.build_plans import LOCKED_SOURCE
from attune_packs.services.stages.npm_sources import lock_entries
from attune_packs.services.stored_packs import StoredPack, load_pack, stored_file_reader
from attune_packs.settings import Settings

# (requirements text, Python MAJOR.MINOR, uv platform) -> the compiled requirements with hashes
CompilePython = Callable[[str, str, str], str]
COMPILE_TIMEOUT_SECONDS = 300
LOCK_REPORT = "reports/installs/{}/lock.json"


def find_uv() -> str | None:
    """uv on PATH, else beside the running interpreter (a virtualenv's bin/)."""
    found = shutil.which("uv")
    if found:
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else None


def uv_compile(requirements: str, python_version: str, platform: str) -> str:
    """``uv pip compile --generate-hashes`` for the Lambda target (no config files, no header)."""
    uv = find_uv()
    if uv is None:
        raise RequirementsError(
            "uv is not available here, so Python requirements cannot be resolved for the lock",
            error_code="LOCK_UNVERIFIABLE",
        )
    command = [uv, "pip", "compile", "--quiet", "--no-config", "--generate-hashes", "--no-header", "--no-annotate"]
    command += ["--python-version", python_version, "--python-platform", platform, "-"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UV_INDEX", "PIP_"))}
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command; the requirements arrive on stdin
            command,
            input=requirements,
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_SECONDS,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RequirementsError(
            f"resolving the Python requirements took over {COMPILE_TIMEOUT_SECONDS}s",
            error_code="REQUIREMENTS_UNRESOLVABLE",
        ) from None
    if done.returncode != 0:
        raise RequirementsError(
            f"the Python requirements cannot be resolved: {done.stderr.strip()[-2000:]}",
            error_code="REQUIREMENTS_UNRESOLVABLE",
        )
    return done.stdout


def lock_install(
    request: InstallRequest,
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
    *,
    stored_indices: StoredIndices = no_stored_indices,
    compile_python: CompilePython | None = None,
) -> Lockfile:
    """The lock of what installing ``request`` would install now (refused if the plan fails)."""
    compile_python = compile_python or uv_compile
    packs: list[LockedPack] = []

    def visit(stored: StoredPack, planned: PlannedPack) -> None:
        packs.append(_locked_pack(stored, planned, store, compile_python, settings.target_architecture))

    plan = plan_install(request, store, table, settings, stored_indices=stored_indices, visit=visit)
    _refuse_failed_plan(plan)
    return _lockfile(request, settings, packs)


def _refuse_failed_plan(plan: InstallPlan) -> None:
    if plan.ok:
        return
    problems = [c.message for c in plan.conflicts] + [f"{f.source}: {f.error}" for f in plan.failed]
    raise DependencyError(
        "this installation cannot be planned, so it cannot be locked: " + "; ".join(problems[:5]),
        error_code="PLAN_FAILED",
        details={
            "conflicts": [c.model_dump(mode="json") for c in plan.conflicts],
            "failed": [f.model_dump(mode="json") for f in plan.failed],
        },
    )


def _locked_pack(
    stored: StoredPack, planned: PlannedPack, store: ObjectStore, compile_python: CompilePython, architecture: str
) -> LockedPack:
    environments = LockedEnvironments()
    for env in planned.environments:
        if env.kind == "python":
            platform = env.platform or PYTHON_PLATFORMS["arm64"]
            requirements = pack_requirements(stored.contents, stored_file_reader(stored, store))
            lines = "".join(f"{r.line}\n" for r in requirements.requirements) if requirements else ""
            compiled = compile_python(lines, env.version, platform) if lines.strip() else ""
            pins = parse_requirements(compiled.encode(), source=LOCKED_SOURCE) if compiled.strip() else []
            environments.python = LockedPython(
                # the environment a locked install builds: that of the hashed pins
                env_hash=python_env_hash(pins, python_version=env.version, architecture=architecture)
                if pins
                else env.env_hash,
                python_version=env.version,
                platform=platform,
                requirements=parse_compiled_requirements(compiled),
                compiled=compiled,
            )
        else:
            environments.nodejs = _locked_nodejs(stored, env.env_hash, env.version)
    return LockedPack(
        pack_ref=planned.pack_ref,
        pack_version=planned.pack_version,
        source=planned.source,
        source_type=planned.source_type,
        git_commit=planned.git_commit,
        checksum=planned.checksum,
        requested=planned.requested,
        required_by=sorted({r.required_by for r in planned.required_by}),
        environments=environments,
    )


def _locked_nodejs(stored: StoredPack, env_hash: str, version: str) -> LockedNodejs:
    name = stored.contents.node_lockfile
    packages: dict[str, LockedNodePackage] = {}
    if name is not None:
        content = stored.contents.file(name) or b"{}"
        for path, entry in sorted(lock_entries(json.loads(content), name).items()):
            packages[path] = LockedNodePackage(
                version=entry.get("version"), integrity=entry.get("integrity"), resolved=entry.get("resolved")
            )
    return LockedNodejs(env_hash=env_hash, nodejs_version=version, lockfile=name, packages=packages)


def locked_install_request(
    request: InstallRequest,
    document: bytes | str | dict[str, Any],
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
    *,
    stored_indices: StoredIndices = no_stored_indices,
    compile_python: CompilePython | None = None,
) -> InstallRequest:
    """``install --locked``: verify the lock against the sources now (``LOCK_MISMATCH`` naming
    what moved), then the request that installs exactly it (the lock's sources, its pins)."""
    lock = parse_lockfile(document)
    fields = request.model_dump()
    fields.update(
        packs=lock.requested_sources(),
        registry_url=request.registry_url or lock.target.registry_url,
        python_version=lock.target.python_version,
        nodejs_version=lock.target.nodejs_version,
        locked=None,
        locked_requirements=None,
    )
    plan_request = InstallRequest(**fields)
    found = lock_install(
        plan_request, store, table, settings, stored_indices=stored_indices, compile_python=compile_python
    )
    drift = [d for d in lock_drift(lock, found) if not _installed_as_locked(d, lock, table)]
    if lock.target.architecture != settings.target_architecture:
        drift.insert(0, _target_drift(lock.target.architecture, settings.target_architecture))
    if drift:
        raise LockMismatchError(drift_message(drift), details=[d.model_dump(mode="json") for d in drift])
    fields["locked_requirements"] = _store_verified_lock(store, lock)
    fields["locked"] = {
        p.pack_ref: LockPin(pack_version=p.pack_version, checksum=p.checksum, git_commit=p.git_commit)
        for p in lock.packs
    }
    return InstallRequest(**fields)


def _installed_as_locked(drift: Drift, lock: Lockfile, table: PackTable) -> bool:
    """A locked dependency the plan no longer brings because it is installed already, with exactly
    the locked content, is no drift (the lock installed again on the same stack)."""
    if drift.field != "pack" or drift.found is not None:
        return False
    locked = lock.pack(drift.pack_ref)
    current = catalog.read_head(table, drift.pack_ref).current
    return (
        locked is not None
        and current is not None
        and str(current.get("version")) == locked.pack_version
        and current.get("checksum") == locked.checksum
    )


def _store_verified_lock(store: ObjectStore, lock: Lockfile) -> str:
    """The verified lock, content-addressed under ``locks/``: the builds read their pins there."""
    text = dump_lockfile(lock).encode()
    key = f"{LOCKS_PREFIX}{hashlib.sha256(text).hexdigest()}.json"
    store.put_bytes(key, text, "application/json")
    return f"s3://{store.bucket}/{key}"


def _target_drift(locked: str, found: str) -> Drift:
    return Drift(pack_ref="*", field="target.architecture", locked=locked, found=found)


def store_installation_lock(store: ObjectStore, installation_id: str, lock: Lockfile) -> str:
    """Keep the lock with its installation: ``reports/installs/<id>/lock.json``; returns its URI."""
    key = LOCK_REPORT.format(installation_id)
    store.put_bytes(key, dump_lockfile(lock).encode(), "application/json")
    return f"s3://{store.bucket}/{key}"


def stored_installation_lock(store: ObjectStore, installation_id: str) -> str | None:
    key = LOCK_REPORT.format(installation_id)
    return f"s3://{store.bucket}/{key}" if store.head(S3Location(store.bucket, key)) is not None else None


def lock_of_installation(
    request: InstallRequest,
    output: dict[str, Any],
    store: ObjectStore,
    table: PackTable,
    settings: Settings,
    *,
    compile_python: CompilePython | None = None,
) -> Lockfile:
    """The lock of what a finished installation installed (its expanded output): every pack it
    registered or found unchanged, in order, with the environments it built or reused. Python
    pins are the built environment's exact distributions; with ``compile_python``, those exact
    pins are resolved once more to get their hashes (nothing else can change: all are pinned)."""
    downloads = {
        d["archive"]: d
        for stage in ("download", "dependency_download")
        for d in (output.get(stage) or {}).get("downloaded_packs") or []
    }
    builds = {b["pack_ref"]: b.get("environments") or {} for b in output.get("builds") or [] if isinstance(b, dict)}
    requirers: dict[str, set[str]] = {}
    for dependency in (output.get("dependencies") or {}).get("dependencies") or []:
        requirers.setdefault(dependency["pack_ref"], set()).add(dependency["required_by"])
    packs = []
    for registered in (output.get("register") or {}).get("registered_packs") or []:
        stored = load_pack(registered["storage_path"], store, table)
        download = downloads.get(registered["storage_path"], {})
        built = builds.get(registered["pack_ref"])
        if built is None:  # unchanged, or nothing to build: the environments it is registered with
            built = (catalog.read_head(table, registered["pack_ref"]).current or {}).get("environments") or {}
        packs.append(
            LockedPack(
                pack_ref=registered["pack_ref"],
                pack_version=registered["pack_version"],
                source=download.get("source", stored.uri),
                source_type=download.get("source_type", "s3"),
                git_commit=download.get("git_commit"),
                checksum=stored.checksum,
                requested=download.get("source") in request.packs,
                required_by=sorted(requirers.get(registered["pack_ref"], set())),
                environments=_built_environments(built, settings, compile_python),
            )
        )
    return _lockfile(request, settings, packs)


def _lockfile(request: InstallRequest, settings: Settings, packs: list[LockedPack]) -> Lockfile:
    """The lockfile of ``packs``, for the target the request and the deployment name."""
    return Lockfile(
        target=LockedTarget(
            registry_url=request.registry_url,
            python_version=request.python_version,
            nodejs_version=request.nodejs_version,
            architecture=settings.target_architecture,
        ),
        packs=packs,
    )


def _built_environments(
    environments: dict[str, Any], settings: Settings, compile_python: CompilePython | None
) -> LockedEnvironments:
    locked = LockedEnvironments()
    python = environments.get("python")
    if isinstance(python, dict) and python.get("env_hash"):
        platform = PYTHON_PLATFORMS.get(settings.target_architecture, PYTHON_PLATFORMS["arm64"])
        version = str(python.get("python_version") or "3.12")
        version = ".".join(version.split(".")[:2])
        pins = "".join(f"{line}\n" for line in python.get("requirements_installed") or [])
        compiled = compile_python(pins, version, platform) if compile_python and pins else pins
        locked.python = LockedPython(
            env_hash=python["env_hash"],
            python_version=version,
            platform=platform,
            requirements=parse_compiled_requirements(compiled),
            compiled=compiled if compile_python else None,
        )
    nodejs = environments.get("nodejs")
    if isinstance(nodejs, dict) and nodejs.get("env_hash"):
        locked.nodejs = LockedNodejs(
            env_hash=nodejs["env_hash"], nodejs_version=str(nodejs.get("nodejs_version") or "20")
        )
    return locked


def installation_lock(
    installation_id: str, status: dict[str, Any], store: ObjectStore, table: PackTable, settings: Settings
) -> str | None:
    """Where the lock of a finished installation is kept, written on first ask if the installation
    did not write it (Python pins are then the built environments' exact versions, without hashes:
    no uv here). None while it runs or when it failed."""
    existing = stored_installation_lock(store, installation_id)
    if existing is not None:
        return existing
    output = status.get("result")
    if status.get("status") != "SUCCEEDED" or not isinstance(output, dict) or not output.get("register"):
        return None
    request = InstallRequest.model_validate(status.get("request") or {})
    if request.locked_requirements is not None:  # a locked installation: the lock it installed
        verified = parse_lockfile(json.dumps(store.get_json(parse_s3_uri(request.locked_requirements))))
        return store_installation_lock(store, installation_id, verified)
    return store_installation_lock(
        store, installation_id, lock_of_installation(request, output, store, table, settings)
    )


def read_installation_lock(store: ObjectStore, installation_id: str) -> dict[str, Any]:
    from attune_packs.errors import NotFoundError

    location = S3Location(store.bucket, LOCK_REPORT.format(installation_id))
    if store.head(location) is None:
        raise NotFoundError(f"no lock is stored for installation {installation_id!r}")
    return dict(store.get_json(location))
