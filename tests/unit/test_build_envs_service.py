"""Build stage: what is stored costs no build; what is missing (environments, test runs) starts one."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from fakes import FakeObjectStore

from attune_packs.errors import BuildError, RequirementsError
from attune_packs.models import BuildEnvsRequest, BuildOptions, BuildTask
from attune_packs.services.stages import build_envs
from attune_packs.services.stages.build_envs import (
    build_pack_envs,
    codebuild_timeout_minutes,
    handle_build_task,
    plan_environments,
    plan_tests,
)
from attune_packs.services.stored_packs import StoredPack, load_pack
from testkit.pack_archives import pack_files, stored_archive_key, tar_gz

TESTING = (
    "testing:\n  runners:\n    unit: {type: pytest, entry_point: tests}\n  min_pass_rate: 0.8\n  on_failure: warn\n"
)
LOCK = {
    "name": "pack-a",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "packages": {
        "": {"name": "pack-a", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}},
        "node_modules/is-number": {"version": "7.0.0", "integrity": "sha512-x"},
    },
}


class FakeStarter:
    def __init__(self, outcome: dict[str, Any] | None = None) -> None:
        self.started: list[dict[str, Any]] = []
        self.outcome = outcome or {"buildStatus": "SUCCEEDED"}

    def start(self, **kwargs: Any) -> str:
        self.started.append(kwargs)
        return f"build:{len(self.started)}"

    def status(self, build_id: str) -> dict[str, Any]:
        return dict(self.outcome)


class FakeTokens:
    def __init__(self) -> None:
        self.succeeded: list[tuple[str, dict[str, Any]]] = []
        self.failed: list[tuple[str, str, str]] = []

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self.succeeded.append((token, output))

    def fail(self, token: str, error: str, cause: str) -> bool:
        self.failed.append((token, error, cause))
        return True


class FakeLogs:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.asked: list[tuple[str, str]] = []

    def tail(self, group: str, stream: str, *, lines: int = 40) -> list[str]:
        self.asked.append((group, stream))
        return self.lines[-lines:]


def add_pack(store: FakeObjectStore, ref: str = "a", **kwargs: Any) -> str:
    body = tar_gz(pack_files(ref, **kwargs), root=f"{ref}/")
    return store.add(stored_archive_key(body), body)


def store_env(
    store: FakeObjectStore, plan: build_envs.EnvPlan, distributions: list[dict[str, str]], artifact: bytes = b"tarball"
) -> None:
    """What a build leaves under envs/<hash>/: the artifact, and its manifest with the artifact's sha256."""
    store.add(plan.artifact_key, artifact)
    manifest = {"kind": plan.kind, "env_hash": plan.env_hash, "python_version": "3.12", "size_bytes": 10}
    digest = hashlib.sha256(artifact).hexdigest()
    store.add(
        plan.manifest_key, json.dumps({**manifest, "distributions": distributions, "artifact_sha256": digest}).encode()
    )


def a_test_result(**changes: Any) -> dict[str, Any]:
    suite = {"name": "unit", "type": "pytest", "status": "passed", "total": 2, "passed": 2, "failed": 0}
    result = {
        "status": "passed",
        "total_tests": 2,
        "ran": 2,
        "passed": 2,
        "failed": 0,
        "skipped": 0,
        "pass_rate": 1.0,
        "failed_tests": [],
        "duration_ms": 12,
        "suites": [{**suite, "skipped": 0, "failed_tests": [], "failures": []}],
        "policy": {"min_pass_rate": 0.8, "on_failure": "warn"},
        "report": "s3://packs/reports/builds/tests/x.json",
        "interpreter": "CPython 3.12.1 (/usr/bin/python3.12)",
    }
    return {**result, **changes}


def task(path: str, **options: Any) -> BuildTask:
    return BuildTask(task_token="tok", pack_path=path, options=BuildOptions(**options))


def run_task(store: FakeObjectStore, path: str, **options: Any) -> tuple[dict[str, Any], FakeStarter, FakeTokens]:
    starter, tokens = FakeStarter(), FakeTokens()
    result = handle_build_task(task(path, **options), store=store, starter=starter, tokens=tokens, architecture="arm64")
    return result, starter, tokens


