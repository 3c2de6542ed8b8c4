"""The build's own tools: pack test runs and their report, manifests, the answer and failure text.

Test runs use this interpreter as the "target" one, in subprocesses (no network needed)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from attune_packs.buildspec import build_tools as tools

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
POLICY = {"min_pass_rate": 0.5, "on_failure": "warn"}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def context(tmp_path: Path, pack: Path, site: Path | None = None, **env: str) -> tools.TestContext:
    python = tools.Interpreter(sys.executable, "CPython", ".".join(map(str, sys.version_info[:3])), "3.11")
    return tools.TestContext(
        pack_dir=str(pack),
        work=str(tmp_path / "work"),
        python=python,
        site_packages=str(site) if site else None,
        node_modules=None,
        base_env={"PATH": os.environ["PATH"], **env},
    )


def run(config_runners: dict, ctx: tools.TestContext) -> tuple[dict, list[dict]]:
    config = {"enabled": True, "runners": config_runners, **POLICY}
    return tools.run_tests(config, ctx, report_uri="s3://b/reports/builds/tests/k.json")


def test_passing_failing_and_skipped_tests_of_every_runner_type_give_the_exact_report_shape(tmp_path: Path) -> None:
    site = write(tmp_path / "site", {"helper_lib.py": "ANSWER = 42\n"})
    pack = write(
        tmp_path / "pack",
        {
            "tests/test_unit.py": (
                "import helper_lib, pytest\n"
                "def test_env():\n    assert helper_lib.ANSWER == 42\n"
                "def test_broken():\n    assert 1 == 2, 'one is not two'\n"
                "@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n"
            ),
            "legacy/test_old.py": (
                "import unittest, helper_lib\n"
                "class T(unittest.TestCase):\n"
                "    def test_ok(self):\n        self.assertEqual(helper_lib.ANSWER, 42)\n"
                "    def test_bad(self):\n        raise ValueError('boom')\n"
            ),
            "smoke.py": "import sys; sys.exit(3)\n",
        },
    )
    summary, details = run(
        {
            "unit": {"type": "pytest", "entry_point": "tests"},
            "legacy": {"type": "unittest", "entry_point": "legacy"},
            "smoke": {"type": "script", "entry_point": "smoke.py", "result_format": "simple"},
        },
        context(tmp_path, pack, site),
    )
    assert set(summary) == SUMMARY_KEYS and all(set(s) == SUITE_KEYS for s in summary["suites"])
    suites = {s["name"]: s for s in summary["suites"]}
    assert {n: (s["status"], s["passed"], s["failed"], s["skipped"]) for n, s in suites.items()} == {
        "legacy": ("partial", 1, 1, 0),
        "smoke": ("failed", 0, 1, 0),
        "unit": ("partial", 1, 1, 1),
    }
    assert (summary["status"], summary["total_tests"], summary["passed"], summary["failed"]) == ("partial", 6, 2, 3)
    assert summary["ran"] == 5 and summary["pass_rate"] == 0.4, "the pass rate counts the tests that ran: 2 of 5"
    assert summary["failed_tests"] == [
        "legacy: test_old.T.test_bad",
        "smoke",
        "unit: tests.test_unit.test_broken",
    ]
    assert summary["policy"] == POLICY
    assert summary["report"] == "s3://b/reports/builds/tests/k.json" and "CPython" in summary["interpreter"]
    assert suites["unit"]["failures"] == [
        {"name": "tests.test_unit.test_broken", "message": "AssertionError: one is not two\nassert 1 == 2"}
    ]
    assert suites["legacy"]["failures"][0]["message"] == "ValueError: boom"
    assert suites["smoke"]["failures"][0]["message"].startswith("exit status 3")
    assert {d["name"]: d["exit_code"] for d in details} == {"legacy": 0, "smoke": 3, "unit": 1}


JSON_CASES = (
    'print("noise")\nprint(json.dumps({"tests": [{"name": "a", "status": "ok"}, {"name": "b", "status": "fail"}]}))'
)
JSON_COUNTS = (
    'counts = {"passed": 3, "failed": 1, "skipped": 2, "failures": [{"name": "x", "message": "y"}]}\n'
    'json.dump(counts, open(os.environ["ATTUNE_TEST_RESULTS"], "w"))'
)
JUNIT = (
    "print(\"<testsuite><testcase name='a'/><testcase name='b'><failure message='bad'/></testcase>"
    "<testcase name='c'><skipped/></testcase></testsuite>\")"
)


@pytest.mark.parametrize(
    ("result_format", "script", "expected"),
    [("json", JSON_CASES, (1, 1, 0)), ("json", JSON_COUNTS, (3, 1, 2)), ("junit", JUNIT, (1, 1, 1))],
)
def test_script_runners_report_in_json_or_junit(
    tmp_path: Path, result_format: str, script: str, expected: tuple
) -> None:
    pack = write(tmp_path / "pack", {"check.py": f"import json, os\n{script}\n"})
    summary, _ = run(
        {"s": {"type": "script", "entry_point": "check.py", "result_format": result_format}}, context(tmp_path, pack)
    )
    suite = summary["suites"][0]
    assert (suite["passed"], suite["failed"], suite["skipped"]) == expected


def test_runners_that_cannot_run_are_errors_that_count_as_failures(tmp_path: Path) -> None:
    pack = write(tmp_path / "pack", {"slow.sh": "sleep 30\n", "garbage.py": "print('not json')\n"})
    summary, details = run(
        {
            "slow": {"type": "script", "entry_point": "slow.sh", "timeout": 1},
            "garbage": {"type": "script", "entry_point": "garbage.py", "result_format": "json"},
            "escape": {"type": "script", "entry_point": "../outside.sh"},
            "missing": {"type": "pytest", "entry_point": "no_such_dir"},
        },
        context(tmp_path, pack),
    )
    suites = {s["name"]: s for s in summary["suites"]}
    assert all(s["status"] == "error" and s["failed"] == 1 for s in suites.values())
    assert "timed out after 1s" in suites["slow"]["failures"][0]["message"]
    assert "no JSON object" in suites["garbage"]["failures"][0]["message"]
    assert "outside the pack" in suites["escape"]["failures"][0]["message"]
    assert "does not exist" in suites["missing"]["failures"][0]["message"]
    assert summary["status"] == "error" and summary["pass_rate"] == 0.0
    assert next(d for d in details if d["name"] == "slow")["timed_out"] is True


def test_attune_testing_sections_run_as_declared_with_discovery_result_path_and_format(tmp_path: Path) -> None:
    """The shape of Attune's packs/core: runners keyed by runtime, a unittest runner with no entry
    point found through ``discovery.path``, a script writing JUnit XML under ``result_path``."""
    writer = (
        "import os\nos.makedirs('checks/results', exist_ok=True)\n"
        "open('checks/results/shell.xml', 'w').write(\"<testsuite><testcase name='echo: basic'/>"
        "<testcase name='noop: exit code'><failure message='exit 3'/></testcase></testsuite>\")\n"
    )
    pack = write(
        tmp_path / "pack",
        {
            "checks/test_actions.py": (
                "import unittest\nclass Echo(unittest.TestCase):\n"
                "    def test_ok(self):\n        pass\n"
                "    @unittest.skip('later')\n    def test_later(self):\n        pass\n"
            ),
            "checks/run_tests.py": writer,
            # results shipped in the archive prove nothing: only what the run wrote is read
            "checks/results/stale.xml": "<testsuite><testcase name='forged'/></testsuite>",
        },
    )
    config = {
        "enabled": True,
        "discovery": {"method": "directory", "path": "checks"},
        "runners": {
            "python": {"type": "unittest"},
            "shell": {"type": "script", "entry_point": "checks/run_tests.py"},
        },
        "result_format": "junit-xml",
        "result_path": "checks/results/",
        **POLICY,
    }
    summary, _ = tools.run_tests(config, context(tmp_path, pack), report_uri="")
    suites = {s["name"]: s for s in summary["suites"]}
    assert (suites["python"]["passed"], suites["python"]["skipped"]) == (1, 1)
    assert (suites["shell"]["passed"], suites["shell"]["failed"]) == (1, 1), "the stale results file is not read"
    assert (summary["ran"], summary["passed"], summary["skipped"], summary["pass_rate"]) == (3, 2, 1, 0.6667)
    assert summary["failed_tests"] == ["shell: noop: exit code"]


def test_an_unknown_result_format_is_the_runners_error(tmp_path: Path) -> None:
    pack = write(tmp_path / "pack", {"t.sh": "exit 0\n"})
    summary, _ = run({"s": {"type": "script", "entry_point": "t.sh", "result_format": "tap"}}, context(tmp_path, pack))
    assert summary["status"] == "error"
    assert "unknown result_format 'tap'" in summary["suites"][0]["failures"][0]["message"]


def test_the_pass_rate_counts_only_the_tests_that_ran(tmp_path: Path) -> None:
    """28 ran, 9 passed, 11 skipped: 9 of 28, never 9 of 39."""
    cases = [tools.make_case(f"p{n}", "passed") for n in range(9)]
    cases += [tools.make_case(f"f{n}", "failed", "boom") for n in range(19)]
    cases += [tools.make_case(f"s{n}", "skipped") for n in range(11)]
    suite = tools.suite_result("unit", "pytest", cases)
    summary = tools.summarise([suite], policy=POLICY, duration_ms=1, report="", interpreter="")
    assert (summary["total_tests"], summary["ran"], summary["passed"]) == (39, 28, 9)
    assert summary["pass_rate"] == round(9 / 28, 4)
    assert summary["failed_tests"] == [f"unit: f{n}" for n in range(19)], "every failed test by name"
    assert len(suite["failures"]) == 19 and suite["failed_tests"] == [f"f{n}" for n in range(19)]


def test_an_artifact_sealed_at_build_time_verifies_until_it_is_replaced(tmp_path: Path) -> None:
    manifest, artifact = tmp_path / "python.manifest.json", tmp_path / "python.tar.gz"
    manifest.write_text(json.dumps({"kind": "python", "env_hash": "h"}))
    artifact.write_bytes(b"site-packages")
    sealed = tools.seal_manifest(str(manifest), str(artifact))
    assert json.loads(manifest.read_text())["artifact_sha256"] == sealed["artifact_sha256"]
    assert sealed["artifact_bytes"] == len(b"site-packages")
    assert tools.artifact_matches(str(manifest), str(artifact))
    artifact.write_bytes(b"something else")
    assert not tools.artifact_matches(str(manifest), str(artifact))
    assert tools.main(["verify", str(manifest), str(artifact)]) == 1


def test_tests_see_no_credentials_token_or_build_variables(tmp_path: Path) -> None:
    probe = (
        "import os, sys\n"
        "leaked = [k for k in os.environ if k.startswith(('AWS_', 'CODEBUILD_')) or k == 'TASK_TOKEN']\n"
        "sys.exit(1 if leaked else 0)\n"
    )
    pack = write(tmp_path / "pack", {"probe.py": probe})
    secrets = {"AWS_SECRET_ACCESS_KEY": "x", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/c", "TASK_TOKEN": "t"}
    summary, _ = run(
        {"p": {"type": "script", "entry_point": "probe.py"}}, context(tmp_path, pack, CODEBUILD_BUILD_ID="b", **secrets)
    )
    assert summary["status"] == "passed"


def test_no_runner_or_disabled_tests_are_skipped(tmp_path: Path) -> None:
    summary, _ = tools.run_tests(
        {"enabled": False, "runners": {"u": {"type": "pytest"}}}, context(tmp_path, tmp_path), report_uri=""
    )
    assert summary["status"] == "skipped" and summary["suites"] == [] and summary["pass_rate"] == 0.0


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ((2, 0, 0), "passed"),
        ((0, 2, 0), "failed"),
        ((1, 1, 0), "partial"),
        ((0, 0, 3), "skipped"),
        ((0, 0, 0), "skipped"),
    ],
)
def test_suite_status_follows_the_counts(counts: tuple[int, int, int], status: str) -> None:
    cases = [
        tools.make_case(f"t{n}", s)
        for s, c in zip(("passed", "failed", "skipped"), counts, strict=True)
        for n in range(c)
    ]
    assert tools.suite_result("s", "pytest", cases)["status"] == status


def test_junit_with_entities_is_refused_and_bad_json_counts_are_rejected() -> None:
    with pytest.raises(tools.ResultFormatError):
        tools.parse_junit('<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite><testcase name="&a;"/></testsuite>')
    with pytest.raises(tools.ResultFormatError):
        tools.parse_json_results('{"passed": -1}')
    with pytest.raises(tools.ResultFormatError):
        tools.parse_json_results('{"tests": [{"name": "a", "status": "maybe"}]}')


def fake_python(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho CPython {version}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_requested_python_is_found_in_a_pyenv_root_else_the_fallback_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pyenv"
    fake_python(root / "versions" / "3.77.1" / "bin" / "python3.77", "3.77.1")
    newest = fake_python(root / "versions" / "3.77.10" / "bin" / "python3.77", "3.77.10")
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("UV", "")
    found = tools.find_python("3.77")
    assert found.path == str(newest) and found.matches and found.describe() == f"CPython 3.77.10 ({newest})"

    fallback = tools.find_python("3.78", fallback=sys.executable)
    assert fallback.path == sys.executable and not fallback.matches
    assert "Python 3.78 was requested but not found" in fallback.describe()


def test_manifests_list_what_the_environments_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "python" / "site-packages"
    write(
        site,
        {"six-1.17.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n", "six.py": "x = 1\n"},
    )
    manifest = tools.python_manifest(
        str(tmp_path / "python"), env_hash="h", python_version="3.12", platform="p", started_ms=0, installer="pip"
    )
    assert manifest["distributions"] == [{"name": "six", "version": "1.17.0"}] and manifest["size_bytes"] > 0
    assert manifest["warnings"] == ["built with pip: uv is not available on the build machine"]

    hidden = {
        "packages": {"node_modules/a": {"version": "1.0.0"}, "node_modules/a/node_modules/b": {"version": "2.0.0"}}
    }
    write(tmp_path / "node_modules", {".package-lock.json": json.dumps(hidden)})
    assert tools.installed_node_packages(str(tmp_path / "node_modules")) == [
        {"name": "a", "version": "1.0.0"},
        {"name": "b", "version": "2.0.0"},
    ]


def test_the_answer_merges_built_and_stored_environments_and_the_test_result(tmp_path: Path) -> None:
    built = {
        "kind": "python",
        "env_hash": "p" * 64,
        "python_version": "3.12",
        "distributions": [{"name": "six", "version": "1"}],
        "size_bytes": 5,
    }
    stored = {"kind": "nodejs", "env_hash": "n" * 64, "nodejs_version": "20.1.0", "distributions": [], "size_bytes": 7}
    write(tmp_path, {"python.manifest.json": json.dumps(built), "nodejs.cached.manifest.json": json.dumps(stored)})
    write(tmp_path, {"test_result.json": json.dumps({"status": "passed"})})
    environ = {
        "BUCKET": "b",
        "PACK_REF": "x",
        "PACK_VERSION": "1.0.0",
        "ARCHIVE_URI": "s3://b/a",
        "BUILD_STARTED_MS": "0",
    }
    answer = tools.build_result(str(tmp_path), environ)
    assert answer["environments"]["python"]["cached"] is False and answer["environments"]["nodejs"]["cached"] is True
    assert answer["environments"]["python"]["artifact"] == f"s3://b/envs/{'p' * 64}/python.tar.gz"
    assert answer["test_result"] == {"status": "passed"}


def test_the_failure_cause_keeps_the_last_meaningful_lines() -> None:
    lines = [f"line {n}" for n in range(100)] + [
        "[Container] 2026/01/01 Running command uv pip install",
        "error: No solution found",
    ]
    cause = tools.failure_cause({"PACK_REF": "broken", "CODEBUILD_BUILD_ID": "p:1"}, lines)
    assert cause.startswith("BUILD_FAILED: the environment build of broken failed in phase BUILD (build p:1)")
    assert (
        cause.endswith("line 99\nerror: No solution found")
        and "line 60" not in cause
        and "Running command" not in cause
    )
    timed_out = tools.failure_cause({}, ["exceeded the build timeout of 60s while running: uv pip install"])
    assert "ran out of time" in timed_out


def test_the_buildspec_sent_fits_codebuilds_limit_and_carries_working_tools(tmp_path: Path) -> None:
    import subprocess

    import yaml

    from attune_packs.buildspec.bundle import MAX_BUILDSPEC_CHARS, buildspec_text

    text = buildspec_text()
    assert len(text) <= MAX_BUILDSPEC_CHARS - 800, "keep room below CodeBuild's 25,600 characters"
    spec = yaml.safe_load(text)
    assert list(spec["phases"]) == ["install", "pre_build", "build", "post_build"]
    [unpack] = [c for c in spec["phases"]["install"]["commands"] if "@@BUILD_TOOLS@@" not in c and "<<'TOOLS'" in c]
    script = tmp_path / "unpack.sh"
    script.write_text(unpack)
    shipped = tmp_path / "build_tools.pyz"
    unpacked = subprocess.run(
        ["bash", str(script)], env={"TOOLS": str(shipped), "PATH": os.environ["PATH"]}, capture_output=True, timeout=60
    )
    assert unpacked.returncode == 0, unpacked.stderr
    log = tmp_path / "build.log"
    log.write_text("Building Python 3.12 environment\nerror: No solution found\n")
    answer = subprocess.run(
        [sys.executable, str(shipped), "failure-cause", str(log)],
        env={"PACK_REF": "broken", "CODEBUILD_BUILD_ID": "p:1", "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("BUILD_FAILED: the environment build of broken failed in phase BUILD")
    assert answer.stdout.rstrip().endswith("error: No solution found")

    unit = "import unittest\nclass T(unittest.TestCase):\n  def test_a(self): pass\n"
    pack = write(tmp_path / "pack", {"tests/test_a.py": unit})
    config = json.dumps({"runners": {"python": {"type": "unittest"}}, "min_pass_rate": 1.0, "on_failure": "block"})
    summary = tmp_path / "summary.json"
    arguments = ["--pack-dir", str(pack), "--python-version", "3.11", "--work", str(tmp_path / "w")]
    arguments += ["--report", str(tmp_path / "report.json"), "--summary", str(summary), "--report-uri", "s3://b/k"]
    tested = subprocess.run(
        [sys.executable, str(shipped), "run-tests", *arguments],
        env={"TEST_CONFIG": config, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stderr
    assert json.loads(summary.read_text())["passed"] == 1, "the unittest worker runs out of the zip application"


def test_build_commands_stop_at_the_requests_timeout_and_say_so_in_the_build_log(tmp_path: Path) -> None:
    import re
    import subprocess
    import time

    import yaml

    from attune_packs.services.stages.build_envs import buildspec_text

    install = yaml.safe_load(buildspec_text())["phases"]["install"]["commands"]
    [command] = [c for c in install if c.startswith('cat > "$WORK/run"')]
    [helper] = re.findall(r"<<'SH'\n(.*?)\nSH\n", command, re.S)
    assert helper.startswith("#!/usr/bin/env bash\n")
    script = tmp_path / "run"
    script.write_text(helper + "\n")
    log = tmp_path / "build.log"
    env = {
        "PATH": os.environ["PATH"],
        "BUILD_LOG": str(log),
        "BUILD_TIMEOUT_SECONDS": "60",
        "DEADLINE": str(int(time.time()) + 1),
    }
    started = time.monotonic()
    slow = subprocess.run(["bash", str(script), "sleep", "20"], env=env, capture_output=True, text=True, timeout=60)
    assert slow.returncode == 124 and time.monotonic() - started < 10
    assert "exceeded the build timeout of 60s while running: sleep 20" in log.read_text()

    env["DEADLINE"] = str(int(time.time()) + 60)
    quick = subprocess.run(["bash", str(script), "sh", "-c", "echo out; echo err >&2; exit 3"], env=env, timeout=60)
    assert quick.returncode == 3 and log.read_text().endswith("out\nerr\n"), "exit status and output are kept"


def test_the_bundled_tools_keep_no_annotations_nor_the_imports_only_annotations_use() -> None:
    from attune_packs.buildspec.bundle import minified_python

    source = (
        "from __future__ import annotations\n"
        "import json\n"
        "from typing import TYPE_CHECKING\n\n"
        "if TYPE_CHECKING:\n"
        "    from typing import Any\n\n"
        "def dump(document: dict[str, Any]) -> str:\n"
        '    """Docstring."""\n'
        "    text: str = json.dumps(document)\n"
        "    return text\n"
    )
    minified = minified_python(source)
    assert "TYPE_CHECKING" not in minified and "typing" not in minified and "Any" not in minified
    namespace: dict[str, object] = {}
    exec(compile(minified, "<tools>", "exec"), namespace)  # noqa: S102 - our own source, as the buildspec runs it
    dump = namespace["dump"]
    assert callable(dump) and dump({"a": 1}) == '{"a": 1}', "the minified module still works"
