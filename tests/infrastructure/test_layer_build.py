"""The shared layer ships compiled: `sam build` runs layers/shared/Makefile, which puts every module
of attune_packs in python/ with an unchecked-hash .pyc beside it, so Lambda never compiles the
layer at a cold start (its /opt is read-only: nothing compiled there would be kept)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attune_cli.template import StackResources

ROOT = Path(__file__).resolve().parents[2]
LAYER_SOURCE = ROOT / "layers" / "shared"


def test_the_layer_is_built_by_its_makefile_for_the_functions_runtime_and_architecture() -> None:
    stack = StackResources.load(ROOT)
    layer = stack.template["Resources"]["SharedLayer"]
    makefile = (LAYER_SOURCE / "Makefile").read_text()
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-SharedLayer:" in makefile
    runtime = stack.template["Globals"]["Function"]["Runtime"]
    assert f"LAMBDA_PYTHON ?= {runtime}" in makefile
    assert f"LAMBDA_PYTHON_VERSION ?= {runtime.removeprefix('python')}" in makefile
    assert stack.template["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert "LAMBDA_PLATFORM ?= manylinux2014_aarch64" in makefile


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = tmp_path_factory.mktemp("layer")
    subprocess.run(
        ["make", "--silent", "-C", str(LAYER_SOURCE), "code"],
        check=True,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts), "LAMBDA_PYTHON": sys.executable},
    )
    return artifacts / "python"


def test_every_module_of_the_layer_ships_with_its_compiled_form(built: Path) -> None:
    sources = sorted(p.relative_to(LAYER_SOURCE) for p in (LAYER_SOURCE / "attune_packs").rglob("*.py"))
    shipped = sorted(p.relative_to(built) for p in (built / "attune_packs").rglob("*.py"))
    assert shipped == sources
    missing = [str(s) for s in shipped if not Path(importlib.util.cache_from_source(str(built / s))).is_file()]
    assert missing == []


def test_the_compiled_modules_are_used_whatever_the_file_times_say(built: Path) -> None:
    # A .pyc header: magic (4 bytes), flags (4 bytes). Flags 0b01 = hash-based, source not checked.
    compiled = Path(importlib.util.cache_from_source(str(built / "attune_packs" / "models" / "common.py")))
    assert compiled.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(compiled.read_bytes()[4:8], "little") == 0b01


def test_only_files_compiled_by_the_build_interpreter_are_shipped(built: Path) -> None:
    tags = {p.name.split(".")[-2] for p in built.rglob("__pycache__/*.pyc")}
    assert tags == {sys.implementation.cache_tag}


def test_functions_skip_the_discovery_of_pydantic_plugins_none_of_them_uses() -> None:
    # Discovery scans every installed distribution's entry points when the first validator is built.
    env = StackResources.load(ROOT).template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_the_layer_ships_the_versions_the_tests_run_with() -> None:
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(
            line.lower().replace("_", "-").replace("[tracer]", "").split("==", 1) for line in lines if "==" in line
        )

    layer, tested = pins(LAYER_SOURCE / "requirements.txt"), pins(ROOT / "requirements-dev.lock")
    assert {"boto3", "botocore"} <= set(layer)
    assert {name: version for name, version in layer.items() if tested.get(name) != version} == {}