def test_a_miss_starts_a_build_carrying_the_token_and_the_plan() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n")
    result, starter, tokens = run_task(store, path, timeout=900)
    assert result["status"] == "building"
    [build] = starter.started
    env = build["environment"]
    assert env["TASK_TOKEN"] == "tok" and env["BUILD_PYTHON"] == "1" and env["BUILD_NODEJS"] == "0"
    assert env["PACK_ROOT"] == "a/" and env["PYTHON_PLATFORM"] == "aarch64-manylinux_2_28"
    assert env["RUN_TESTS"] == "0" and env["TEST_CONFIG"] == "" and env["BUILD_TIMEOUT_SECONDS"] == "900"
    assert len(env["PYTHON_ENV_HASH"]) == 64 and env["NODEJS_ENV_HASH"] == ""
    assert build["timeout_minutes"] == 17 and build["buildspec"] == build_envs.buildspec_text()
    assert all(len(value) <= 4096 for value in env.values())
    assert tokens.succeeded == []


def test_a_hit_answers_the_token_without_any_build() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n")
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
    result, starter, tokens = run_task(store, path)
    assert result["status"] == "cached" and starter.started == []
    [(token, output)] = tokens.succeeded
    assert token == "tok" and output["environments"]["python"]["cached"] is True
    assert output["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]
    assert output["test_result"] is None, "a pack that declares no tests has no test result"


def test_a_manifest_for_another_hash_is_not_a_hit_and_force_rebuild_ignores_the_cache() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six\n")
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store.add(plan.artifact_key, b"tarball")
    store.add(plan.manifest_key, json.dumps({"kind": "python", "env_hash": "other", "distributions": []}).encode())
    assert len(run_task(store, path)[1].started) == 1

    store_env(store, plan, [])
    assert run_task(store, path)[0]["status"] == "cached"
    _, starter, _ = run_task(store, path, force_rebuild=True)
    assert starter.started[0]["environment"]["BUILD_PYTHON"] == "1"


def test_a_repeated_request_reuses_its_build_but_a_forced_rebuild_never_does() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six\n")

    def token(**options: Any) -> str:
        starter = FakeStarter()
        build_pack_envs(
            BuildEnvsRequest(pack_paths=[path], **options), store=store, starter=starter, architecture="arm64"
        )
        return str(starter.started[0]["idempotency_token"])

    assert token() == token(), "a retried invocation is answered by the build it already started"
    assert len({token(force_rebuild=True), token(force_rebuild=True), token()}) == 3


def test_two_packs_with_equal_requirements_share_one_environment_hash() -> None:
    store = FakeObjectStore()
    a = load_pack(add_pack(store, "a", requirements="six==1.17.0\n"), store)
    b = load_pack(add_pack(store, "b", requirements="# x\nsix==1.17.0\n"), store)
    assert plan_environments(a, BuildOptions(), "arm64") == plan_environments(b, BuildOptions(), "arm64")
    assert plan_environments(a, BuildOptions(skip_python=True), "arm64") == []


def test_the_hash_follows_the_runtime_version_and_the_architecture() -> None:
    store = FakeObjectStore()
    pack = load_pack(add_pack(store, requirements="six==1.17.0\n", extra=node_files()), store)
    base = {p.kind: p.env_hash for p in plan_environments(pack, BuildOptions(), "arm64")}
    assert set(base) == {"python", "nodejs"}
    py313 = {p.kind: p.env_hash for p in plan_environments(pack, BuildOptions(python_version="3.13"), "arm64")}
    node22 = {p.kind: p.env_hash for p in plan_environments(pack, BuildOptions(nodejs_version="22"), "arm64")}
    x86 = {p.kind: p.env_hash for p in plan_environments(pack, BuildOptions(), "x86_64")}
    assert py313["python"] != base["python"] and py313["nodejs"] == base["nodejs"]
    assert node22["nodejs"] != base["nodejs"] and node22["python"] == base["python"]
    assert x86["python"] != base["python"] and x86["nodejs"] != base["nodejs"]
    assert [p.kind for p in plan_environments(pack, BuildOptions(skip_nodejs=True), "arm64")] == ["python"]


# --- npm sources ----------------------------------------------------------------------------------


def node_files(lock: dict[str, Any] | None = LOCK, name: str = "pack-a", deps: dict[str, str] | None = None) -> dict:
    files = {
        "package.json": json.dumps({"name": name, "version": "1.0.0", "dependencies": deps or {"is-number": "7.0.0"}})
    }
    if lock is not None:
        files["package-lock.json"] = json.dumps(lock)
    return files


def node_plan(files: dict[str, str], ref: str = "a") -> build_envs.EnvPlan:
    store = FakeObjectStore()
    [plan] = plan_environments(load_pack(add_pack(store, ref, extra=files), store), BuildOptions(), "arm64")
    return plan


def test_packs_locking_the_same_dependencies_share_a_node_environment_whatever_their_names() -> None:
    other_root = {**LOCK["packages"][""], "name": "pack-b", "version": "2.0.0"}
    other = {**LOCK, "name": "pack-b", "version": "2.0.0", "packages": {**LOCK["packages"], "": other_root}}
    with_dev = {**LOCK, "packages": {**LOCK["packages"], "node_modules/jest": {"version": "29.0.0", "dev": True}}}
    assert node_plan(node_files()).env_hash == node_plan(node_files(other, name="pack-b"), "b").env_hash
    assert node_plan(node_files()).env_hash == node_plan(node_files(with_dev)).env_hash, "dev entries are not installed"
    bumped = {**LOCK, "packages": {**LOCK["packages"], "node_modules/is-number": {"version": "7.0.1"}}}
    assert node_plan(node_files()).env_hash != node_plan(node_files(bumped)).env_hash
    assert node_plan(node_files(lock=None)).env_hash != node_plan(node_files()).env_hash


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"package.json": '{"dependencies": {"x": "1.0.0"}}', "package-lock.json": "{not json"}, "NPM_LOCK_INVALID"),
        (
            {"package.json": '{"dependencies": {"x": "1.0.0"}}', "package-lock.json": '{"lockfileVersion": 9}'},
            "NPM_LOCK_INVALID",
        ),
        (node_files(deps={"x": "git+https://example.com/x.git"}), "REQUIREMENTS_FORBIDDEN"),
        (node_files(deps={"x": "file:../x"}), "REQUIREMENTS_FORBIDDEN"),
        (node_files(deps={"x": "someone/x"}), "REQUIREMENTS_FORBIDDEN"),
        (
            node_files({**LOCK, "packages": {"node_modules/x": {"version": "1", "resolved": "http://evil/x.tgz"}}}),
            "NPM_LOCK_INVALID",
        ),
        (
            node_files({**LOCK, "packages": {"node_modules/x": {"link": True, "resolved": "../x"}}}),
            "REQUIREMENTS_FORBIDDEN",
        ),
    ],
)
def test_npm_sources_outside_the_registry_or_broken_lockfiles_are_refused_before_any_build(
    files: dict[str, str], code: str
) -> None:
    store = FakeObjectStore()
    path = add_pack(store, extra=files)
    with pytest.raises(RequirementsError) as caught:
        run_task(store, path)
    assert caught.value.error_code == code


