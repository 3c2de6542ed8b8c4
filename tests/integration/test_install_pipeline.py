"""The real state machine on the local stack, through all four stages."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import Harness

from attune_cli.local_stack import LocalStack
from testkit.pack_archives import pack_files, write_pack

pytestmark = pytest.mark.slow


def test_installing_a_pack_pulls_its_dependencies_builds_its_environment_and_registers_everything(
    harness: Harness, tmp_path: Path
) -> None:
    # Given the example registry, When notify_slack is installed (it needs http_tools and core_utils)
    result = harness.install("notify_slack")

    # Then the execution succeeded and every pack was registered, dependencies first
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    output = result.output
    assert output["status"] == "COMPLETED"
    registered = [p["pack_ref"] for p in output["register"]["registered_packs"]]
    assert registered == ["core_utils", "http_tools", "notify_slack"]
    assert output["register"]["failed_packs"] == []

    # And the dependency loop ran: a second download round fetched the missing packs
    downloaded = {p["pack_ref"] for p in output["dependency_download"]["downloaded_packs"]}
    assert downloaded == {"http_tools", "core_utils"}

    # And each archive is stored content-addressed, with no staging leftovers
    archives = harness.keys("archives/sha256/")
    assert len(archives) == 3 and harness.keys("staging/") == []

    # And http_tools got a real Python environment, built by the buildspec
    [build] = output["builds"]
    env = build["environments"]["python"]
    assert build["pack_ref"] == "http_tools" and env["cached"] is False
    assert env["requirements_installed"] == ["six==1.17.0"]
    key = env["artifact"].split("/", 3)[3]
    assert key == f"envs/{env['env_hash']}/python.tar.gz"
    assert f"envs/{env['env_hash']}/python.manifest.json" in harness.keys("envs/")
    body = harness.stack.client("s3").get_object(Bucket=harness.stack.bucket, Key=key)["Body"].read()
    target = tmp_path / "env"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tar.extractall(target, filter="data")
    probe = subprocess.run(
        [sys.executable, "-c", "import six; print(six.__version__)"],
        env={"PYTHONPATH": str(target / "site-packages")},
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "1.17.0", probe.stderr

    # And the registry holds each pack with every component
    core = harness.backend.show_pack("core_utils")
    assert {k: len(v) for k, v in core["components"].items() if v} == {
        "actions": 2,
        "sensors": 1,
        "triggers": 1,
        "rules": 1,
        "policies": 1,
    }
    slack = harness.backend.show_pack("notify_slack")
    assert {c["ref"] for c in slack["components"]["actions"]} == {
        "notify_slack.post_message",
        "notify_slack.notify_team",
    }
    assert slack["components"]["workflows"][0]["ref"] == "notify_slack.daily_digest"
    assert harness.backend.show_pack("http_tools")["environments"]["python"]["env_hash"] == env["env_hash"]


def test_a_second_installation_reuses_the_environment_and_changes_nothing(state_dir: Path) -> None:
    with LocalStack(state_dir) as stack:
        first = Harness(stack).install("http_tools")
        assert first.status == "SUCCEEDED", first.cause
        assert stack.runner is not None and stack.runner.started == 1

    # A new local stack process finds the persisted state
    with LocalStack(state_dir) as stack:
        harness = Harness(stack)
        assert [p["ref"] for p in harness.backend.list_packs()] == ["core_utils", "http_tools"]
        second = harness.install("http_tools")
        assert second.status == "SUCCEEDED", second.cause
        assert stack.runner is not None and stack.runner.started == 0, "a cache hit starts no build"
        [build] = second.output["builds"]
        assert build["environments"]["python"]["cached"] is True
        assert {p["status"] for p in second.output["register"]["registered_packs"]} == {"unchanged"}
        assert all(not p["stored"] for p in second.output["download"]["downloaded_packs"])


def test_a_pack_whose_requirement_cannot_be_installed_fails_alone(harness: Harness, tmp_path: Path) -> None:
    missing_requirement = "this-package-does-not-exist-attune==9.9.9\n"
    broken = write_pack(tmp_path, "broken_env", files=pack_files("broken_env", requirements=missing_requirement))
    fine = write_pack(tmp_path, "fine")
    result = harness.install(str(broken), str(fine))
    assert result.status == "SUCCEEDED", result.cause
    [failed_build] = result.output["builds"]
    assert failed_build["failed"] is True and failed_build["pack_ref"] == "broken_env"
    assert "this-package-does-not-exist-attune" in failed_build["error"]
    assert [p["pack_ref"] for p in result.output["register"]["registered_packs"]] == ["fine"]
    assert result.output["register"]["failed_packs"][0]["error_code"] == "BUILD_FAILED"
    assert harness.table.get_item("PACK#broken_env", "CURRENT") is None


def test_nothing_downloadable_ends_cleanly_with_the_reasons(harness: Harness) -> None:
    result = harness.install("no_such_pack")
    assert result.status == "SUCCEEDED"
    assert result.output["status"] == "NOTHING_DOWNLOADED"
    assert result.output["download"]["failed_packs"][0]["error_code"] == "PACK_NOT_FOUND"


def test_a_pack_blocked_by_a_dependency_conflict_is_not_registered_while_the_others_are(
    harness: Harness, tmp_path: Path
) -> None:
    # Given a pack that needs a core_utils version no index offers, and one that needs nothing
    needs_old_core = 'dependencies:\n  core_utils: "<1.0.0"\n'
    blocked = write_pack(tmp_path, "wants_old_core", files=pack_files("wants_old_core", dependencies=needs_old_core))
    fine = write_pack(tmp_path, "fine")

    # When both are installed
    result = harness.install(str(blocked), str(fine))

    # Then the conflict names the blocked pack, which is neither built nor registered
    assert result.status == "SUCCEEDED", result.cause
    conflicts = result.output["dependencies"]["conflicts"]
    assert [c["pack_ref"] for c in conflicts] == ["wants_old_core"] and "core_utils" in conflicts[0]["message"]
    assert [p["pack_ref"] for p in result.output["register"]["registered_packs"]] == ["fine"]
    assert result.output["register"]["failed_packs"] == []
    assert harness.table.get_item("PACK#wants_old_core", "CURRENT") is None

    # And when the blocked pack is installed alone, the installation ends with nothing registered
    alone = harness.install(str(blocked))
    assert alone.status == "SUCCEEDED" and alone.output["register"]["registered_packs"] == []
    assert alone.output["dependencies"]["conflicts"][0]["pack_ref"] == "wants_old_core"


def test_state_payloads_stay_small_with_many_packs_and_readers_still_get_every_result(
    harness: Harness, tmp_path: Path
) -> None:
    # Given 60 packs, each with an action (no environments, so no builds)
    archives = [str(write_pack(tmp_path, f"bulk_{n:02d}")) for n in range(60)]

    # When they are installed together
    result = harness.install(*archives)

    # Then no state's input or output carries more than a few hundred bytes per pack
    assert result.status == "SUCCEEDED", result.cause
    largest = max(
        len(details.get(field, ""))
        for event in result.events
        for details in event.values()
        if isinstance(details, dict)
        for field in ("input", "output")
    )
    assert largest < 60 * 500, f"largest state payload: {largest} bytes"

    # And the output readers get has every pack's whole result, read back from the stage reports
    output = result.output
    assert output["reports"] == f"s3://{harness.stack.bucket}/reports/installs/{result.output['installation_id']}/"
    assert len(output["download"]["downloaded_packs"]) == 60
    assert len(output["register"]["registered_packs"]) == 60
    assert all(p["components_registered"]["actions"] == 1 for p in output["register"]["registered_packs"])
    assert harness.keys(f"reports/installs/{output['installation_id']}/") == [
        f"reports/installs/{output['installation_id']}/{name}.json"
        for name in ("dependencies-0", "download", "register")
    ]
