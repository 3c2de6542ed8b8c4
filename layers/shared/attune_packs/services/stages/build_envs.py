"""Build-environments stage: find each pack's environments by content hash, build what is missing,
run the pack's tests inside them.

:mod:`.build_plans` says what a pack's build must do (and what the cache already holds); this
module starts the CodeBuild builds and answers the stage's three callers through one entry,
:func:`handle_build_event`: a Map item of the state machine (answer its task token from the cache,
or start a build that answers it), a direct stage request (look up, build, wait, report), or that
request sent asynchronously by the HTTP API (the report goes to S3 for the status route).

``skip_validation`` reads the packs' component files leniently, as in the other stages;
``force_rebuild`` rebuilds and re-tests; ``skip_tests`` runs nothing and reports ``skipped``.
"""

from __future__ import annotations

import copy
import json
import math
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from attune_packs.adapters.codebuild import BuildStarter
from attune_packs.adapters.logs import LogReader
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.adapters.stepfunctions import TaskTokens
from attune_packs.buildspec.build_tools import reference_answer, task_answer, unique_report_key
from attune_packs.buildspec.bundle import buildspec_text
from attune_packs.errors import AttuneError, BuildError, TransientError
from attune_packs.models import (
    AsyncBuildRequest,
    BuildEnvsRequest,
    BuildEnvsResponse,
    BuildOptions,
    BuildPackEnvsEvent,
    BuildTask,
    BuiltEnvironment,
    PackFailure,
)
from attune_packs.s3_uri import S3Location
from attune_packs.services.build_reports import failure_message, fetch_excerpt
from attune_packs.services.installations import record_async_build
from attune_packs.services.stages.build_plans import (
    LOCKED_SOURCE,
    EnvPlan,
    PackPlan,
    TestPlan,
    artifact_from_manifest,
    plan_environments,
    plan_tests,
    prepare,
    stored_test_result,
)
from attune_packs.services.stages.npm_sources import NpmSourcePolicy
from attune_packs.services.stages.per_pack import PackFailures, bugs_as_internal_errors
from attune_packs.services.stored_packs import load_pack

__all__ = [
    "BuildServices",
    "EnvPlan",
    "PackPlan",
    "TestPlan",
    "build_pack_envs",
    "buildspec_text",
    "codebuild_timeout_minutes",
    "handle_build_event",
    "handle_build_task",
    "plan_environments",
    "plan_tests",
    "prepare",
    "start_build",
]

PYTHON_PLATFORMS = {"arm64": "aarch64-manylinux_2_28", "x86_64": "x86_64-manylinux_2_28"}
MAX_VARIABLE_CHARS = 4096  # CodeBuild's limit for one environment variable's value


@dataclass(frozen=True)
class BuildServices:
    """What the stage talks to: built by the handler, in-memory fakes in tests."""

    store: ObjectStore
    starter: BuildStarter
    tokens: TaskTokens | None = None
    logs: LogReader | None = None
    architecture: str = "arm64"
    npm: NpmSourcePolicy = field(default_factory=NpmSourcePolicy)


def handle_build_event(event: BuildPackEnvsEvent, services: BuildServices) -> dict[str, Any]:
    """The stage's one entry: each kind of event answered as its caller expects."""
    request = event.root
    if isinstance(request, BuildTask):
        if services.tokens is None:
            raise TypeError("a Map item needs the task tokens service")
        return handle_build_task(
            request,
            store=services.store,
            starter=services.starter,
            tokens=services.tokens,
            architecture=services.architecture,
            npm=services.npm,
        )
    direct = request.async_build if isinstance(request, AsyncBuildRequest) else request
    response = build_pack_envs(
        direct,
        store=services.store,
        starter=services.starter,
        architecture=services.architecture,
        logs=services.logs,
        npm=services.npm,
    ).model_dump(mode="json")
    if isinstance(request, AsyncBuildRequest):
        record_async_build(request.installation_id, services.store, "SUCCEEDED", response)
        return {"installation_id": request.installation_id, "status": "SUCCEEDED"}
    return response


