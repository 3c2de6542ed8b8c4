"""Environment builds for real on the local stack: the real buildspec, uv / pip / npm, pack tests.

Each test builds at most two small environments (six, is-number) from PyPI / the npm registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness

from attune_cli.local_stack import LocalStack
from attune_packs.buildspec import build_tools
from testkit.pack_archives import tar_gz

pytestmark = pytest.mark.slow

SUMMARY_KEYS = {
    "status",
    "total_tests",
    "ran",
    "passed",
    "failed_tests",
    "failed",
    "skipped",
    "pass_rate",
    "duration_ms",
    "suites",
    "policy",
    "report",
    "interpreter",
}
SUITE_KEYS = {"name", "type", "status", "total", "passed", "failed", "skipped", "failed_tests", "failures"}


def write_archive(folder: Path, ref: str, files: dict[str, str]) -> str:
    path = folder / f"{ref}.tar.gz"
    path.write_bytes(tar_gz({"pack.yaml": f'ref: {ref}\nversion: "1.0.0"\n', **files}, root=f"{ref}/"))
    return str(path)


def fetch(stack: LocalStack, uri: str) -> bytes:
    key = uri.split("/", 3)[3]
    return bytes(stack.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read())


def extract(stack: LocalStack, uri: str, target: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(fetch(stack, uri))) as tar:
        tar.extractall(target, filter="data")
    return target


def stage(stack: LocalStack, function: str, event: dict[str, Any]) -> Any:
    return stack.invoke(f"attune-local-{function}", event)


def test_a_pack_declaring_another_node_version_than_the_target_is_refused_before_any_build(
    harness: Harness,
) -> None:
    result = harness.install("number_tools", nodejs_version="18")
    assert result.status == "SUCCEEDED", result.cause
    [conflict] = result.output["dependencies"]["conflicts"]
    assert conflict["pack_ref"] == "number_tools" and "18" in conflict["message"]
    assert result.output["builds"] == [] and result.output["register"]["registered_packs"] == []
    assert harness.stack.runner is None or harness.stack.runner.started == 0


def test_a_node_pack_gets_real_node_modules_and_its_tests_run_in_them(harness: Harness, tmp_path: Path) -> None:
    # Given the example pack with package.json and package-lock.json (is-number 7.0.0)
    result = harness.install("number_tools")

    # Then npm ci built node_modules from the lockfile, stored by content hash
    assert result.status == "SUCCEEDED", result.cause
    [build] = result.output["builds"]
    env = build["environments"]["nodejs"]
    assert env["cached"] is False and env["requirements_installed"] == ["is-number==7.0.0"] and env["warnings"] == []
    assert env["artifact"].endswith(f"/envs/{env['env_hash']}/nodejs.tar.gz")

    # And require() works from the extracted artifact
    target = extract(harness.stack, env["artifact"], tmp_path / "env")
    probe = subprocess.run(
        ["node", "-e", "const n = require('is-number'); console.log(n('42'), n('x'))"],
        env={"NODE_PATH": str(target / "node_modules"), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.stdout.strip() == "true false", probe.stderr

    # And the pack's own tests ran with node against that environment, with a stored report
    tests = build["test_result"]
    assert set(tests) == SUMMARY_KEYS and (tests["status"], tests["passed"], tests["failed"]) == ("passed", 4, 0)
    assert tests["interpreter"].startswith("node v20") and tests["policy"] == {
        "min_pass_rate": 1.0,
        "on_failure": "block",
    }
    report = json.loads(fetch(harness.stack, tests["report"]))
    assert report["test_result"] == tests and report["pack_ref"] == "number_tools"
    assert [p["pack_ref"] for p in result.output["register"]["registered_packs"]] == ["number_tools"]


TESTED_PACK = {
    "pack.yaml": (
        'ref: tested\nversion: "1.0.0"\n'
        "testing:\n"
        "  runners:\n"
        "    unit: {type: pytest, entry_point: tests}\n"
        "    legacy: {type: unittest, entry_point: legacy}\n"
        "    smoke: {type: script, entry_point: smoke.py}\n"
        "  min_pass_rate: 0.5\n"
        "  on_failure: warn\n"
    ),
    "requirements.txt": "six==1.17.0\n",
    "tests/test_env.py": (
        "import sys\nimport six\n\n"
        "def test_six_comes_from_the_environment():\n    assert six.__version__ == '1.17.0'\n\n"
        "def test_runs_with_the_target_python():\n    assert sys.version_info[:2] == (3, 12)\n\n"
        "def test_broken():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n"
    ),
    "legacy/test_old.py": (
        "import unittest\nimport six\n\n"
        "class Old(unittest.TestCase):\n"
        "    def test_ok(self):\n        self.assertTrue(six.PY3)\n\n"
        "    @unittest.skip('not yet')\n    def test_later(self):\n        pass\n"
    ),
    "smoke.py": "import six\nprint('smoke ok', six.__version__)\n",
}


def test_pack_tests_run_in_the_built_environment_and_an_identical_install_reuses_their_report(
    state_dir: Path, tmp_path: Path
) -> None:
    archive = write_archive(tmp_path, "tested", TESTED_PACK)
    target_python = build_tools.find_python("3.12")
    with LocalStack(state_dir) as stack:
        harness = Harness(stack)
        assert stack.runner is not None

        # When a pack with passing, failing and skipped tests is installed
        first = harness.install(archive)
        assert first.status == "SUCCEEDED", first.cause
        [build] = first.output["builds"]
        tests = build["test_result"]

        # Then the report has the agreed shape and counts, from the target interpreter
        assert set(tests) == SUMMARY_KEYS and all(set(s) == SUITE_KEYS for s in tests["suites"])
        suites = {s["name"]: (s["type"], s["status"], s["passed"], s["failed"], s["skipped"]) for s in tests["suites"]}
        python_ok = 1 if target_python.matches else 0
        assert suites == {
            "legacy": ("unittest", "passed", 1, 0, 1),
            "smoke": ("script", "passed", 1, 0, 0),
            "unit": ("pytest", "partial", 1 + python_ok, 2 - python_ok, 0),
        }
        assert tests["status"] == "partial" and tests["total_tests"] == 6
        assert tests["pass_rate"] == round((3 + python_ok) / 5, 4)
        assert tests["interpreter"] == target_python.describe()
        failures = {f["name"]: f["message"] for s in tests["suites"] for f in s["failures"]}
        assert failures["tests.test_env.test_broken"].startswith("AssertionError: arithmetic is broken")
        assert json.loads(fetch(stack, tests["report"]))["test_result"] == tests
        assert stack.runner.started == 1

        # When it is installed again: the environment and the report of that identical run are reused
        second = harness.install(archive)
        assert second.status == "SUCCEEDED", second.cause
        [again] = second.output["builds"]
        assert again["environments"]["python"]["cached"] is True and again["test_result"] == tests
        assert stack.runner.started == 1, "a cache hit with a stored test report starts no build"

        # When the report is gone, the stored environment is fetched and only the tests run
        stack.client("s3").delete_object(Bucket=stack.bucket, Key=tests["report"].split("/", 3)[3])
        third = harness.install(archive)
        assert third.status == "SUCCEEDED", third.cause
        [retested] = third.output["builds"]
        assert stack.runner.started == 2
        test_build = list(stack.runner.records.values())[-1].environment
        assert (test_build["BUILD_PYTHON"], test_build["RUN_TESTS"]) == ("0", "1")
        assert retested["environments"]["python"]["cached"] is True
        assert {s["name"]: s["passed"] for s in retested["test_result"]["suites"]} == {
            s["name"]: s["passed"] for s in tests["suites"]
        }


def test_a_requirement_that_cannot_be_installed_fails_its_pack_with_the_log_lines_while_the_other_builds(
    harness: Harness, tmp_path: Path
) -> None:
    broken = write_archive(tmp_path, "broken_env", {"requirements.txt": "this-package-does-not-exist-attune==9.9.9\n"})
    fine = write_archive(tmp_path, "fine_env", {"requirements.txt": "six==1.17.0\n"})
    result = harness.install(broken, fine)
    assert result.status == "SUCCEEDED", result.cause

    builds = {b["pack_ref"]: b for b in result.output["builds"]}
    failed = builds["broken_env"]
    assert failed["failed"] is True and failed["error_type"] == "BuildError"
    assert failed["error"].startswith("BUILD_FAILED: the environment build of broken_env failed in phase BUILD")
    # the task's cause is cut to 600 characters (uv wraps its lines by terminal width); the whole one is stored
    assert " ".join(failed["error"].split()).endswith("we can conclude that your requirements are unsatisfiable.")
    whole = " ".join(json.loads(fetch(harness.stack, failed["report"]))["error"].split())
    assert "this-package-does-not-exist-attune was not found in the package registry" in whole
    assert builds["fine_env"]["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]

    register = result.output["register"]
    assert [p["pack_ref"] for p in register["registered_packs"]] == ["fine_env"]
    [refused] = register["failed_packs"]
    assert refused["error_code"] == "BUILD_FAILED" and "requirements are unsatisfiable" in " ".join(
        refused["error"].split()
    )
    assert harness.keys("envs/tmp/") == [], "no staged artifacts are left behind"


def test_a_build_that_fails_before_post_build_is_explained_from_its_cloudwatch_log(
    harness: Harness, tmp_path: Path
) -> None:
    # A Node.js pack that declares no Node version, built for Node.js 18, which is not on this
    # machine: the install phase fails, so the buildspec never answers
    package_json = '{"name": "any_node", "version": "1.0.0", "dependencies": {}}'
    pack = write_archive(tmp_path, "any_node", {"package.json": package_json})
    result = harness.install(pack, nodejs_version="18")
    assert result.status == "SUCCEEDED", result.cause
    [failed] = result.output["builds"]
    assert failed["failed"] is True
    assert "ended FAILED in phase INSTALL" in failed["error"]
    assert "Node.js 18 is not available on this build image (found: v20." in failed["error"]
    assert harness.stack.invocations.get("ReportBuildResultFunction", 0) >= 1, "the build-state rule answered"

    # The lines came from CloudWatch Logs, where the runner wrote them as CodeBuild does
    runner = harness.stack.runner
    assert runner is not None and runner.log_sink is not None
    [record] = runner.records.values()
    logs = harness.stack.client("logs").get_log_events(
        logGroupName=runner.log_sink.group, logStreamName=record.metadata["id"].rsplit(":", 1)[-1]
    )
    assert any("Node.js 18 is not available" in e["message"] for e in logs["events"])


def test_two_builds_of_one_environment_at_once_leave_one_complete_environment(harness: Harness, tmp_path: Path) -> None:
    twins = [write_archive(tmp_path, ref, {"requirements.txt": "six==1.17.0\n"}) for ref in ("twin_a", "twin_b")]
    stored = stage(harness.stack, "DownloadPacksFunction", {"packs": twins})["pack_paths"]

    # When both packs' environments (the same hash) are built by two concurrent builds
    response = stage(harness.stack, "BuildPackEnvsFunction", {"pack_paths": stored})
    runner = harness.stack.runner
    assert runner is not None and runner.started == 2
    first, second = (record.metadata for record in runner.records.values())
    assert first["phases"][0]["startTime"] < second["endTime"] and second["phases"][0]["startTime"] < first["endTime"]

    # Then both succeed with the same environment, stored once, complete and importable
    assert response["failed_environments"] == [] and response["summary"]["python_envs_built"] == 2
    [env_hash] = {b["environments"]["python"]["env_hash"] for b in response["built_environments"]}
    assert harness.keys("envs/") == [f"envs/{env_hash}/python.manifest.json", f"envs/{env_hash}/python.tar.gz"]
    manifest = json.loads(fetch(harness.stack, f"s3://{harness.stack.bucket}/envs/{env_hash}/python.manifest.json"))
    assert manifest["env_hash"] == env_hash and manifest["distributions"] == [{"name": "six", "version": "1.17.0"}]
    target = extract(harness.stack, f"s3://{harness.stack.bucket}/envs/{env_hash}/python.tar.gz", tmp_path / "env")
    probe = subprocess.run(
        [sys.executable, "-c", "import six; print(six.__version__)"],
        env={"PYTHONPATH": str(target / "site-packages")},
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "1.17.0", probe.stderr

    # And asking again finds both in the cache: no build
    again = stage(harness.stack, "BuildPackEnvsFunction", {"pack_paths": stored})
    assert again["summary"]["cache_hits"] == 2 and runner.started == 2


def probe_wheel(folder: Path) -> None:
    """attune_probe 1.0 as a wheel, so pip can install it with no index at all."""
    files = {
        "attune_probe/__init__.py": "VALUE = 42\n",
        "attune_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: attune-probe\nVersion: 1.0\n",
        "attune_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(content)}")
    files["attune_probe-1.0.dist-info/RECORD"] = "\n".join([*record, "attune_probe-1.0.dist-info/RECORD,,"]) + "\n"
    with zipfile.ZipFile(folder / "attune_probe-1.0-py3-none-any.whl", "w") as wheel:
        for name, content in files.items():
            wheel.writestr(name, content)


def test_where_uv_cannot_be_installed_pip_builds_the_environment_from_wheels(harness: Harness, tmp_path: Path) -> None:
    # A build machine whose python3 has pip but no uv, and no package index (only a folder of wheels)
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    has_pip = subprocess.run([str(base_python), "-m", "pip", "--version"], capture_output=True).returncode == 0
    has_uv = subprocess.run([str(base_python), "-c", "import uv"], capture_output=True).returncode == 0
    if not has_pip or has_uv:
        pytest.skip(f"{base_python} must have pip and no uv to stand in for such a machine")
    bin_dir, wheels = tmp_path / "bin", tmp_path / "wheels"
    bin_dir.mkdir()
    wheels.mkdir()
    probe_wheel(wheels)
    (bin_dir / "python3").symlink_to(base_python)
    (bin_dir / "aws").symlink_to(Path(sys.executable).parent / "aws")
    runner = harness.stack.runner
    assert runner is not None
    runner.environment.update(PATH=f"{bin_dir}:/usr/bin:/bin", PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))

    pack = write_archive(tmp_path, "offline", {"requirements.txt": "attune-probe==1.0\n"})
    stored = stage(harness.stack, "DownloadPacksFunction", {"packs": [pack]})["pack_paths"]
    response = stage(harness.stack, "BuildPackEnvsFunction", {"pack_paths": stored})

    assert response["failed_environments"] == [], response["failed_environments"]
    [built] = response["built_environments"]
    env = built["environments"]["python"]
    assert env["requirements_installed"] == ["attune-probe==1.0"]
    assert env["warnings"] == ["built with pip: uv is not available on the build machine"]
    [record] = runner.records.values()
    assert "uv cannot be installed here" in record.log_path.read_text()
    target = extract(harness.stack, env["artifact"], tmp_path / "env")
    assert (target / "site-packages" / "attune_probe" / "__init__.py").read_text() == "VALUE = 42\n"


def test_builds_answer_the_state_machine_with_references_that_registration_reads_back(
    harness: Harness, tmp_path: Path
) -> None:
    # Given six packs with the same requirement (one environment, built once or found in the cache)
    packs = [write_archive(tmp_path, f"ref_{n}", {"requirements.txt": "six==1.17.0\n"}) for n in range(6)]

    # When they are installed
    result = harness.install(*packs)
    assert result.status == "SUCCEEDED", result.cause

    # Then the Map's items carried references, not results: a few hundred bytes per pack
    [succeeded] = [e for e in result.events if e["type"] == "ExecutionSucceeded"]
    raw = json.loads(succeeded["executionSucceededEventDetails"]["output"])
    assert {tuple(sorted(b)) for b in raw["builds"]} == {("pack_ref", "pack_version", "report", "sha256")}
    largest = max(
        len(d.get(f, "")) for e in result.events for d in e.values() if isinstance(d, dict) for f in ("input", "output")
    )
    assert largest < 2_000 + 6 * 800, largest  # the request and fixed fields, then per pack

    # And registration read each whole result back: every pack is registered with its environment
    registered = result.output["register"]["registered_packs"]
    assert sorted(p["pack_ref"] for p in registered) == [f"ref_{n}" for n in range(6)]
    for ref in (f"ref_{n}" for n in range(6)):
        record = harness.table.get_item(f"PACK#{ref}", "CURRENT")
        assert record is not None and record["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]
    # and readers get the whole build results too
    assert all(b["environments"]["python"]["package_count"] == 1 for b in result.output["builds"])


def _list_runtime_deps_supported() -> bool:
    from attune_packs.domain.manifest import parse_manifest
    from attune_packs.errors import ManifestError

    try:
        parse_manifest(b'ref: x\nversion: "1.0.0"\nruntime_deps: [python3]\n')
    except ManifestError:
        return False
    return True


@pytest.mark.parametrize(
    "runtime_deps",
    [
        pytest.param(
            "runtime_deps: [python3]\n",
            marks=pytest.mark.skipif(
                not _list_runtime_deps_supported(), reason="runtime_deps as a list arrives with the manifest work"
            ),
        ),
        'runtime_deps: {python: ">=3.10"}\n',
    ],
)
def test_meta_python_dependencies_build_a_python_environment_whose_digest_is_recorded_and_checked(
    harness: Harness, tmp_path: Path, runtime_deps: str
) -> None:
    # Given a pack declaring its Python requirement in pack.yaml's meta, not in requirements.txt
    manifest = f'ref: meta_deps\nversion: "1.0.0"\n{runtime_deps}meta:\n  python_dependencies: ["six==1.17.0"]\n'
    archive = write_archive(tmp_path, "meta_deps", {"pack.yaml": manifest})

    # When it is installed, a Python environment is built from them
    first = harness.install(archive)
    assert first.status == "SUCCEEDED", first.cause
    [build] = first.output["builds"]
    python = build["environments"]["python"]
    assert python["requirements_installed"] == ["six==1.17.0"] and python["cached"] is False
    artifact = fetch(harness.stack, python["artifact"])
    assert python["artifact_sha256"] == hashlib.sha256(artifact).hexdigest(), "the digest of the stored bytes"
    assert [p["pack_ref"] for p in first.output["register"]["registered_packs"]] == ["meta_deps"]
    assert harness.stack.runner is not None and harness.stack.runner.started == 1

    # And the same requirement in requirements.txt is the same environment: a cache hit, no build
    same = write_archive(tmp_path, "file_deps", {"requirements.txt": "six==1.17.0\n"})
    second = harness.install(same)
    assert second.status == "SUCCEEDED", second.cause
    [hit] = second.output["builds"]
    assert hit["environments"]["python"]["cached"] is True
    assert hit["environments"]["python"]["env_hash"] == python["env_hash"]
    assert harness.stack.runner.started == 1

    # When the stored artifact is replaced behind the pipeline's back, it is not served: built again
    key = python["artifact"].split("/", 3)[3]
    harness.stack.client("s3").put_object(Bucket=harness.stack.bucket, Key=key, Body=b"not the environment")
    third = harness.install(same)
    assert third.status == "SUCCEEDED", third.cause
    [rebuilt] = third.output["builds"]
    assert rebuilt["environments"]["python"]["cached"] is False and harness.stack.runner.started == 2
    assert fetch(harness.stack, python["artifact"]) != b"not the environment"
    assert (
        rebuilt["environments"]["python"]["artifact_sha256"]
        == hashlib.sha256(fetch(harness.stack, python["artifact"])).hexdigest()
    )


def test_a_lockfile_resolving_to_the_credentials_address_is_refused_before_any_build(
    harness: Harness, tmp_path: Path
) -> None:
    lock = {
        "name": "creds",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "creds", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}},
            "node_modules/is-number": {"version": "7.0.0", "resolved": "https://169.254.170.2/v2/credentials/x.tgz"},
        },
    }
    files = {
        "package.json": json.dumps({"name": "creds", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}),
        "package-lock.json": json.dumps(lock),
    }
    result = harness.install(write_archive(tmp_path, "creds", files))
    assert result.status == "SUCCEEDED", result.cause
    [build] = result.output["builds"]
    assert build["failed"] is True and build["error_type"] == "RequirementsError"
    message = json.loads(build["error"])["errorMessage"]  # the Lambda error, as the Catch recorded it
    assert message.startswith("NPM_LOCK_INVALID: package-lock.json: node_modules/is-number resolves to")
    assert "a link-local address" in message
    assert harness.stack.runner is not None and harness.stack.runner.started == 0, "no build ran"
    assert result.output["register"]["registered_packs"] == []
    assert harness.keys("envs/") == []


def test_skip_validation_builds_a_pack_the_strict_reading_refuses(harness: Harness, tmp_path: Path) -> None:
    ghost = {
        "requirements.txt": "six==1.17.0\n",
        "actions/ghost.yaml": "name: ghost\nrunner_type: python-script\nentry_point: ghost.py\n",
    }
    archive = write_archive(tmp_path, "lenient", ghost)
    result = harness.install(archive, skip_validation=True)
    assert result.status == "SUCCEEDED", result.cause
    [build] = result.output["builds"]
    assert not build.get("failed"), build
    assert build["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]
