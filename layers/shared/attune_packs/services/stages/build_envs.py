"""Build-environments stage: find each pack's environments by content hash, build what is missing,
run the pack's tests inside them.

A pack's plan (:func:`prepare`) says which environments it has (Python from ``requirements.txt``,
Node.js from ``package.json`` and its lockfile), whether each is already stored under
``envs/<env_hash>/`` (artifact and a valid manifest), and whether its tests must run. A build is
started only for what is missing: environments not stored, or tests with no stored report.

Pack tests and the cache. The test report is stored at ``reports/builds/tests/<key>.json``, the key a
hash of everything that determines the run: the archive's checksum (pack code, tests and the
``testing`` settings), the environment hashes, the requested runtimes, the architecture and the
build recipe (buildspec and its tools). A pack whose environments are cached reuses the stored
report of an identical run; without one, a *test-only* build fetches the stored environments and
runs the tests. So a repeated installation costs no build, while any change that could change a
test's outcome runs the tests again. ``force_rebuild`` rebuilds and re-tests; ``skip_tests`` runs
nothing and reports ``skipped``.
"""

from __future__ import annotations

import ast
import base64
import gzip
import hashlib
import json
import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from attune_packs.adapters.codebuild import BuildStarter
from attune_packs.adapters.logs import LogReader
from attune_packs.adapters.s3 import ObjectStore
from attune_packs.adapters.stepfunctions import TaskTokens
from attune_packs.buildspec.build_tools import reference_answer, summarise, task_answer, unique_report_key
from attune_packs.domain.runtime import BUILD_RECIPE_VERSION, nodejs_env_hash, pack_requirements, python_env_hash
from attune_packs.errors import AttuneError, BuildError, ConfigurationError, RequirementsError, TransientError
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
from attune_packs.s3_uri import S3Location
from attune_packs.services.build_reports import failure_message, fetch_excerpt, valid_test_result
from attune_packs.services.stages.per_pack import PackFailures, bugs_as_internal_errors
from attune_packs.services.stored_packs import StoredPack, load_pack

PYTHON_PLATFORMS = {"arm64": "aarch64-manylinux_2_28", "x86_64": "x86_64-manylinux_2_28"}
ENV_PREFIX = "envs/"
TEST_REPORT_PREFIX = "reports/builds/tests/"
MAX_VARIABLE_CHARS = 4096  # CodeBuild's limit for one environment variable's value
MAX_BUILDSPEC_CHARS = 25_600  # CodeBuild's limit for an inline buildspec
_TOOLS_MARKER = "@@BUILD_TOOLS@@"
_YAML_COMMENT = re.compile(r"^ {0,6}#")  # YAML-level comments; command blocks are indented 8+


@cache
def buildspec_text() -> str:
    """The buildspec the builds run: ``build_env.yml`` without its YAML comment lines (lines inside
    command blocks, such as a heredoc's ``#!``, are indented deeper and stay), with
    ``build_tools.py`` embedded (docstrings and comments dropped, gzip, base64) to stay well under
    CodeBuild's limit for an inline buildspec."""
    folder = resources.files("attune_packs.buildspec")
    lines = folder.joinpath("build_env.yml").read_text().splitlines(keepends=True)
    spec = "".join(line for line in lines if not _YAML_COMMENT.match(line))
    tools = minified_python(folder.joinpath("build_tools.py").read_text())
    text = spec.replace(_TOOLS_MARKER, base64.b64encode(gzip.compress(tools.encode(), 9, mtime=0)).decode())
    if len(text) > MAX_BUILDSPEC_CHARS:
        raise ConfigurationError(f"the buildspec is {len(text)} characters; CodeBuild accepts {MAX_BUILDSPEC_CHARS}")
    return text


