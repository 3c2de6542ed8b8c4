"""The README's main command, as a person runs it: `make run`, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def make_run(state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTUNE_LOCAL_STATE": str(state)}
    return subprocess.run(
        ["make", "--no-print-directory", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )


def test_make_run_installs_the_examples_and_a_second_run_reuses_the_environment(tmp_path: Path) -> None:
    state = tmp_path / "local"
    first = make_run(state)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "→ download" in first.stderr and "✓ register" in first.stderr, "progress per stage is shown"
    for ref in ("core_utils", "http_tools", "notify_slack"):
        assert ref in first.stdout
    assert "built" in first.stdout

    second = make_run(state)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "cache hit" in second.stdout and "unchanged" in second.stdout

    listing = subprocess.run(
        [str(Path(sys.executable).parent / "attune-packs"), "list", "--json", "--state-dir", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listing.returncode == 0, listing.stderr
    assert sorted(p["ref"] for p in json.loads(listing.stdout)) == ["core_utils", "http_tools", "notify_slack"]
