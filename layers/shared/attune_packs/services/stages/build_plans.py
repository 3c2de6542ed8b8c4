"""What a pack's environment build must do: its plan.

A pack's plan (:func:`prepare`) says which environments it has (Python from ``requirements.txt``
and pack.yaml's ``meta.python_dependencies``, Node.js from ``package.json`` and its lockfile),
whether each is already stored under ``envs/<env_hash>/`` and whether its tests must run.

The cache. An environment is a hit only for its exact hash AND an artifact whose bytes match the
``artifact_sha256`` its manifest recorded at build time: an artifact replaced after its build (or a
manifest without a digest) is a miss, reported as a warning, and the environment is built again;
it is never served.

Pack tests and the cache. The test report is stored at ``reports/builds/tests/<key>.json``, the key a
hash of everything that determines the run: the archive's checksum (pack code, tests and the
``testing`` settings), the environment hashes, the requested runtimes, the architecture and the
build recipe (buildspec and its tools). A pack whose environments are cached reuses the stored
report of an identical run; without one, a *test-only* build fetches the stored environments and
runs the tests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from attune_packs.adapters.s3 import ObjectStore
from attune_packs.buildspec.build_tools import summarise
from attune_packs.buildspec.bundle import recipe_digest
from attune_packs.domain.runtime import nodejs_env_hash, pack_requirements, python_env_hash
from attune_packs.models import BuildOptions, BuiltEnvironment, EnvironmentArtifact
from attune_packs.s3_uri import S3Location
from attune_packs.services.build_reports import valid_test_result
from attune_packs.services.stages.npm_sources import NpmSourcePolicy, check_node_sources
from attune_packs.services.stored_packs import StoredPack

ENV_PREFIX = "envs/"
TEST_REPORT_PREFIX = "reports/builds/tests/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvPlan:
    kind: str  # "python" | "nodejs"
    env_hash: str
    version: str
    requirements: tuple[str, ...] = ()  # python: the checked requirement lines the build installs
    sources: tuple[str, ...] = ()  # python: where they were declared

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
    warnings: list[str] = field(default_factory=list)  # e.g. a stored artifact that was replaced
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


def plan_environments(
    pack: StoredPack, options: BuildOptions, architecture: str, npm: NpmSourcePolicy | None = None
) -> list[EnvPlan]:
    contents = pack.contents
    plans = []
    requirements = pack_requirements(contents) if not options.skip_python else None
    if requirements is not None:  # requirements.txt (with its -r includes) and meta.python_dependencies
        env_hash = python_env_hash(
            requirements.requirements, python_version=options.python_version, architecture=architecture
        )
        lines = tuple(" ".join([r.line, *(f"--hash={h}" for h in r.hashes)]) for r in requirements.requirements)
        plans.append(EnvPlan("python", env_hash, options.python_version, lines, requirements.sources))
    if contents.package_json is not None and not options.skip_nodejs:
        lock_name = contents.node_lockfile
        lock = check_node_sources(
            contents.package_json, contents.file(lock_name) if lock_name else None, lock_name, npm
        )
        env_hash = nodejs_env_hash(
            contents.package_json, lock, nodejs_version=options.nodejs_version, architecture=architecture
        )
        plans.append(EnvPlan("nodejs", env_hash, options.nodejs_version))
    return plans


# --- tests -------------------------------------------------------------------------------------


def testing_config(pack: StoredPack) -> dict[str, Any] | None:
    """pack.yaml's ``testing`` as the build's tools read it (Attune's ``discovery``, ``result_path``
    and ``result_format`` beside the runners included), or None when the pack declares none."""
    testing = pack.contents.manifest.testing
    if testing is None:
        return None
    runners = {}
    for name, runner in testing.runners.items():
        extra = {k: v for k, v in (runner.model_extra or {}).items() if k in ("result_path",) and isinstance(v, str)}
        runners[name] = {
            "type": runner.type,
            "entry_point": runner.entry_point,
            "timeout": runner.timeout,
            "result_format": runner.result_format,
            **extra,
        }
    config: dict[str, Any] = {
        "enabled": testing.enabled,
        "runners": runners,
        "min_pass_rate": testing.min_pass_rate,
        "on_failure": testing.on_failure,
    }
    extra = testing.model_extra or {}
    discovery = extra.get("discovery")
    if isinstance(discovery, dict) and isinstance(discovery.get("path"), str):
        config["discovery"] = {"path": discovery["path"]}
    for key in ("result_path", "result_format"):
        if isinstance(extra.get(key), str):
            config[key] = extra[key]
    return config


def plan_tests(pack: StoredPack, options: BuildOptions, envs: list[EnvPlan], architecture: str) -> TestPlan | None:
    """The pack's tests: None when it declares none."""
    config = testing_config(pack)
    if config is None:
        return None
    key_document = {
        "archive": pack.checksum,
        "environments": {p.kind: p.env_hash for p in envs},
        "python": options.python_version,
        "nodejs": options.nodejs_version,
        "arch": architecture,
        "recipe": recipe_digest(),
    }
    digest = hashlib.sha256(json.dumps(key_document, sort_keys=True).encode()).hexdigest()
    run = config["enabled"] and bool(config["runners"]) and not options.skip_tests
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


