"""Each function validates its own settings once at cold start: a missing variable fails the
function's start with the variable's name, not a request half-way through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attune_packs import wiring
from attune_packs.errors import ConfigurationError
from attune_packs.settings import RegisterPacksSettings, ServeApiSettings, validate_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_wiring() -> None:
    wiring.reset()


def test_a_missing_variable_is_named_and_an_empty_one_refused() -> None:
    with pytest.raises(ConfigurationError) as missing:
        validate_settings(ServeApiSettings, {"BUCKET_NAME": "b", "TABLE_NAME": "t", "STATE_MACHINE_ARN": ""})

    assert missing.value.error_code == "SETTING_MISSING"
    assert "STATE_MACHINE_ARN" in missing.value.message
    assert "BUILD_ENVS_FUNCTION: is not set" in missing.value.message


def test_a_configured_handler_refuses_to_run_without_its_settings() -> None:
    calls: list[Any] = []

    @wiring.configured(RegisterPacksSettings)
    def handler(event: dict[str, Any], context: Any) -> str:
        calls.append(event)
        return "ran"

    with wiring.function_environment({"BUCKET_NAME": "packs"}), pytest.raises(ConfigurationError) as error:
        handler({"pack_paths": []}, None)
    with wiring.function_environment({"BUCKET_NAME": "packs", "TABLE_NAME": "registry"}):
        assert handler({"pack_paths": []}, None) == "ran"

    assert "TABLE_NAME: is not set" in error.value.message
    assert len(calls) == 1, "the handler never ran with a missing setting"


def test_settings_are_validated_once_per_environment() -> None:
    @wiring.configured(RegisterPacksSettings)
    def handler(event: dict[str, Any], context: Any) -> None:
        return None

    with wiring.function_environment({"BUCKET_NAME": "packs", "TABLE_NAME": "registry"}):
        handler({}, None)
        handler({}, None)

    assert wiring._validated.cache_info().misses == 1


def test_on_lambda_a_missing_variable_fails_the_cold_start_naming_it() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "BUCKET_NAME": "packs",
    }
    env.pop("TABLE_NAME", None)
    app_path = ROOT / "functions" / "stages" / "register_packs" / "app.py"
    script = (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(app_path)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
    )

    failed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    started = subprocess.run([sys.executable, "-c", script], env={**env, "TABLE_NAME": "t"}, capture_output=True)

    assert failed.returncode != 0
    assert "ConfigurationError" in failed.stderr and "TABLE_NAME: is not set" in failed.stderr
    assert started.returncode == 0, started.stderr