# --- starting builds ------------------------------------------------------------------------------


def python_requirements_variable(plan: PackPlan) -> str:
    """The checked requirement lines the build installs (``PYTHON_REQUIREMENTS``): exactly what was
    checked, whichever files declared it. Empty when they come from requirements.txt alone and do
    not fit a variable: the build then installs the pack's requirements.txt (the same lines, read
    from the canonical archive)."""
    python = next((p for p in plan.missing if p.kind == "python"), None)
    if python is None:
        return ""
    text = "\n".join(python.requirements)
    if len(text) > MAX_VARIABLE_CHARS and python.sources == ("requirements.txt",):
        return ""
    return text


def build_variables(
    plan: PackPlan, options: BuildOptions, *, bucket: str, architecture: str, token: str, report_key: str
) -> dict[str, str]:
    """The environment variables of the build of ``plan`` (see build_env.yml)."""
    contents = plan.pack.contents
    hashes = {p.kind: p.env_hash for p in plan.envs}
    missing = {p.kind for p in plan.missing}
    tests = plan.tests if plan.tests is not None and plan.tests.run else None
    return {
        "BUCKET": bucket,
        "ARCHIVE_URI": plan.pack.uri,
        "PACK_ROOT": contents.archive.root,
        "PACK_REF": contents.ref,
        "PACK_VERSION": contents.manifest.version,
        "TASK_TOKEN": token,
        "REPORT_KEY": report_key,
        "BUILD_PYTHON": "1" if "python" in missing else "0",
        "PYTHON_ENV_HASH": hashes.get("python", ""),
        "PYTHON_VERSION": options.python_version,
        "PYTHON_PLATFORM": PYTHON_PLATFORMS.get(architecture, PYTHON_PLATFORMS["arm64"]),
        "PYTHON_REQUIREMENTS": python_requirements_variable(plan),
        "HASH_FLAG": "--require-hashes" if any(p.sources == (LOCKED_SOURCE,) for p in plan.envs) else "",
        "BUILD_NODEJS": "1" if "nodejs" in missing else "0",
        "NODEJS_ENV_HASH": hashes.get("nodejs", ""),
        "NODEJS_VERSION": options.nodejs_version,
        "RUN_TESTS": "1" if tests else "0",
        "TEST_CONFIG": json.dumps(tests.config, separators=(",", ":")) if tests else "",
        "TEST_REPORT_KEY": tests.key if tests else "",
        "BUILD_TIMEOUT_SECONDS": str(options.timeout),
    }


def start_build(
    plan: PackPlan,
    options: BuildOptions,
    *,
    starter: BuildStarter,
    store: ObjectStore,
    architecture: str,
    token: str = "",
    report_key: str = "",
) -> str:
    """Start the CodeBuild build of what ``plan`` misses; returns the build id. With ``report_key``
    the build stores its whole result there and answers ``token`` with a reference to it."""
    contents = plan.pack.contents
    environment = build_variables(
        plan, options, bucket=store.bucket, architecture=architecture, token=token, report_key=report_key
    )
    too_long = sorted(name for name, value in environment.items() if len(value) > MAX_VARIABLE_CHARS)
    if too_long:
        raise BuildError(
            f"the build of {contents.ref} cannot be started: {', '.join(too_long)} exceed CodeBuild's "
            f"{MAX_VARIABLE_CHARS}-character limit for a variable (shorten pack.yaml's testing section or "
            "meta.python_dependencies, or list the requirements in requirements.txt)",
            error_code="BUILD_INPUT_TOO_LARGE",
        )
    # CodeBuild returns the build an idempotency token already started (for 5 minutes): a retried
    # invocation starts nothing new, while a forced rebuild must not be answered by an earlier build.
    missing = sorted(p.kind for p in plan.missing)
    hashes = {p.kind: p.env_hash for p in plan.envs}
    tested = "t" if environment["RUN_TESTS"] == "1" else ""
    token_key = "-".join([contents.ref, *(hashes[k][:12] for k in missing), tested])
    if options.force_rebuild:
        token_key += f"-{secrets.token_hex(6)}"
    return starter.start(
        buildspec=buildspec_text(),
        environment=environment,
        timeout_minutes=codebuild_timeout_minutes(options.timeout),
        idempotency_token=(token[-40:] if token else token_key),
    )


