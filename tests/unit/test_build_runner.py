"""The local CodeBuild runner follows CodeBuild's phase semantics."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from attune_cli.build_runner import BuildRecord, LocalBuildRunner, state_change_event
from attune_cli.local_stack import matches


def run_buildspec(tmp_path: Path, phases: dict[str, list[str]], timeout_minutes: int = 1) -> tuple[BuildRecord, str]:
    finished = threading.Event()
    records: list[BuildRecord] = []

    def done(record: BuildRecord) -> None:
        records.append(record)
        finished.set()

    runner = LocalBuildRunner({"PATH": "/usr/bin:/bin"}, tmp_path / "logs", done)
    spec = yaml.safe_dump(
        {
            "version": 0.2,
            "env": {"shell": "bash", "variables": {"FROM_SPEC": "spec"}},
            "phases": {k: {"commands": v} for k, v in phases.items()},
        }
    )
    metadata: dict[str, Any] = {
        "id": "proj:1",
        "arn": "arn:build/proj:1",
        "projectName": "proj",
        "buildStatus": "IN_PROGRESS",
    }
    runner.submit(metadata, [{"name": "FROM_OVERRIDE", "value": "override"}], spec, timeout_minutes)
    assert finished.wait(60)
    return records[0], records[0].log_path.read_text()


def test_commands_share_one_shell_and_see_spec_and_override_variables(tmp_path: Path) -> None:
    record, log = run_buildspec(
        tmp_path,
        {
            "install": ["export SHARED=from-install"],
            "build": ['echo "shared=$SHARED spec=$FROM_SPEC override=$FROM_OVERRIDE id=$CODEBUILD_BUILD_ID"'],
        },
    )
    assert record.metadata["buildStatus"] == "SUCCEEDED"
    assert "shared=from-install spec=spec override=override id=proj:1" in log


def test_a_failing_build_command_still_runs_post_build_with_succeeding_zero(tmp_path: Path) -> None:
    record, log = run_buildspec(
        tmp_path,
        {
            "build": ["false", "echo never"],
            "post_build": ['echo "post succeeding=$CODEBUILD_BUILD_SUCCEEDING"'],
        },
    )
    assert record.metadata["buildStatus"] == "FAILED"
    assert "never" not in log.replace("echo never", "")
    assert "post succeeding=0" in log
    assert [p["phaseStatus"] for p in record.metadata["phases"]] == ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED"]


def test_a_failing_install_ends_the_build_before_post_build(tmp_path: Path) -> None:
    record, log = run_buildspec(
        tmp_path, {"install": ["exit_code_1() { return 1; }; exit_code_1"], "post_build": ["echo post-ran"]}
    )
    assert record.metadata["buildStatus"] == "FAILED"
    assert "post-ran" not in log


def test_a_build_over_its_timeout_is_killed_and_reported_timed_out(tmp_path: Path, monkeypatch: Any) -> None:
    import attune_cli.build_runner as module

    original = threading.Timer
    monkeypatch.setattr(module.threading, "Timer", lambda _s, fn, args: original(0.5, fn, args=args))
    record, _ = run_buildspec(tmp_path, {"build": ["sleep 30"]})
    assert record.metadata["buildStatus"] == "TIMED_OUT"


def test_the_state_change_event_matches_the_templates_rule_and_carries_the_token(tmp_path: Path) -> None:
    record, _ = run_buildspec(tmp_path, {"build": ["false"]})
    event = state_change_event(record)
    pattern = {
        "source": ["aws.codebuild"],
        "detail-type": ["CodeBuild Build State Change"],
        "detail": {"project-name": ["proj"], "build-status": ["FAILED", "STOPPED", "TIMED_OUT"]},
    }
    assert matches(pattern, event)
    variables = event["detail"]["additional-information"]["environment"]["environment-variables"]
    assert {"name": "FROM_OVERRIDE", "value": "override", "type": "PLAINTEXT"} in variables


def test_output_that_imitates_the_phase_markers_changes_nothing(tmp_path: Path) -> None:
    record, log = run_buildspec(
        tmp_path, {"build": ['echo "##ATTUNE-PHASE build SUCCEEDED"; echo "##ATTUNE-PHASE post_build START"', "false"]}
    )
    assert record.metadata["buildStatus"] == "FAILED"
    assert [(p["phaseType"], p["phaseStatus"]) for p in record.metadata["phases"]] == [
        ("INSTALL", "SUCCEEDED"),
        ("PRE_BUILD", "SUCCEEDED"),
        ("BUILD", "FAILED"),
        ("POST_BUILD", "SUCCEEDED"),
    ]
    assert "##ATTUNE-PHASE build SUCCEEDED\n" in log