def minified_python(source: str) -> str:
    """``source`` without docstrings and comments (same behaviour, fewer characters)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


@cache
def recipe_digest() -> str:
    """Identifies what a build does (recipe version, buildspec and tools): part of the test key."""
    return hashlib.sha256(f"{BUILD_RECIPE_VERSION}\n{buildspec_text()}".encode()).hexdigest()


# --- plans -------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class TestPlan:
    config: dict[str, Any]  # pack.yaml's ``testing``, normalised
    run: bool  # False: skip_tests, disabled, or no runners
    key: str  # where the report of this exact run is stored
    __test__ = False  # not a pytest class

    @property
    def policy(self) -> dict[str, Any]:
        return {"min_pass_rate": self.config["min_pass_rate"], "on_failure": self.config["on_failure"]}


@dataclass
class PackPlan:
    pack: StoredPack
    envs: list[EnvPlan]
    cached: dict[str, EnvironmentArtifact]
    tests: TestPlan | None
    test_result: dict[str, Any] | None = None  # known without a build (skipped, or a stored report)
    started: float = field(default_factory=time.monotonic)

    @property
    def missing(self) -> list[EnvPlan]:
        return [p for p in self.envs if p.kind not in self.cached]

    @property
    def needs_build(self) -> bool:
        return bool(self.missing) or (self.tests is not None and self.tests.run and self.test_result is None)

    def built(
        self, environments: dict[str, EnvironmentArtifact], test_result: dict[str, Any] | None
    ) -> BuiltEnvironment:
        return BuiltEnvironment(
            pack_ref=self.pack.contents.ref,
            pack_version=self.pack.contents.manifest.version,
            archive=self.pack.uri,
            environments=environments,
            duration_ms=int((time.monotonic() - self.started) * 1000),
            test_result=test_result,
        )


def plan_environments(pack: StoredPack, options: BuildOptions, architecture: str) -> list[EnvPlan]:
    contents = pack.contents
    plans = []
    requirements = pack_requirements(contents) if not options.skip_python else None
    if requirements is not None:  # requirements.txt and the files it includes (-r)
        env_hash = python_env_hash(
            requirements.requirements, python_version=options.python_version, architecture=architecture
        )
        plans.append(EnvPlan("python", env_hash, options.python_version))
    if contents.package_json is not None and not options.skip_nodejs:
        lock_name = contents.node_lockfile
        lock = check_node_sources(contents.package_json, contents.file(lock_name) if lock_name else None, lock_name)
        plans.append(
            EnvPlan(
                "nodejs",
                nodejs_env_hash(
                    contents.package_json, lock, nodejs_version=options.nodejs_version, architecture=architecture
                ),
                options.nodejs_version,
            )
        )
    return plans


# --- npm sources -------------------------------------------------------------------------------

_FORBIDDEN_SPEC_PREFIXES = (
    "file:",
    "link:",
    "git",
    "http:",
    "https:",
    "github:",
    "gitlab:",
    "bitbucket:",
    "workspace:",
)


def check_node_sources(package_json: bytes, lockfile: bytes | None, lock_name: str | None) -> bytes | None:
    """Refuse what would let a pack point npm elsewhere than the registry (local paths, Git, URLs),
    check the lockfile, and return its canonical form for the environment hash: what ``npm ci
    --omit=dev`` installs (the non-dev entries), without the root package's own name and version,
    so two packs locking the same dependencies share one environment."""
    data = json.loads(package_json)
    for section in ("dependencies", "optionalDependencies"):
        for name, spec in (data.get(section) or {}).items():
            text = str(spec).strip()
            if text.startswith(_FORBIDDEN_SPEC_PREFIXES) or ("/" in text and not text.startswith("npm:")):
                raise RequirementsError(
                    f"package.json {section}.{name} = {text!r}: only registry packages (version ranges, tags or "
                    "npm: aliases) are allowed, not local paths, Git repositories or URLs",
                    error_code="REQUIREMENTS_FORBIDDEN",
                    details={"field": f"{section}.{name}", "spec": text},
                )
    if lockfile is None:
        return None
    try:
        lock = json.loads(lockfile)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequirementsError(f"{lock_name} is not valid JSON: {exc}", error_code="NPM_LOCK_INVALID") from exc
    if not isinstance(lock, dict) or lock.get("lockfileVersion") not in (1, 2, 3):
        raise RequirementsError(
            f"{lock_name} is not an npm lockfile (lockfileVersion 1, 2 or 3 expected)", error_code="NPM_LOCK_INVALID"
        )
    entries = _lock_entries(lock, lock_name or "package-lock.json")
    for path, entry in entries.items():
        resolved = str(entry.get("resolved") or "")
        if entry.get("link") or (resolved and not resolved.startswith("https://")):
            raise RequirementsError(
                f"{lock_name}: {path} resolves to {resolved or 'a local link'!r}; only https registry "
                "tarballs are allowed",
                error_code="REQUIREMENTS_FORBIDDEN",
                details={"entry": path, "resolved": resolved},
            )
    installed = {p: e for p, e in entries.items() if not e.get("dev")}
    return json.dumps({"lockfileVersion": lock["lockfileVersion"], "packages": installed}, sort_keys=True).encode()


def _lock_entries(lock: dict[str, Any], lock_name: str) -> dict[str, dict[str, Any]]:
    if isinstance(lock.get("packages"), dict):
        entries = {p: e for p, e in lock["packages"].items() if p}
    else:  # lockfileVersion 1: a tree of "dependencies"
        entries = {}
        pending = [("", lock.get("dependencies") or {})]
        while pending:
            prefix, tree = pending.pop()
            for name, entry in tree.items():
                if not isinstance(entry, dict):
                    raise RequirementsError(f"{lock_name}: {prefix}{name} is malformed", error_code="NPM_LOCK_INVALID")
                path = f"{prefix}node_modules/{name}"
                entries[path] = {k: v for k, v in entry.items() if k not in ("dependencies", "requires")}
                pending.append((f"{path}/", entry.get("dependencies") or {}))
    if not all(isinstance(e, dict) for e in entries.values()):
        raise RequirementsError(f"{lock_name}: malformed package entries", error_code="NPM_LOCK_INVALID")
    return entries


# --- tests -------------------------------------------------------------------------------------


def plan_tests(pack: StoredPack, options: BuildOptions, envs: list[EnvPlan], architecture: str) -> TestPlan | None:
    """The pack's tests: None when it declares none."""
    testing = pack.contents.manifest.testing
    if testing is None:
        return None
    runners = {
        name: {
            "type": runner.type,
            "entry_point": runner.entry_point,
            "timeout": runner.timeout,
            "result_format": runner.result_format,
        }
        for name, runner in testing.runners.items()
    }
    config = {
        "enabled": testing.enabled,
        "runners": runners,
        "min_pass_rate": testing.min_pass_rate,
        "on_failure": testing.on_failure,
    }
    key_document = {
        "archive": pack.checksum,
        "environments": {p.kind: p.env_hash for p in envs},
        "python": options.python_version,
        "nodejs": options.nodejs_version,
        "arch": architecture,
        "recipe": recipe_digest(),
    }
    digest = hashlib.sha256(json.dumps(key_document, sort_keys=True).encode()).hexdigest()
    run = testing.enabled and bool(runners) and not options.skip_tests
    return TestPlan(config=config, run=run, key=f"{TEST_REPORT_PREFIX}{digest}.json")


