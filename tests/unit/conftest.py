"""Unit tests run without network and without moto.

* Opening a connection (TCP, UDP, TLS, even to loopback) or resolving a host name fails the test:
  unit tests inject a resolver and a connector (see test_net.py), or use the in-memory fakes.
* A unit test module that imports moto (anywhere in it) fails its tests: unit tests use the fakes of
  tests/unit/fakes.py; a test that needs moto belongs in tests/integration.
* The few unit tests that take seconds each are marked ``slow``: ``make test`` runs them,
  ``make test-fast`` (``-m "not slow"``) leaves them out of the edit loop.
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
STILL_IMPORTING_MOTO: frozenset[str] = frozenset()
FORBIDDEN_IMPORTS = ("moto",)

# Unit tests of more than about 2 s each on an idle 2-core machine (property searches with hundreds of
# examples, memory-limited archive bombs, real test runners). Their owners may instead mark them in place
# with @pytest.mark.slow; a name listed here that no longer exists only stops marking.
SLOW = {
    "test_archive.py": {"test_600_mib_bomb_under_a_memory_limit"},
    "test_build_reports.py": {
        "test_the_cloudwatch_reader_returns_the_last_lines_oldest_first_and_nothing_for_a_missing_stream"
    },
    "test_build_tools.py": {"test_passing_failing_and_skipped_tests_of_every_runner_type_give_the_exact_report_shape"},
    "test_git_source.py": {"test_a_big_file_streams_in_chunks"},
    "test_resolver.py": {
        "test_any_returned_install_order_satisfies_every_constraint",
        "test_when_the_whole_batch_can_be_satisfied_nothing_is_blocked",
        "test_a_search_that_thrashes_switches_to_pruning_and_still_explains_and_goes_on",
    },
    "test_safe_yaml.py": {"test_recursion_error_while_composing_becomes_too_deep"},
    "test_semver.py": {
        "test_normalised_constraint_parses_back_to_the_same_constraint",
        "test_intersects_finds_a_common_version_whenever_one_exists",
        "test_best_match_returns_an_allowed_version_not_below_any_other_allowed",
    },
}

_HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path)
        name = getattr(item, "originalname", item.name)
        if path.parent == _HERE and name in SLOW.get(path.name, ()):
            item.add_marker(pytest.mark.slow)


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
