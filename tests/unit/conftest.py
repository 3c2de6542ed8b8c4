"""Unit tests run without network and without moto.

* Opening a connection (TCP, UDP, TLS, even to loopback) or resolving a host name fails the test:
  unit tests inject a resolver and a connector (see test_net.py), or use the in-memory fakes.
* A unit test module that imports moto (anywhere in it) fails its tests: unit tests use the fakes of
  tests/unit/fakes.py; a test that needs moto belongs in tests/integration.
"""

from __future__ import annotations

import ast
import functools
import socket
from pathlib import Path

import pytest

# Modules that still import moto, tolerated until their moto tests move to tests/integration (or to the
# fakes). Remove a name when it moves; once this set is empty, no unit test can use moto.
#   test_build_reports.py::test_the_cloudwatch_reader_returns_the_last_lines_oldest_first_and_nothing_for_a_...
#   test_build_runner.py::test_the_log_reads_like_codebuilds_and_goes_to_cloudwatch_under_the_build_uuid
STILL_IMPORTING_MOTO = frozenset({"test_build_reports.py", "test_build_runner.py"})
FORBIDDEN_IMPORTS = ("moto",)

_HERE = Path(__file__).resolve().parent


def forbidden_imports(source: str) -> list[str]:
    """The forbidden modules ``source`` imports, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in FORBIDDEN_IMPORTS]
    return found


@functools.cache
def _forbidden_in(path: Path) -> tuple[str, ...]:
    return tuple(forbidden_imports(path.read_text()))


@pytest.fixture(autouse=True)
def _no_moto(request: pytest.FixtureRequest) -> None:
    path = Path(request.node.path).resolve()
    if path.parent != _HERE or path.name in STILL_IMPORTING_MOTO:
        return
    found = _forbidden_in(path)
    if found:
        pytest.fail(
            f"{path.name} imports {', '.join(sorted(set(found)))}: unit tests use the in-memory fakes "
            "(tests/unit/fakes.py); move a test that needs moto to tests/integration",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unit tests must not open network connections")

    def refuse_lookup(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unit tests must not resolve host names (inject a resolver)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket.socket, "sendto", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket, "gethostbyname", refuse_lookup)
    monkeypatch.setattr(socket, "gethostbyname_ex", refuse_lookup)
