"""Build-environments stage: find each pack's environments by content hash, build what is missing.

A cache hit (artifact and a valid manifest under ``envs/<env_hash>/``) answers at once, without
CodeBuild. A miss starts one CodeBuild build per pack running ``buildspec/build_env.yml``, which
stores the artifacts and answers the Step Functions task token itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from attune_packs.adapters.codebuild import BuildStarter
from attune_packs.adapters.s3 import ObjectStore, S3Location
from attune_packs.adapters.stepfunctions import TaskTokens
from attune_packs.errors import AttuneError, BuildError, TransientError
from attune_packs.models import (
    BuildEnvsRequest,
    BuildEnvsResponse,
    BuildOptions,
    BuildSummary,
    BuildTask,
    BuiltEnvironment,
    EnvironmentArtifact,
    PackFailure,
)
from attune_packs.runtime import nodejs_env_hash, parse_requirements, python_env_hash
from attune_packs.services.packs import StoredPack, load_pack

PYTHON_PLATFORMS = {"arm64": "aarch64-manylinux_2_28", "x86_64": "x86_64-manylinux_2_28"}
ENV_PREFIX = "envs/"


def buildspec_text() -> str:
    return resources.files("attune_packs.buildspec").joinpath("build_env.yml").read_text()


@dataclass(frozen=True)
class EnvPlan:
    kind: str  # "python" | "nodejs"
    env_hash: str
    version: str

    @property
    def artifact_key(self) -> str:
        return f"{ENV_PREFIX}{self.env_hash}/{self.kind}.tar.gz"

    @property
    def manifest_key(self) -> str:
        return f"{ENV_PREFIX}{self.env_hash}/{self.kind}.manifest.json"


def plan_environments(pack: StoredPack, options: BuildOptions, architecture: str) -> list[EnvPlan]:
    contents = pack.contents
    plans = []
    if contents.requirements_txt is not None and not options.skip_python:
        requirements = parse_requirements(contents.requirements_txt)
        plans.append(
            EnvPlan(
                "python",
                python_env_hash(requirements, python_version=options.python_version, architecture=architecture),
                options.python_version,
            )
        )
    if contents.package_json is not None and not options.skip_nodejs:
        lock = contents.node_lockfile
        plans.append(
            EnvPlan(
                "nodejs",
                nodejs_env_hash(
                    contents.package_json,
                    contents.file(lock) if lock else None,
                    nodejs_version=options.nodejs_version,
                    architecture=architecture,
                ),
                options.nodejs_version,
            )
        )
    return plans


def find_cached(store: ObjectStore, plan: EnvPlan) -> EnvironmentArtifact | None:
    """The stored environment for ``plan``, if both its artifact and a valid manifest exist."""
    if store.head(S3Location(store.bucket, plan.artifact_key)) is None:
        return None
    if store.head(S3Location(store.bucket, plan.manifest_key)) is None:
        return None
    manifest = store.get_json(S3Location(store.bucket, plan.manifest_key))
    return artifact_from_manifest(store.bucket, plan, manifest, cached=True)


def artifact_from_manifest(bucket: str, plan: EnvPlan, manifest: Any, *, cached: bool) -> EnvironmentArtifact | None:
    if not isinstance(manifest, dict) or manifest.get("env_hash") != plan.env_hash or manifest.get("kind") != plan.kind:
        return None
    distributions = manifest.get("distributions") or []
    return EnvironmentArtifact(
        artifact=f"s3://{bucket}/{plan.artifact_key}",
        env_hash=plan.env_hash,
        requirements_installed=[f"{d['name']}=={d['version']}" for d in distributions],
        package_count=len(distributions),
        python_version=manifest.get("python_version"),
        nodejs_version=manifest.get("nodejs_version"),
        size_bytes=int(manifest.get("size_bytes", 0)),
        cached=cached,
        warnings=list(manifest.get("warnings") or []),
    )


def build_environment(
    *,
    pack: StoredPack,
    plans: list[EnvPlan],
    cached: dict[str, EnvironmentArtifact],
    options: BuildOptions,
    starter: BuildStarter,
    store: ObjectStore,
    architecture: str,
    task_token: str = "",
) -> str:
    """Start the CodeBuild build of the plans not in ``cached``; returns the build id."""
    wanted = {p.kind: p for p in plans if p.kind not in cached}
    python, nodejs = wanted.get("python"), wanted.get("nodejs")
    environment = {
        "BUCKET": store.bucket,
        "ARCHIVE_URI": pack.uri,
        "PACK_ROOT": pack.contents.archive.root,
        "PACK_REF": pack.contents.ref,
        "PACK_VERSION": pack.contents.manifest.version,
        "TASK_TOKEN": task_token,
        "BUILD_PYTHON": "1" if python else "0",
        "PYTHON_ENV_HASH": python.env_hash if python else "",
        "PYTHON_VERSION": options.python_version,
        "PYTHON_PLATFORM": PYTHON_PLATFORMS.get(architecture, PYTHON_PLATFORMS["arm64"]),
        "BUILD_NODEJS": "1" if nodejs else "0",
        "NODEJS_ENV_HASH": nodejs.env_hash if nodejs else "",
        "NODEJS_VERSION": options.nodejs_version,
        "CACHED_ENVIRONMENTS": json.dumps({k: v.model_dump(mode="json") for k, v in cached.items()}),
    }
    token_key = "-".join([pack.contents.ref, *(p.env_hash[:12] for p in wanted.values())])
    return starter.start(
        buildspec=buildspec_text(),
        environment=environment,
        timeout_minutes=max(5, min(480, options.timeout // 60)),
        idempotency_token=(task_token[-40:] if task_token else token_key),
    )


def _lookup(
    pack: StoredPack, options: BuildOptions, store: ObjectStore, architecture: str
) -> tuple[list[EnvPlan], dict[str, EnvironmentArtifact]]:
    plans = plan_environments(pack, options, architecture)
    cached: dict[str, EnvironmentArtifact] = {}
    if not options.force_rebuild:
        for plan in plans:
            hit = find_cached(store, plan)
            if hit is not None:
                cached[plan.kind] = hit
    return plans, cached


def handle_build_task(
    task: BuildTask, *, store: ObjectStore, starter: BuildStarter, tokens: TaskTokens, architecture: str
) -> dict[str, Any]:
    """One Map item of the state machine. A cache hit answers the token now; a miss starts a build
    that will answer it. Terminal errors propagate: the state machine's Catch records them."""
    started = time.monotonic()
    pack = load_pack(task.pack_path, store)
    plans, cached = _lookup(pack, task.options, store, architecture)
    if len(cached) == len(plans):
        result = BuiltEnvironment(
            pack_ref=pack.contents.ref,
            pack_version=pack.contents.manifest.version,
            archive=pack.uri,
            environments=cached,
            duration_ms=int((time.monotonic() - started) * 1000),
            test_result=None,
        )
        tokens.succeed(task.task_token, result.model_dump(mode="json"))
        return {"status": "cached", "pack_ref": pack.contents.ref}
    build_id = build_environment(
        pack=pack,
        plans=plans,
        cached=cached,
        options=task.options,
        starter=starter,
        store=store,
        architecture=architecture,
        task_token=task.task_token,
    )
    return {"status": "building", "pack_ref": pack.contents.ref, "build_id": build_id}


