"""Attune's four core-pack wrappers (packs/core/actions/{download_packs,get_pack_dependencies,
build_pack_envs,register_packs}.sh) against ``attune-packs local serve``, with curl.

Each body below is what the wrapper builds from its parameters (its heredoc, with its defaults:
``registry_url`` https://registry.attune.io/index.json, ``packs_base_dir`` /opt/attune/packs,
``python_version`` 3.11). The wrappers splice array parameters in after escaping quotes, which makes
invalid JSON of any array with strings; the bodies send the array the wrapper intends. The curl
command line is the wrappers' own (POST, JSON content type and Accept, bearer token, -w http_code).
Each answer must be a 2xx whose ``data`` holds the fields the wrapper's output_schema declares.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = ROOT / "examples" / "archives" / "core_utils-1.0.0.tar.gz"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``attune-packs local serve --admin-token`` in its own process; (api_url, token)."""
    port = _free_port()
    state = tmp_path_factory.mktemp("wrappers") / "state"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}{os.pathsep}{ROOT / 'cli'}"}
    command = [
        sys.executable,
        "-c",
        "from attune_cli.main import main; raise SystemExit(main())",
        "local",
        "serve",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        "--admin-token",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    token, lines = "", []
    deadline = time.monotonic() + 180
    assert process.stdout is not None
    while not token and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if line.startswith("admin token"):
            token = line.rsplit(":", 1)[1].strip()
    try:
        assert token, "local serve did not start:\n" + "".join(lines[-30:])
        yield f"http://127.0.0.1:{port}", token
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def curl(api: tuple[str, str], route: str, body: str, max_time: int, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """The wrappers' curl call: status code from -w, body to a file."""
    url, token = api
    out = tmp_path / f"{route.replace('/', '_')}.json"
    result = subprocess.run(
        [
            "curl",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json",
            "-H",
            f"Authorization: Bearer {token}",
            "-d",
            body,
            "-s",
            "-w",
            "%{http_code}",
            "-o",
            str(out),
            "--max-time",
            str(max_time),
            "--connect-timeout",
            "10",
            f"{url}/api/v1/packs/{route}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=max_time + 30,
    )
    return int(result.stdout or 0), json.loads(out.read_text() or "{}")


def has_fields(value: dict[str, Any], fields: set[str]) -> set[str]:
    """The fields of ``fields`` that ``value`` lacks."""
    return fields - set(value)


def test_the_four_core_wrappers_get_what_their_output_schemas_read(serve: tuple[str, str], tmp_path: Path) -> None:
    # download_packs.sh (destination_dir is required by the wrapper; ref_spec left out when empty)
    download_body = f"""{{
  "packs": {json.dumps([str(ARCHIVE)])},
  "destination_dir": "/tmp/attune-downloads",
  "registry_url": "https://registry.attune.io/index.json",
  "timeout": 300,
  "verify_ssl": true
}}"""
    status, answer = curl(serve, "download", download_body, 330, tmp_path)
    assert 200 <= status < 300, answer
    data = answer["data"]
    assert not has_fields(data, {"downloaded_packs", "failed_packs", "total_count", "success_count", "failure_count"})
    assert data["success_count"] == 1 and data["failure_count"] == 0, data["failed_packs"]
    [pack] = data["downloaded_packs"]
    assert not has_fields(
        pack, {"source", "source_type", "pack_path", "pack_ref", "pack_version", "git_commit", "checksum"}
    )
    assert pack["pack_ref"] == "core_utils" and pack["pack_path"].startswith("s3://")
    pack_path = pack["pack_path"]

    # get_pack_dependencies.sh
    dependencies_body = f"""{{
  "pack_paths": {json.dumps([pack_path])},
  "skip_validation": false
}}"""
    status, answer = curl(serve, "dependencies", dependencies_body, 60, tmp_path)
    assert 200 <= status < 300, answer
    data = answer["data"]
    assert not has_fields(
        data, {"dependencies", "runtime_requirements", "missing_dependencies", "analyzed_packs", "errors"}
    )
    [analyzed] = data["analyzed_packs"]
    assert not has_fields(analyzed, {"pack_ref", "pack_path", "has_dependencies", "dependency_count"})
    assert analyzed["pack_path"] == pack_path and analyzed["has_dependencies"] is False
    assert all(not has_fields(r, {"pack_ref"}) for r in data["runtime_requirements"].values())
    assert data["errors"] == []

    # build_pack_envs.sh (packs_base_dir and python_version "3.11" are the wrapper's defaults)
    build_body = f"""{{
  "pack_paths": {json.dumps([pack_path])},
  "packs_base_dir": "/opt/attune/packs",
  "python_version": "3.11",
  "nodejs_version": "20",
  "skip_python": false,
  "skip_nodejs": false,
  "force_rebuild": false,
  "timeout": 600
}}"""
    status, answer = curl(serve, "build-envs", build_body, 630, tmp_path)
    assert 200 <= status < 300, answer
    data = answer["data"]
    assert not has_fields(data, {"built_environments", "failed_environments", "summary"})
    assert not has_fields(
        data["summary"],
        {
            "total_packs",
            "success_count",
            "failure_count",
            "python_envs_built",
            "nodejs_envs_built",
            "total_duration_ms",
        },
    )
    [built] = data["built_environments"]
    assert not has_fields(built, {"pack_ref", "pack_path", "environments", "duration_ms"})
    assert built["pack_path"] == pack_path

    # register_packs.sh
    register_body = f"""{{
  "pack_paths": {json.dumps([pack_path])},
  "packs_base_dir": "/opt/attune/packs",
  "skip_validation": false,
  "skip_tests": false,
  "force": false
}}"""
    status, answer = curl(serve, "register-batch", register_body, 300, tmp_path)
    assert 200 <= status < 300, answer
    data = answer["data"]
    assert not has_fields(data, {"registered_packs", "failed_packs", "summary"})
    assert data["failed_packs"] == [] and data["summary"]["success_count"] == 1
    [registered] = data["registered_packs"]
    assert not has_fields(
        registered,
        {
            "pack_ref",
            "pack_id",
            "pack_version",
            "storage_path",
            "components_registered",
            "test_result",
            "validation_results",
        },
    )
    assert not has_fields(
        registered["components_registered"], {"actions", "sensors", "triggers", "rules", "workflows", "policies"}
    )
    assert not has_fields(
        data["summary"], {"total_packs", "success_count", "failure_count", "total_components", "duration_ms"}
    )


def test_the_wrappers_error_path_reads_error_from_a_refusal(serve: tuple[str, str], tmp_path: Path) -> None:
    """On a non-2xx answer the wrappers read the "error" (or "message") string of the body."""
    status, answer = curl(serve, "download", '{"packs": [], "destination_dir": "/tmp/x"}', 30, tmp_path)
    assert status == 400 and isinstance(answer["error"], str) and answer["error"]
