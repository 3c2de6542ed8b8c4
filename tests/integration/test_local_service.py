"""The local stack as a service: started by the first command, stopped and started again with its
state, and a ``kill -9`` in the middle of an installation loses nothing installed before."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attune_cli.api_client import ApiBackend
from attune_cli.main import EXIT_OK, EXIT_PARTIAL, main
from attune_cli.service import ensure_service, service_info, stop_service
from attune_packs.models import InstallRequest
from testkit.pack_archives import write_pack

pytestmark = pytest.mark.slow


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state dir whose service CLI commands start (and the test stops, whatever happens)."""
    monkeypatch.delenv("ATTUNE_LOCAL_IN_PROCESS", raising=False)
    for name in ("ATTUNE_API_URL", "ATTUNE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    state_dir = (tmp_path / "state").resolve()
    yield state_dir
    info = service_info(state_dir)
    if info is not None:
        try:
            stop_service(state_dir, timeout=120)
        except RuntimeError:
            os.kill(info.pid, signal.SIGKILL)


def cli(capsys: pytest.CaptureFixture[str], state: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def installed(capsys: pytest.CaptureFixture[str], state: Path) -> dict[str, str]:
    code, out, err = cli(capsys, state, "list", "--json")
    assert code == EXIT_OK, err
    return {p["ref"]: p["version"] for p in json.loads(out)}


def test_the_first_command_starts_the_service_and_its_state_survives_stop_and_start(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no service runs for the state dir
    code, out, _ = cli(capsys, state, "local", "status")
    assert code == EXIT_PARTIAL and "not running" in out

    # When a pack is installed, Then the command started the service, on loopback, and used it
    archive = write_pack(tmp_path, "svc_pack", "1.0.0")
    code, out, err = cli(capsys, state, "install", str(archive), "--skip-env-build", "-q", "--json")
    assert code == EXIT_OK, out + err
    assert "starting the local stack" in err
    installation_id = json.loads(out)["installation_id"]
    info = service_info(state)
    assert info is not None and info.url.startswith("http://127.0.0.1:")

    # And the admin token and the service record are readable by their owner only
    for name in ("admin-token", "service.json"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
    assert installed(capsys, state) == {"svc_pack": "1.0.0"}

    # When the service is stopped, Then nothing answers any more, and the state is on disk
    code, out, _ = cli(capsys, state, "local", "stop")
    assert code == EXIT_OK and "stopped" in out
    assert service_info(state) is None
    code, _, _ = cli(capsys, state, "local", "status")
    assert code == EXIT_PARTIAL

    # When it is started again (a reboot leaves a stale record: the same), Then the pack is there
    code, out, _ = cli(capsys, state, "local", "start")
    assert code == EXIT_OK and "running" in out
    assert installed(capsys, state) == {"svc_pack": "1.0.0"}
    code, out, _ = cli(capsys, state, "show", "svc_pack", "--json")
    assert code == EXIT_OK and json.loads(out)["version"] == "1.0.0"

    # And the installation's status, whose execution history the restart lost, comes from its reports
    code, out, err = cli(capsys, state, "status", installation_id, "--json")
    assert code == EXIT_OK, out + err
    report = json.loads(out)
    assert report["status"] == "UNKNOWN"
    assert [(p["pack_ref"], p["pack_version"]) for p in report["registered"]] == [("svc_pack", "1.0.0")]


def first_stage_entered(api: ApiBackend, installation_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api._call("GET", f"/packs/installs/{installation_id}")["data"]
        if status.get("stages"):
            return dict(status)
        time.sleep(0.05)
    raise AssertionError(f"installation {installation_id} never started a stage")


@pytest.mark.parametrize("moment", ["at once", "once a stage runs"])
def test_a_kill_9_during_an_installation_keeps_what_was_installed_before(
    moment: str, state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two packs installed through the service
    for ref in ("kept_a", "kept_b"):
        archive = write_pack(tmp_path, ref, "1.0.0")
        code, out, err = cli(capsys, state, "install", str(archive), "--skip-env-build", "-q")
        assert code == EXIT_OK, out + err
    code, before, _ = cli(capsys, state, "show", "kept_a", "--json")
    assert code == EXIT_OK

    # When the service is killed (SIGKILL: no chance to save) while another installation runs
    info = ensure_service(state)
    api = ApiBackend(info.url, info.token)
    busy = write_pack(tmp_path, "in_flight", "1.0.0")
    started = api.start_install(InstallRequest(packs=[str(busy)], skip_env_build=True))
    if moment != "at once":
        first_stage_entered(api, started.arn)
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while service_info(state) is not None and time.monotonic() < deadline:
        time.sleep(0.1)

    # Then the next command starts it again and every pack installed before is whole
    listed = installed(capsys, state)
    assert {k: v for k, v in listed.items() if k != "in_flight"} == {"kept_a": "1.0.0", "kept_b": "1.0.0"}
    code, after, _ = cli(capsys, state, "show", "kept_a", "--json")
    assert code == EXIT_OK and json.loads(after) == json.loads(before)

    # And the stack works: the interrupted pack installs
    code, out, err = cli(capsys, state, "install", str(busy), "--skip-env-build", "-q")
    assert code == EXIT_OK, out + err
    assert installed(capsys, state)["in_flight"] == "1.0.0"