def test_an_npm_alias_and_https_registry_tarballs_are_fine() -> None:
    lock = {
        **LOCK,
        "packages": {"node_modules/y": {"version": "1.0.0", "resolved": "https://registry.npmjs.org/y.tgz"}},
    }
    assert node_plan(node_files(lock, deps={"y": "npm:is-number@7.0.0"})).kind == "nodejs"


# --- pack tests -----------------------------------------------------------------------------------


def pack_with_tests(store: FakeObjectStore, ref: str = "a", requirements: str | None = "six==1.17.0\n") -> str:
    return add_pack(store, ref, requirements=requirements, dependencies=TESTING, extra={"tests/test_a.py": "x = 1\n"})


def test_stored_environments_with_tests_and_no_stored_report_start_a_test_only_build() -> None:
    store = FakeObjectStore()
    path = pack_with_tests(store)
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
    result, starter, tokens = run_task(store, path)
    assert result["status"] == "testing" and tokens.succeeded == []
    env = starter.started[0]["environment"]
    assert env["BUILD_PYTHON"] == "0" and env["PYTHON_ENV_HASH"] == plan.env_hash, "fetched for the tests, not rebuilt"
    assert env["RUN_TESTS"] == "1" and env["TEST_REPORT_KEY"].startswith("reports/builds/tests/")
    assert json.loads(env["TEST_CONFIG"]) == {
        "enabled": True,
        "runners": {"unit": {"type": "pytest", "entry_point": "tests", "timeout": 300, "result_format": "simple"}},
        "min_pass_rate": 0.8,
        "on_failure": "warn",
    }


