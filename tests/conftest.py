"""Shared fixtures: project paths, a clean AWS environment (tests never reach real AWS), a terminal-free
environment for the tools tests run, and the events of ``tests/events/``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.events import load_event as _load_event

ROOT = Path(__file__).resolve().parents[1]

# A terminal's size in the environment changes what tools print: uv wraps its errors at $COLUMNS, so
# "... was not found in the package registry" can break across two lines. pytest-xdist's workers run
# with COLUMNS=80 and LINES=24, and the local build runner hands the whole environment to the builds:
# without this, a test that reads uv's message passes serially and fails under `-n 2`.
TERMINAL_VARIABLES = ("COLUMNS", "LINES")


@pytest.fixture(scope="session", autouse=True)
def _no_terminal_size() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in TERMINAL_VARIABLES:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    # CLI commands run the local stack inside the test process, not as a service left running
    # (tests/integration/test_local_service.py starts the service on purpose)
    monkeypatch.setenv("ATTUNE_LOCAL_IN_PROCESS", "1")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def examples(root: Path) -> Path:
    return root / "examples"


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    """``load_event("api_rest_request")``: a fresh copy of ``tests/events/api_rest_request.json``."""
    return _load_event