def codebuild_timeout_minutes(timeout_seconds: int) -> int:
    """CodeBuild's own limit: the request's timeout (which the buildspec enforces to the second)
    plus two minutes to report, within CodeBuild's 5..480 minutes."""
    return max(5, min(480, math.ceil(timeout_seconds / 60) + 2))


# --- a Map item -----------------------------------------------------------------------------------


def handle_build_task(
    task: BuildTask,
    *,
    store: ObjectStore,
    starter: BuildStarter,
    tokens: TaskTokens,
    architecture: str,
    npm: NpmSourcePolicy | None = None,
) -> dict[str, Any]:
    """One Map item of the state machine. When nothing is missing (environments stored, tests
    skipped or their report stored) the token is answered now; else a build is started that will
    answer it. Terminal errors propagate: the state machine's Catch records them, their message
    led by their ``error_code`` (the Catch keeps only the error's type and message)."""
    try:
        with bugs_as_internal_errors("build"):
            pack = load_pack(task.pack_path, store, strict=not task.options.skip_validation)
            plan = prepare(pack, task.options, store, architecture, npm)
    except AttuneError as exc:
        raise _coded(exc) from exc
    if not plan.needs_build:
        result = plan.built(plan.cached, plan.test_result).model_dump(mode="json")
        if task.report_key:
            content = json.dumps(result).encode()
            key = unique_report_key(task.report_key, uuid.uuid4().hex)
            store.put_bytes(key, content, "application/json")
            tokens.succeed(task.task_token, reference_answer(result, S3Location(store.bucket, key).uri, content))
        else:
            tokens.succeed(task.task_token, task_answer(result))
        return {"status": "cached", "pack_ref": pack.contents.ref}
    build_id = start_build(
        plan,
        task.options,
        starter=starter,
        store=store,
        architecture=architecture,
        token=task.task_token,
        report_key=task.report_key or "",
    )
    what = "building" if plan.missing else "testing"
    return {"status": what, "pack_ref": pack.contents.ref, "build_id": build_id, "warnings": plan.warnings}


# --- the stage called directly --------------------------------------------------------------------


@dataclass
class _DirectRun:
    started: float = field(default_factory=time.monotonic)
    built: list[BuiltEnvironment] = field(default_factory=list)
    failed: list[PackFailure] = field(default_factory=list)
    pending: dict[str, PackPlan] = field(default_factory=dict)
    cache_hits: int = 0

    def response(self) -> BuildEnvsResponse:
        duration_ms = int((time.monotonic() - self.started) * 1000)
        return BuildEnvsResponse.of(self.built, self.failed, cache_hits=self.cache_hits, duration_ms=duration_ms)


def build_pack_envs(
    request: BuildEnvsRequest,
    *,
    store: ObjectStore,
    starter: BuildStarter,
    architecture: str,
    logs: LogReader | None = None,
    poll_seconds: float = 2.0,
    npm: NpmSourcePolicy | None = None,
) -> BuildEnvsResponse:
    """The stage called directly (not as Map items): look up, build what is missing, wait for the
    builds to finish within ``request.timeout`` and report per pack (a failed build with the last
    lines of its log)."""
    run = _DirectRun()
    failures = PackFailures("build", propagate_transient=False, failed=run.failed)
    for path in dict.fromkeys(request.pack_paths):
        with failures.guard(path) as attempt:
            pack = load_pack(path, store, strict=not request.skip_validation)
            plan = prepare(pack, request, store, architecture, npm)
            attempt.pack_ref = plan.pack.contents.ref
            run.cache_hits += len(plan.cached)
            if not plan.needs_build:
                run.built.append(plan.built(plan.cached, plan.test_result))
                continue
            run.pending[start_build(plan, request, starter=starter, store=store, architecture=architecture)] = plan
    _wait_for_builds(run, request, starter=starter, store=store, logs=logs, poll_seconds=poll_seconds)
    return run.response()