def build_pack_envs(
    request: BuildEnvsRequest,
    *,
    store: ObjectStore,
    starter: BuildStarter,
    architecture: str,
    poll_seconds: float = 2.0,
) -> BuildEnvsResponse:
    """The stage called directly (not as Map items): look up, build what is missing, wait for the
    builds to finish within ``request.timeout`` and report per pack."""
    started = time.monotonic()
    built: list[BuiltEnvironment] = []
    failed: list[PackFailure] = []
    pending: dict[str, tuple[StoredPack, list[EnvPlan], dict[str, EnvironmentArtifact], float]] = {}
    cache_hits = 0
    for path in dict.fromkeys(request.pack_paths):
        pack_started = time.monotonic()
        try:
            pack = load_pack(path, store)
            plans, cached = _lookup(pack, request, store, architecture)
            cache_hits += len(cached)
            if len(cached) == len(plans):
                built.append(
                    BuiltEnvironment(
                        pack_ref=pack.contents.ref,
                        pack_version=pack.contents.manifest.version,
                        archive=pack.uri,
                        environments=cached,
                        duration_ms=int((time.monotonic() - pack_started) * 1000),
                    )
                )
                continue
            build_id = build_environment(
                pack=pack,
                plans=plans,
                cached=cached,
                options=request,
                starter=starter,
                store=store,
                architecture=architecture,
            )
            pending[build_id] = (pack, plans, cached, pack_started)
        except AttuneError as exc:
            failed.append(
                PackFailure(
                    source=path,
                    error=exc.message,
                    error_code=exc.error_code,
                    retriable=exc.retriable,
                    details=exc.details,
                )
            )
    deadline = started + request.timeout
    while pending:
        for build_id in list(pending):
            status = starter.status(build_id).get("buildStatus", "IN_PROGRESS")
            if status == "IN_PROGRESS":
                continue
            pack, plans, cached, pack_started = pending.pop(build_id)
            try:
                built.append(_collect(pack, plans, cached, status, store, pack_started))
            except AttuneError as exc:
                failed.append(
                    PackFailure(
                        source=pack.uri,
                        pack_ref=pack.contents.ref,
                        error=exc.message,
                        error_code=exc.error_code,
                        retriable=exc.retriable,
                    )
                )
        if pending and time.monotonic() > deadline:
            for build_id, (pack, *_rest) in pending.items():
                failed.append(
                    PackFailure(
                        source=pack.uri,
                        pack_ref=pack.contents.ref,
                        error_code="BUILD_TIMEOUT",
                        retriable=True,
                        error=f"build {build_id} did not finish within {request.timeout}s",
                    )
                )
            break
        if pending:
            time.sleep(poll_seconds)
    built_counts = {
        kind: sum(1 for b in built for k, env in b.environments.items() if k == kind and not env.cached)
        for kind in ("python", "nodejs")
    }
    return BuildEnvsResponse(
        built_environments=built,
        failed_environments=failed,
        summary=BuildSummary(
            total_packs=len(built) + len(failed),
            success_count=len(built),
            failure_count=len(failed),
            python_envs_built=built_counts["python"],
            nodejs_envs_built=built_counts["nodejs"],
            cache_hits=cache_hits,
            total_duration_ms=int((time.monotonic() - started) * 1000),
        ),
    )


def _collect(
    pack: StoredPack,
    plans: list[EnvPlan],
    cached: dict[str, EnvironmentArtifact],
    status: str,
    store: ObjectStore,
    pack_started: float,
) -> BuiltEnvironment:
    if status != "SUCCEEDED":
        raise BuildError(f"the environment build of {pack.contents.ref} ended {status}")
    environments = dict(cached)
    for plan in plans:
        if plan.kind in environments:
            continue
        try:
            manifest = store.get_json(S3Location(store.bucket, plan.manifest_key))
        except AttuneError as exc:
            raise TransientError(f"build of {pack.contents.ref} succeeded but left no {plan.kind} manifest") from exc
        artifact = artifact_from_manifest(store.bucket, plan, manifest, cached=False)
        if artifact is None:
            raise BuildError(f"the {plan.kind} manifest of {pack.contents.ref} does not match its hash")
        environments[plan.kind] = artifact
    return BuiltEnvironment(
        pack_ref=pack.contents.ref,
        pack_version=pack.contents.manifest.version,
        archive=pack.uri,
        environments=environments,
        duration_ms=int((time.monotonic() - pack_started) * 1000),
    )