# --- the environment cache ------------------------------------------------------------------------


def stored_digest(store: ObjectStore, location: S3Location) -> str:
    """sha256 of the stored object's bytes, read as a stream."""
    digest = hashlib.sha256()
    with store.open(location) as body:
        for chunk in iter(lambda: body.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_cached(store: ObjectStore, plan: EnvPlan, warnings: list[str] | None = None) -> EnvironmentArtifact | None:
    """The stored environment for ``plan``: its manifest is valid and the artifact's bytes match
    the digest the manifest recorded. A replaced artifact is a miss, with a warning."""
    manifest_location = S3Location(store.bucket, plan.manifest_key)
    artifact_location = S3Location(store.bucket, plan.artifact_key)
    if store.head(manifest_location) is None or store.head(artifact_location) is None:
        return None
    try:
        manifest = store.get_json(manifest_location)
    except ValueError:
        return None
    found = artifact_from_manifest(store.bucket, plan, manifest, cached=True)
    if found is None or found.artifact_sha256 is None:
        return None
    actual = stored_digest(store, artifact_location)
    if actual != found.artifact_sha256:
        warning = (
            f"the stored {plan.kind} environment {artifact_location.uri} does not match the sha256 recorded when it "
            f"was built ({found.artifact_sha256[:12]}…, found {actual[:12]}…): it was replaced after its build, is "
            "not used, and the environment is built again"
        )
        _log.warning(warning)
        if warnings is not None:
            warnings.append(warning)
        return None
    return found


def artifact_from_manifest(bucket: str, plan: EnvPlan, manifest: Any, *, cached: bool) -> EnvironmentArtifact | None:
    if not isinstance(manifest, dict) or manifest.get("env_hash") != plan.env_hash or manifest.get("kind") != plan.kind:
        return None
    distributions = manifest.get("distributions") or []
    recorded = manifest.get("artifact_sha256")
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
        artifact_sha256=recorded if isinstance(recorded, str) and _SHA256.fullmatch(recorded) else None,
    )


def prepare(
    pack: StoredPack,
    options: BuildOptions,
    store: ObjectStore,
    architecture: str,
    npm: NpmSourcePolicy | None = None,
) -> PackPlan:
    """What ``pack`` has, what of it is stored, and what a build must still do."""
    envs = plan_environments(pack, options, architecture, npm)
    tests = plan_tests(pack, options, envs, architecture)
    plan = PackPlan(pack=pack, envs=envs, cached={}, tests=tests)
    if tests is not None and not tests.run:
        plan.test_result = skipped_result(tests)
    if options.force_rebuild:
        return plan
    for env in envs:
        hit = find_cached(store, env, plan.warnings)
        if hit is not None:
            plan.cached[env.kind] = hit
    if tests is not None and tests.run and not plan.missing:
        plan.test_result = stored_test_result(store, tests)
    return plan