def skipped_result(tests: TestPlan) -> dict[str, Any]:
    return summarise([], policy=tests.policy, duration_ms=0, report="", interpreter="", status="skipped")


def stored_test_result(store: ObjectStore, tests: TestPlan) -> dict[str, Any] | None:
    """The result of an identical earlier run, if its report is stored and well formed."""
    location = S3Location(store.bucket, tests.key)
    if store.head(location) is None:
        return None
    try:
        report = store.get_json(location)
    except ValueError:
        return None
    return valid_test_result(report.get("test_result")) if isinstance(report, dict) else None


# --- lookup and builds -------------------------------------------------------------------------


def find_cached(store: ObjectStore, plan: EnvPlan) -> EnvironmentArtifact | None:
    """The stored environment for ``plan``, if both its artifact and a valid manifest exist."""
    if store.head(S3Location(store.bucket, plan.manifest_key)) is None:
        return None
    if store.head(S3Location(store.bucket, plan.artifact_key)) is None:
        return None
    try:
        manifest = store.get_json(S3Location(store.bucket, plan.manifest_key))
    except ValueError:
        return None
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


def prepare(pack: StoredPack, options: BuildOptions, store: ObjectStore, architecture: str) -> PackPlan:
    """What ``pack`` has, what of it is stored, and what a build must still do."""
    envs = plan_environments(pack, options, architecture)
    tests = plan_tests(pack, options, envs, architecture)
    plan = PackPlan(pack=pack, envs=envs, cached={}, tests=tests)
    if tests is not None and not tests.run:
        plan.test_result = skipped_result(tests)
    if options.force_rebuild:
        return plan
    for env in envs:
        hit = find_cached(store, env)
        if hit is not None:
            plan.cached[env.kind] = hit
    if tests is not None and tests.run and not plan.missing:
        plan.test_result = stored_test_result(store, tests)
    return plan


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
    hashes = {p.kind: p.env_hash for p in plan.envs}
    missing = {p.kind for p in plan.missing}
    run_tests = plan.tests is not None and plan.tests.run
    environment = {
        "BUCKET": store.bucket,
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
        "BUILD_NODEJS": "1" if "nodejs" in missing else "0",
        "NODEJS_ENV_HASH": hashes.get("nodejs", ""),
        "NODEJS_VERSION": options.nodejs_version,
        "RUN_TESTS": "1" if run_tests else "0",
        "TEST_CONFIG": json.dumps(plan.tests.config, separators=(",", ":")) if run_tests and plan.tests else "",
        "TEST_REPORT_KEY": plan.tests.key if run_tests and plan.tests else "",
        "BUILD_TIMEOUT_SECONDS": str(options.timeout),
    }
    too_long = sorted(name for name, value in environment.items() if len(value) > MAX_VARIABLE_CHARS)
    if too_long:
        raise BuildError(
            f"the build of {contents.ref} cannot be started: {', '.join(too_long)} exceed CodeBuild's "
            f"{MAX_VARIABLE_CHARS}-character limit for a variable (shorten pack.yaml's testing section)",
            error_code="BUILD_INPUT_TOO_LARGE",
        )
    # CodeBuild returns the build an idempotency token already started (for 5 minutes): a retried
    # invocation starts nothing new, while a forced rebuild must not be answered by an earlier build.
    token_key = "-".join([contents.ref, *(hashes[k][:12] for k in sorted(missing)), "t" if run_tests else ""])
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


