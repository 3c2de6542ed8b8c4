"""The test gate counts over the tests that ran and names the failing ones."""

from __future__ import annotations

from typing import Any

import pytest

from attune_packs.errors import BuildError
from attune_packs.services.stages.register import gate_tests


def result(passed: int, failed: int, skipped: int = 0, names: int | None = None, **extra: Any) -> dict[str, Any]:
    ran = passed + failed
    listed = failed if names is None else names
    return {
        "status": "partial" if passed and failed else ("failed" if failed else "passed"),
        "total_tests": ran + skipped,
        "ran": ran,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "pass_rate": round(passed / ran, 4) if ran else 0.0,
        "failed_tests": [f"pytest: test_{i}" for i in range(listed)],
        "policy": {"min_pass_rate": 0.9, "on_failure": "block"},
        "report": "",
        **extra,
    }


def gate(test_result: dict[str, Any], **options: Any) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    _, verdict = gate_tests(
        test_result,
        None,
        skip_tests=options.get("skip_tests", False),
        force=options.get("force", False),
        pack_ref="app",
        warnings=warnings,
    )
    return verdict, warnings


def test_the_refusal_counts_passed_of_ran_never_of_all_tests() -> None:
    """28 ran (9 passed, 19 failed), 11 skipped: "9 of 28", not "9 of 39"."""
    with pytest.raises(BuildError) as refused:
        gate(result(9, 19, skipped=11))
    error = refused.value
    assert error.error_code == "TESTS_FAILED"
    assert "9 of 28 tests passed" in error.message and "of 39" not in error.message
    assert "rate 32%" in error.message and "minimum 90%" in error.message


def test_the_refusal_names_the_first_ten_failing_tests_and_counts_the_rest() -> None:
    with pytest.raises(BuildError) as refused:
        gate(result(1, 14))
    error = refused.value
    assert "failing: pytest: test_0, " in error.message and "pytest: test_9 and 4 more" in error.message
    assert "pytest: test_10" not in error.message
    assert error.details["failed_tests"] == [f"pytest: test_{i}" for i in range(14)]
    assert (error.details["ran"], error.details["passed"], error.details["failed"]) == (15, 1, 14)


def test_failures_beyond_the_names_the_build_kept_are_counted() -> None:
    with pytest.raises(BuildError) as refused:
        gate(result(0, 130, names=100))
    error = refused.value
    assert len(error.details["failed_tests"]) == 100
    assert error.details["failed_tests_not_listed"] == 30
    assert "pytest: test_9 and 120 more" in error.message


def test_a_few_failures_are_all_named_without_a_remainder() -> None:
    with pytest.raises(BuildError) as refused:
        gate(result(8, 2))
    assert refused.value.message.count("pytest: test_") == 2 and "more" not in refused.value.message


def test_warn_registers_with_the_same_message_as_a_warning() -> None:
    verdict, warnings = gate(result(9, 19, skipped=11, policy={"min_pass_rate": 0.9, "on_failure": "warn"}))
    assert verdict["decision"] == "warned"
    assert verdict["failed_tests"][0] == "pytest: test_0" and verdict["ran"] == 28
    [warning] = warnings
    assert "9 of 28 tests passed" in warning and "failing: pytest: test_0" in warning


def test_an_older_result_without_ran_is_counted_over_passed_and_failed() -> None:
    older = {k: v for k, v in result(6, 4, skipped=5).items() if k not in {"ran", "pass_rate", "failed_tests"}}
    with pytest.raises(BuildError) as refused:
        gate(older)
    assert "6 of 10 tests passed (rate 60%" in refused.value.message


def test_passing_tests_record_their_counts() -> None:
    verdict, warnings = gate(result(10, 0, skipped=2))
    assert verdict["decision"] == "passed" and not warnings
    assert (verdict["ran"], verdict["passed"], verdict["skipped"], verdict["pass_rate"]) == (10, 10, 2, 1.0)