def test_a_stored_report_of_the_identical_run_is_reused_with_no_build() -> None:
    store = FakeObjectStore()
    path = pack_with_tests(store)
    pack = load_pack(path, store)
    [plan] = plan_environments(pack, BuildOptions(), "arm64")
    store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
    tests = plan_tests(pack, BuildOptions(), [plan], "arm64")
    assert tests is not None
    store.add(tests.key, json.dumps({"schema": "attune.pack-tests/1", "test_result": a_test_result()}).encode())

    result, starter, tokens = run_task(store, path)
    assert result["status"] == "cached" and starter.started == []
    assert tokens.succeeded[0][1]["test_result"] == a_test_result()

    # force_rebuild rebuilds and runs the tests again
    _, starter, _ = run_task(store, path, force_rebuild=True)
    env = starter.started[0]["environment"]
    assert env["BUILD_PYTHON"] == "1" and env["RUN_TESTS"] == "1"


def test_a_malformed_stored_report_is_not_reused() -> None:
    store = FakeObjectStore()
    path = pack_with_tests(store, requirements=None)
    tests = plan_tests(load_pack(path, store), BuildOptions(), [], "arm64")
    assert tests is not None
    store.add(tests.key, json.dumps({"test_result": {**a_test_result(), "extra": 1}}).encode())
    result, starter, _ = run_task(store, path)
    assert result["status"] == "testing", "a pack with tests and no environment still gets its tests run"
    assert starter.started[0]["environment"]["BUILD_PYTHON"] == "0"


def test_the_test_key_changes_with_whatever_could_change_the_outcome() -> None:
    store = FakeObjectStore()
    pack = load_pack(pack_with_tests(store), store)
    other = load_pack(pack_with_tests(store, "b"), store)
    files = pack_files("a", requirements="six==1.17.0\n", dependencies=TESTING, extra={"tests/test_a.py": "x = 2\n"})
    changed_body = tar_gz(files, root="a/")
    changed = load_pack(store.add(stored_archive_key(changed_body), changed_body), store)
    envs = plan_environments(pack, BuildOptions(), "arm64")

    def key(p: StoredPack = pack, options: BuildOptions | None = None, e: Any = envs, arch: str = "arm64") -> str:
        plan = plan_tests(p, options or BuildOptions(), e, arch)
        assert plan is not None
        return plan.key

    assert key() == key()
    variants = {
        key(other),
        key(changed),
        key(e=[]),
        key(options=BuildOptions(python_version="3.13")),
        key(arch="x86_64"),
    }
    assert len(variants | {key()}) == 6, "pack content, environments, runtime and architecture all change the key"
    assert key(options=BuildOptions(skip_tests=True, force_rebuild=True, timeout=900)) == key()


def test_skip_tests_reports_skipped_with_the_policy_and_starts_nothing() -> None:
    store = FakeObjectStore()
    path = pack_with_tests(store, requirements=None)
    result, starter, tokens = run_task(store, path, skip_tests=True)
    assert result["status"] == "cached" and starter.started == []
    test_result = tokens.succeeded[0][1]["test_result"]
    assert test_result["status"] == "skipped" and test_result["total_tests"] == 0 and test_result["suites"] == []
    assert test_result["policy"] == {"min_pass_rate": 0.8, "on_failure": "warn"}
    assert set(test_result) == set(a_test_result())


