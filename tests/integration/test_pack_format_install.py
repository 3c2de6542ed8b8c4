"""Packs in the real shapes install through the real state machine, and the registry holds, per
type, exactly the components their files define.

The fixtures (tests/fixtures/attune/, tests/fixtures/exchange/) were written for these tests in the
shapes of Attune's ``packs/core`` and ``tests/fixtures/packs/test_pack`` and of three kinds of
StackStorm Exchange pack: Python requirements with sensors (slack), command runners with an empty
``entry_point`` (aws), Orquesta / ActionChain workflows with aliases (jira).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from conftest import Harness

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# What each pack's files define, per component type (refs). Workflows an action runs are listed
# under workflows with the action's ref; triggers a sensor declares inline are the pack's triggers.
EXPECTED = {
    "core": {
        "actions": ["core.echo", "core.http_request", "core.rotate_logs", "core.sleep"],
        "workflows": ["core.install_packs", "core.rotate_logs"],
        "runtimes": ["core.native", "core.python", "core.shell"],
        "sensors": ["core.timer_sensor"],
        "triggers": ["core.crontimer", "core.datetimetimer", "core.intervaltimer"],
        "rules": ["core.heartbeat"],
        "permission_sets": ["core.operator", "core.viewer"],
    },
    "test_pack": {
        "actions": ["test_pack.echo", "test_pack.node_basic", "test_pack.python_six", "test_pack.sleep"],
        "workflows": ["test_pack.simple_workflow"],
    },
    "slack": {
        "actions": ["slack.post_message", "slack.users.list"],
        "sensors": ["slack.messages_sensor", "slack.user_sensor"],
        "triggers": ["slack.message", "slack.user_joined"],
        "rules": ["slack.relay_message"],
    },
    "aws": {
        "actions": ["aws.bootstrap_user", "aws.disk_usage", "aws.instance_identity", "aws.set_hostname"],
    },
    "jira": {
        "actions": ["jira.comment_issue", "jira.escalate", "jira.get_issue", "jira.triage_issue"],
        "workflows": ["jira.escalate", "jira.triage_issue"],
        "aliases": ["jira.jira_get_issue", "jira.jira_triage"],
    },
}
FOLDERS = {
    "core": "attune/core_like",
    "test_pack": "attune/test_pack",
    "slack": "exchange/slack",
    "aws": "exchange/aws",
    "jira": "exchange/jira",
}


def archive_of_folder(folder: Path, out: Path, top: str) -> Path:
    """The fixture folder as a .tar.gz with one top-level folder, as a release archive has."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{top}/{path.relative_to(folder).as_posix()}")
            info.size = len(data)
            info.mode = 0o755 if path.suffix == ".sh" else 0o644
            tar.addfile(info, io.BytesIO(data))
    target = out / f"{top}.tar.gz"
    target.write_bytes(buffer.getvalue())
    return target


def test_attune_and_exchange_shaped_packs_register_exactly_the_components_their_files_define(
    harness: Harness, tmp_path: Path
) -> None:
    # Given the five fixture packs as archives
    archives = [str(archive_of_folder(FIXTURES / folder, tmp_path, ref)) for ref, folder in FOLDERS.items()]

    # When they are installed together through the state machine
    result = harness.install(*archives)

    # Then every one is registered, none failed
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    register = result.output["register"]
    assert register["failed_packs"] == [], register["failed_packs"]
    assert sorted(p["pack_ref"] for p in register["registered_packs"]) == sorted(EXPECTED)

    # And the registry holds, per type, exactly the components the files define
    for ref, expected in EXPECTED.items():
        shown = harness.backend.show_pack(ref)
        registered = {kind: sorted(c["ref"] for c in items) for kind, items in shown["components"].items() if items}
        assert registered == expected, ref
        counts = next(p["components_registered"] for p in register["registered_packs"] if p["pack_ref"] == ref)
        assert {k: v for k, v in counts.items() if v} == {k: len(v) for k, v in expected.items()}, ref

    # And the details that make each kind what it is survive registration
    core = {c["ref"]: c for items in harness.backend.show_pack("core")["components"].values() for c in items}
    assert core["core.timer_sensor"]["entry_point_kind"] == "platform_binary"
    assert core["core.heartbeat"]["trigger_ref"] == "core.intervaltimer"
    assert core["core.python"]["label"] == "Python"
    aws = {c["ref"]: c for c in harness.backend.show_pack("aws")["components"]["actions"]}
    for command in ("aws.disk_usage", "aws.instance_identity", "aws.set_hostname"):
        # stored items leave out empty fields: no entry point at all
        assert (aws[command].get("entry_point"), aws[command].get("entry_point_kind")) == (None, None), command
    assert aws["aws.bootstrap_user"]["entry_point"] == "scripts/bootstrap_user.sh"
    jira = harness.backend.show_pack("jira")["components"]
    workflows = {c["ref"]: c for c in jira["workflows"]}
    assert workflows["jira.triage_issue"]["declared_by"] == "jira.triage_issue"
    assert {c["ref"]: c["action_ref"] for c in jira["aliases"]} == {
        "jira.jira_get_issue": "jira.get_issue",
        "jira.jira_triage": "jira.triage_issue",
    }

    # And the Python packs got their environment from their requirements
    built = {b["pack_ref"]: b for b in result.output["builds"]}
    assert built["test_pack"]["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]
    assert built["slack"]["environments"]["python"]["requirements_installed"] == ["six==1.17.0"]
