"""Environment builds: one requirements set built cold by the project's builder and by a plain
``python -m venv && pip install -r``, and found warm (a cache hit), in one run.

* cold, uv (buildspec command): the buildspec's own ``uv pip install`` line, run as the build runs
  it (``--target`` site-packages for Python 3.12 / aarch64), with an empty uv cache each time.
* cold, whole build: the real buildspec through the local stack's CodeBuild runner (archive
  fetch, uv, manifest, tar, upload to S3), empty uv cache, ``force_rebuild``.
* cold, venv + pip: ``python3.12 -m venv`` then ``pip install --no-cache-dir -r``.
* warm: the build-envs stage once the environment is stored (S3 lookups only, no build).

Cold runs download from PyPI, so the network is part of every cold figure. Medians of RUNS runs.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ["six==1.17.0", "idna==3.10", "attrs==25.3.0", "packaging==25.0", "python-dateutil==2.9.0.post0"]
RUNS = 3
WARM_RUNS = 5


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _uv_line() -> str:
    """The buildspec's uv command (``set -- $UV pip install ...``), as the build runs it."""
    text = (ROOT / "layers/shared/attune_packs/buildspec/build_env.yml").read_text()
    match = re.search(r"set -- (\$UV pip install [^\n]+)", text)
    if match is None:
        raise RuntimeError("the buildspec has no `set -- $UV pip install ...` line")
    return match.group(1)


def cold_uv(requirements: Path, work: Path) -> float:
    uv = Path(sys.executable).parent / "uv"
    target = work / "site-packages"
    env = {
        **os.environ,
        "UV": str(uv),
        "UV_CACHE_DIR": str(work / "uv-cache"),
        "UV_NO_PROGRESS": "1",
        "UV_LINK_MODE": "copy",
        "site": str(target),
        "req": str(requirements),
        "PYTHON_VERSION": "3.12",
        "PYTHON_PLATFORM": "aarch64-manylinux_2_28",
    }
    started = time.perf_counter()
    subprocess.run(["bash", "-c", f'set -e; set -- {_uv_line()}; "$@"'], env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    assert (target / "six.py").exists(), "the uv command installed nothing"
    return elapsed


def cold_venv_pip(requirements: Path, work: Path, python: str) -> float:
    venv = work / "venv"
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "-q",
            "-r",
            str(requirements),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _pack_archive(folder: Path) -> Path:
    from testkit.pack_archives import manifest, write_pack

    files = {"pack.yaml": manifest("bench_env", description=None), "requirements.txt": "\n".join(REQUIREMENTS) + "\n"}
    return write_pack(folder, "bench_env", files=files)


def _build_seconds(metadata: dict[str, Any]) -> float:
    start = datetime.fromisoformat(metadata["phases"][0]["startTime"])
    return (datetime.fromisoformat(metadata["endTime"]) - start).total_seconds()


def whole_build_and_warm(work: Path) -> tuple[list[float], list[float], int]:
    """(cold build seconds per run, warm lookup seconds per run, builds started by the warm runs)."""
    from attune_cli.local_stack import LocalStack

    with LocalStack(work / "state", persist=False) as stack:
        runner = stack.runner
        assert runner is not None
        stored = stack.invoke("attune-local-DownloadPacksFunction", {"packs": [str(_pack_archive(work))]})
        request = {"pack_paths": stored["pack_paths"], "skip_tests": True}
        cold = []
        for run in range(RUNS):
            runner.environment["UV_CACHE_DIR"] = str(work / f"uv-cache-{run}")
            response = stack.invoke("attune-local-BuildPackEnvsFunction", {**request, "force_rebuild": True})
            assert response["failed_environments"] == [], response["failed_environments"]
            cold.append(_build_seconds(list(runner.records.values())[-1].metadata))
        builds = runner.started
        warm = []
        for _ in range(WARM_RUNS):
            started = time.perf_counter()
            response = stack.invoke("attune-local-BuildPackEnvsFunction", request)
            warm.append(time.perf_counter() - started)
            assert response["summary"]["cache_hits"] == 1
        return cold, warm, runner.started - builds


def main() -> None:
    from attune_packs.buildspec.build_tools import find_python

    python = find_python("3.12", fallback=sys.executable)
    print(f"   requirements: {' '.join(REQUIREMENTS)}")
    print(f"   venv + pip with {python.describe()}; {RUNS} cold runs each, {WARM_RUNS} warm lookups")
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        requirements = work / "requirements.txt"
        requirements.write_text("\n".join(REQUIREMENTS) + "\n")
        uv_runs, pip_runs = [], []
        for run in range(RUNS):
            (work / f"uv{run}").mkdir()
            (work / f"pip{run}").mkdir()
            uv_runs.append(cold_uv(requirements, work / f"uv{run}"))
            pip_runs.append(cold_venv_pip(requirements, work / f"pip{run}", python.path))
        whole, warm, warm_builds = whole_build_and_warm(work)
    uv, pip, build, hit = _median(uv_runs), _median(pip_runs), _median(whole), _median(warm)
    print(f"   cold, uv (the buildspec's command)     median {uv:6.2f} s   runs {[round(s, 2) for s in uv_runs]}")
    print(f"   cold, venv + pip install -r            median {pip:6.2f} s   runs {[round(s, 2) for s in pip_runs]}")
    print(f"   cold, whole build (local CodeBuild)    median {build:6.2f} s   runs {[round(s, 2) for s in whole]}")
    print(f"   warm, cache hit (build-envs stage)     median {hit * 1000:6.0f} ms  builds started: {warm_builds}")
    print(
        f"   ratios: venv+pip / uv = {pip / uv:.1f}x; venv+pip / whole build = {pip / build:.1f}x; "
        f"whole build / cache hit = {build / hit:.0f}x"
    )