def test_a_testing_section_too_large_for_codebuild_is_a_clear_failure() -> None:
    store = FakeObjectStore()
    runners = "".join(f"    r{n:03d}: {{type: script, entry_point: tests/t{n:03d}.sh}}\n" for n in range(120))
    path = add_pack(store, requirements="six\n", dependencies=f"testing:\n  runners:\n{runners}")
    with pytest.raises(BuildError) as caught:
        run_task(store, path)
    assert caught.value.error_code == "BUILD_INPUT_TOO_LARGE" and "TEST_CONFIG" in caught.value.message


@pytest.mark.parametrize(("seconds", "minutes"), [(60, 5), (600, 12), (601, 13), (28_800, 480)])
def test_codebuild_gets_the_request_timeout_plus_time_to_report(seconds: int, minutes: int) -> None:
    assert codebuild_timeout_minutes(seconds) == minutes


# --- the stage called directly --------------------------------------------------------------------


def test_the_direct_stage_collects_a_successful_build_with_its_test_report() -> None:
    store = FakeObjectStore()
    path = pack_with_tests(store)
    pack = load_pack(path, store)
    [plan] = plan_environments(pack, BuildOptions(), "arm64")
    tests = plan_tests(pack, BuildOptions(), [plan], "arm64")
    assert tests is not None
    starter = FakeStarter()
    original_start = starter.start

    def start_and_store(**kwargs: Any) -> str:  # what the build leaves behind
        store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
        store.add(tests.key, json.dumps({"test_result": a_test_result(status="partial")}).encode())
        return original_start(**kwargs)

    starter.start = start_and_store  # type: ignore[method-assign]
    response = build_pack_envs(BuildEnvsRequest(pack_paths=[path]), store=store, starter=starter, architecture="arm64")
    [built] = response.built_environments
    assert built.environments["python"].cached is False and built.test_result == a_test_result(status="partial")
    assert response.summary.python_envs_built == 1 and response.summary.cache_hits == 0