def handle_build_task(
    task: BuildTask, *, store: ObjectStore, starter: BuildStarter, tokens: TaskTokens, architecture: str
) -> dict[str, Any]:
    """One Map item of the state machine. When nothing is missing (environments stored, tests
    skipped or their report stored) the token is answered now; else a build is started that will
    answer it. Terminal errors propagate: the state machine's Catch records them."""
    with bugs_as_internal_errors("build"):
        pack = load_pack(task.pack_path, store)
        plan = prepare(pack, task.options, store, architecture)
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
        return {"status": what, "pack_ref": pack.contents.ref, "build_id": build_id}


def build_pack_envs(
    request: BuildEnvsRequest,
    *,
    store: ObjectStore,
    starter: BuildStarter,
    architecture: str,
    logs: LogReader | None = None,
    poll_seconds: float = 2.0,
) -> BuildEnvsResponse:
    """The stage called directly (not as Map items): look up, build what is missing, wait for the
    builds to finish within ``request.timeout`` and report per pack (a failed build with the last
    lines of its log)."""
    started = time.monotonic()
    built: list[BuiltEnvironment] = []
    failures = PackFailures("build", propagate_transient=False)
    failed = failures.failed
    pending: dict[str, PackPlan] = {}
    cache_hits = 0
    for path in dict.fromkeys(request.pack_paths):
        with failures.guard(path):
            pack = load_pack(path, store)
            plan = prepare(pack, request, store, architecture)
            cache_hits += len(plan.cached)
            if not plan.needs_build:
                built.append(plan.built(plan.cached, plan.test_result))
                continue
            pending[start_build(plan, request, starter=starter, store=store, architecture=architecture)] = plan
    deadline = started + codebuild_timeout_minutes(request.timeout) * 60
    while pending:
        for build_id in list(pending):
            build = starter.status(build_id)
            status = build.get("buildStatus", "IN_PROGRESS")
            if status == "IN_PROGRESS":
                continue
            plan = pending.pop(build_id)
            with failures.guard(plan.pack.uri, plan.pack.contents.ref):
                built.append(_collect(plan, build_id, build, store, logs))
        if pending and time.monotonic() > deadline:
            for build_id, plan in pending.items():
                failed.append(
                    PackFailure(
                        source=plan.pack.uri,
                        pack_ref=plan.pack.contents.ref,
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
    plan: PackPlan, build_id: str, build: dict[str, Any], store: ObjectStore, logs: LogReader | None
) -> BuiltEnvironment:
    ref = plan.pack.contents.ref
    status = str(build.get("buildStatus"))
    if status != "SUCCEEDED":
        failed_phase = next(
            (p for p in build.get("phases") or [] if p.get("phaseStatus") not in (None, "SUCCEEDED")), {}
        )
        contexts = [str(c.get("message") or "") for c in failed_phase.get("contexts") or [] if c.get("message")]
        log_config = build.get("logs") or {}
        excerpt = fetch_excerpt(logs, str(log_config.get("groupName") or ""), str(log_config.get("streamName") or ""))
        phase = str(failed_phase.get("phaseType") or "")
        raise BuildError(
            failure_message(
                pack_ref=ref, build_id=build_id, status=status, phase=phase, contexts=contexts, excerpt=excerpt
            ),
            details={"build_id": build_id, "status": status, "phase": phase, "log_excerpt": excerpt},
        )
    environments = dict(plan.cached)
    for env in plan.missing:
        try:
            manifest = store.get_json(S3Location(store.bucket, env.manifest_key))
        except AttuneError as exc:
            raise TransientError(f"build {build_id} of {ref} succeeded but left no {env.kind} manifest") from exc
        artifact = artifact_from_manifest(store.bucket, env, manifest, cached=False)
        if artifact is None:
            raise BuildError(f"the {env.kind} manifest of {ref} does not match its hash")
        environments[env.kind] = artifact
    test_result = plan.test_result
    if plan.tests is not None and plan.tests.run and test_result is None:
        test_result = stored_test_result(store, plan.tests)
        if test_result is None:
            raise TransientError(f"build {build_id} of {ref} succeeded but stored no valid test report")
    return plan.built(environments, test_result)