def _wait_for_builds(
    run: _DirectRun,
    request: BuildEnvsRequest,
    *,
    starter: BuildStarter,
    store: ObjectStore,
    logs: LogReader | None,
    poll_seconds: float,
) -> None:
    deadline = run.started + codebuild_timeout_minutes(request.timeout) * 60
    failures = PackFailures("build", propagate_transient=False, failed=run.failed)
    while run.pending:
        for build_id in list(run.pending):
            build = starter.status(build_id)
            if build.get("buildStatus", "IN_PROGRESS") == "IN_PROGRESS":
                continue
            plan = run.pending.pop(build_id)
            with failures.guard(plan.pack.uri, plan.pack.contents.ref):
                run.built.append(_collect(plan, build_id, build, store, logs))
        if run.pending and time.monotonic() > deadline:
            for build_id, plan in run.pending.items():
                run.failed.append(
                    PackFailure(
                        source=plan.pack.uri,
                        pack_ref=plan.pack.contents.ref,
                        error_code="BUILD_TIMEOUT",
                        retriable=True,
                        error=f"build {build_id} did not finish within {request.timeout}s",
                    )
                )
            return
        if run.pending:
            time.sleep(poll_seconds)


def _coded(exc: AttuneError) -> AttuneError:
    """``exc`` with its message led by its error code, as BUILD_FAILED causes are."""
    if exc.message.startswith(f"{exc.error_code}:"):
        return exc
    coded = copy.copy(exc)
    coded.message = f"{exc.error_code}: {exc.message}"
    coded.args = (coded.message,)
    return coded


def _failed_build(ref: str, build_id: str, build: dict[str, Any], logs: LogReader | None) -> BuildError:
    status = str(build.get("buildStatus"))
    phases: list[dict[str, Any]] = build.get("phases") or []
    failed_phase = next((p for p in phases if p.get("phaseStatus") not in (None, "SUCCEEDED")), {})
    contexts = [str(c.get("message") or "") for c in failed_phase.get("contexts") or [] if c.get("message")]
    log_config = build.get("logs") or {}
    excerpt = fetch_excerpt(logs, str(log_config.get("groupName") or ""), str(log_config.get("streamName") or ""))
    phase = str(failed_phase.get("phaseType") or "")
    return BuildError(
        failure_message(
            pack_ref=ref, build_id=build_id, status=status, phase=phase, contexts=contexts, excerpt=excerpt
        ),
        details={"build_id": build_id, "status": status, "phase": phase, "log_excerpt": excerpt},
    )


def _collect(
    plan: PackPlan, build_id: str, build: dict[str, Any], store: ObjectStore, logs: LogReader | None
) -> BuiltEnvironment:
    ref = plan.pack.contents.ref
    if str(build.get("buildStatus")) != "SUCCEEDED":
        raise _failed_build(ref, build_id, build, logs)
    environments = dict(plan.cached)
    for env in plan.missing:
        try:
            manifest = store.get_json(S3Location(store.bucket, env.manifest_key))
        except AttuneError as exc:
            raise TransientError(f"build {build_id} of {ref} succeeded but left no {env.kind} manifest") from exc
        artifact = artifact_from_manifest(store.bucket, env, manifest, cached=False)
        if artifact is None or artifact.artifact_sha256 is None:
            raise BuildError(f"the {env.kind} manifest of {ref} does not match its hash or records no artifact sha256")
        replaced = [w for w in plan.warnings if f"/{env.artifact_key}" in w]
        environments[env.kind] = artifact.model_copy(update={"warnings": [*artifact.warnings, *replaced]})
    test_result = plan.test_result
    if plan.tests is not None and plan.tests.run and test_result is None:
        test_result = stored_test_result(store, plan.tests)
        if test_result is None:
            raise TransientError(f"build {build_id} of {ref} succeeded but stored no valid test report")
    return plan.built(environments, test_result)