def test_the_direct_stage_reports_a_failed_build_with_the_lines_of_its_log_and_goes_on() -> None:
    store = FakeObjectStore()
    broken = add_pack(store, "broken", requirements="nope==1\n")
    fine = add_pack(store, "fine")
    failed_build = {
        "buildStatus": "FAILED",
        "phases": [
            {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
            {"phaseType": "BUILD", "phaseStatus": "FAILED"},
        ],
        "logs": {"groupName": "/aws/codebuild/envs", "streamName": "uuid-1"},
    }
    logs = FakeLogs(["[Container] Running command uv pip install", "error: No solution found", "  nope was not found"])
    response = build_pack_envs(
        BuildEnvsRequest(pack_paths=[broken, fine]),
        store=store,
        starter=FakeStarter(failed_build),
        architecture="arm64",
        logs=logs,
        poll_seconds=0,
    )
    assert [b.pack_ref for b in response.built_environments] == ["fine"]
    [failure] = response.failed_environments
    assert failure.pack_ref == "broken" and failure.error_code == "BUILD_FAILED"
    assert "phase BUILD" in failure.error and "nope was not found" in failure.error
    assert failure.details["log_excerpt"] == "error: No solution found\n  nope was not found"
    assert logs.asked == [("/aws/codebuild/envs", "uuid-1")]


# --- skip_validation, artifact digests, lockfile addresses, events ------------------------------------

GHOST_ACTION = {"actions/ghost.yaml": "name: ghost\nrunner_type: python-script\nentry_point: ghost.py\n"}


def test_skip_validation_reads_components_leniently_in_the_build_stage_as_in_the_others() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n", extra=GHOST_ACTION)  # an entry point that is not there
    request = BuildEnvsRequest(pack_paths=[path])
    strict = build_pack_envs(request, store=store, starter=FakeStarter(), architecture="arm64")
    assert [f.error_code for f in strict.failed_environments] != [], "validated strictly by default"
    assert "BUILD_FAILED" not in [f.error_code for f in strict.failed_environments]

    result, starter, _ = run_task(store, path, skip_validation=True)
    assert result["status"] == "building" and len(starter.started) == 1
    [plan] = plan_environments(load_pack(path, store, strict=False), BuildOptions(), "arm64")
    store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
    request = BuildEnvsRequest(pack_paths=[path], skip_validation=True)
    lenient = build_pack_envs(request, store=store, starter=FakeStarter(), architecture="arm64")
    assert lenient.failed_environments == [] and lenient.summary.success_count == 1


def test_a_replaced_artifact_is_a_miss_with_a_warning_and_is_never_served() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n")
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
    hit, _, tokens = run_task(store, path)
    digest = hashlib.sha256(b"tarball").hexdigest()
    assert hit["status"] == "cached" and tokens.succeeded[0][1]["environments"]["python"]["artifact_sha256"] == digest

    store.add(plan.artifact_key, b"another build's install scripts wrote this")
    result, starter, tokens = run_task(store, path)
    assert result["status"] == "building" and tokens.succeeded == [], "not served: built again"
    assert starter.started[0]["environment"]["BUILD_PYTHON"] == "1"
    assert "does not match the sha256 recorded when it was built" in result["warnings"][0]


def test_a_manifest_that_records_no_artifact_digest_is_not_a_hit() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n")
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store.add(plan.artifact_key, b"tarball")
    manifest = {"kind": "python", "env_hash": plan.env_hash, "distributions": []}
    store.add(plan.manifest_key, json.dumps(manifest).encode())
    assert run_task(store, path)[0]["status"] == "building"


def test_the_direct_stage_reports_the_digest_of_what_it_built_and_the_replaced_artifact() -> None:
    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n")
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store_env(store, plan, [], artifact=b"old")
    store.add(plan.artifact_key, b"replaced")
    starter = FakeStarter()
    original_start = starter.start

    def start_and_store(**kwargs: Any) -> str:
        store_env(store, plan, [{"name": "six", "version": "1.17.0"}], artifact=b"rebuilt")
        return original_start(**kwargs)

    starter.start = start_and_store  # type: ignore[method-assign]
    response = build_pack_envs(BuildEnvsRequest(pack_paths=[path]), store=store, starter=starter, architecture="arm64")
    [built] = response.built_environments
    python = built.environments["python"]
    assert python.cached is False and python.artifact_sha256 == hashlib.sha256(b"rebuilt").hexdigest()
    assert any("was replaced after its build" in w for w in python.warnings)


def locked(resolved: str) -> dict[str, str]:
    packages = {**LOCK["packages"], "node_modules/is-number": {"version": "7.0.0", "resolved": resolved}}
    return node_files({**LOCK, "packages": packages})


@pytest.mark.parametrize(
    ("resolved", "reason"),
    [
        ("https://169.254.170.2/v2/credentials/x.tgz", "a link-local"),
        ("https://127.0.0.1/x.tgz", "loopback"),
        ("https://[::ffff:169.254.170.2]/x.tgz", "link-local"),
        ("https://10.0.0.8/x.tgz", ""),
        ("https://evil.example/is-number/-/is-number-7.0.0.tgz", "not a configured npm registry host"),
        ("https://user:pw@registry.npmjs.org/is-number/-/is-number-7.0.0.tgz", "credentials"),
        ("https://registry.npmjs.org:8443/is-number/-/is-number-7.0.0.tgz", "port 8443"),
        ("http://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz", "only https"),
    ],
)
def test_lockfile_resolved_urls_follow_the_download_address_rules(resolved: str, reason: str) -> None:
    store = FakeObjectStore()
    path = add_pack(store, "n", extra=locked(resolved))
    with pytest.raises(RequirementsError) as caught:
        run_task(store, path)
    assert caught.value.error_code == "NPM_LOCK_INVALID"
    assert caught.value.message.startswith("NPM_LOCK_INVALID: "), "the state machine's Catch keeps only the message"
    assert reason in caught.value.details["reason"] and caught.value.details["resolved"] == resolved


def test_the_npm_registry_and_hosts_the_operator_adds_are_accepted() -> None:
    from attune_packs.services.stages.npm_sources import NpmSourcePolicy

    store = FakeObjectStore()
    official = add_pack(store, "o", extra=locked("https://registry.npmjs.org/x/-/x-7.0.0.tgz"))
    assert run_task(store, official)[0]["status"] == "building"
    mirror = add_pack(store, "m", extra=locked("https://npm.corp.example/x/-/x-7.0.0.tgz"))
    with pytest.raises(RequirementsError):
        run_task(store, mirror)
    widened = NpmSourcePolicy.configured(("registry.npmjs.org", "npm.corp.example"))
    started = handle_build_task(
        task(mirror), store=store, starter=FakeStarter(), tokens=FakeTokens(), architecture="arm64", npm=widened
    )
    assert started["status"] == "building"


def test_the_build_installs_exactly_the_checked_requirements_from_every_source() -> None:
    store = FakeObjectStore()
    meta = 'meta:\n  python_dependencies: ["requests>=2.28"]\n'
    body = tar_gz(pack_files("m", dependencies=meta, requirements=f"Six==1.17.0 --hash=sha256:{'a' * 64}\n"), root="m/")
    path = store.add(stored_archive_key(body), body)
    _, starter, _ = run_task(store, path)
    variables = starter.started[0]["environment"]
    assert variables["PYTHON_REQUIREMENTS"].splitlines() == [f"six==1.17.0 --hash=sha256:{'a' * 64}", "requests>=2.28"]


def test_one_entry_answers_each_kind_of_event() -> None:
    from attune_packs.models import BuildPackEnvsEvent
    from attune_packs.services.stages.build_envs import BuildServices, handle_build_event

    store = FakeObjectStore()
    path = add_pack(store, requirements="six==1.17.0\n")
    [plan] = plan_environments(load_pack(path, store), BuildOptions(), "arm64")
    store_env(store, plan, [{"name": "six", "version": "1.17.0"}])
    tokens = FakeTokens()
    services = BuildServices(store=store, starter=FakeStarter(), tokens=tokens)

    def answer(event: dict[str, Any]) -> dict[str, Any]:
        return handle_build_event(BuildPackEnvsEvent.model_validate(event), services)

    assert answer({"task_token": "t", "pack_path": path, "options": {}}) == {"status": "cached", "pack_ref": "a"}
    assert tokens.succeeded[0][0] == "t"
    direct = answer({"pack_paths": [path]})
    assert direct["summary"]["cache_hits"] == 1 and direct["built_environments"][0]["pack_ref"] == "a"
    queued = answer({"async_build": {"pack_paths": [path]}, "installation_id": "build-1"})
    assert queued == {"installation_id": "build-1", "status": "SUCCEEDED"}
    stored = json.loads(store.objects["reports/async-builds/build-1.json"][0])
    assert stored["status"] == "SUCCEEDED" and stored["result"]["summary"]["cache_hits"] == 1


@pytest.mark.parametrize(
    ("event_file", "kind"),
    [
        ("build_pack_envs_map_item.json", "BuildTask"),
        ("build_pack_envs_direct.json", "BuildEnvsRequest"),
        ("build_pack_envs_async.json", "AsyncBuildRequest"),
    ],
)
def test_the_handlers_three_events_are_told_apart_by_their_model(event_file: str, kind: str) -> None:
    from pathlib import Path

    from attune_packs.models import BuildPackEnvsEvent

    event = json.loads((Path(__file__).parents[1] / "events" / event_file).read_text())
    assert type(BuildPackEnvsEvent.model_validate(event).root).__name__ == kind


def test_an_event_of_no_kind_is_refused_with_the_fields_that_are_wrong() -> None:
    from pydantic import ValidationError

    from attune_packs.models import BuildPackEnvsEvent

    with pytest.raises(ValidationError) as caught:
        BuildPackEnvsEvent.model_validate({"async_build": {"pack_paths": ["x"]}, "installation_id": "../../etc"})
    assert [e["loc"][-1] for e in caught.value.errors()] == ["installation_id"]
