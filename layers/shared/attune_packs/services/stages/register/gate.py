"""The test gate: a pack's test result judged by its policy before it is registered.

Kept on its own: what a build's test result carries is the build stage's to change.
"""

from __future__ import annotations

from typing import Any

from attune_packs.domain.manifest import Testing
from attune_packs.errors import BuildError
from attune_packs.services.catalog import public_json_size

_TEST_RESULT_BYTES = 16 * 1024
_NAMES_IN_MESSAGE = 10  # failing tests named in the message; details hold all the build reported
_MAX_NAMES = 100  # the build reports at most this many
_NAME_CHARACTERS = 300  # a name longer than this is cut: the verdict is stored with the version


def gate_tests(
    result: dict[str, Any] | None,
    testing: Testing | None,
    *,
    skip_tests: bool,
    force: bool,
    pack_ref: str,
    warnings: list[str],
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Judge the pack's test result by its policy (``result.policy``, else pack.yaml's
    ``testing``): below ``min_pass_rate`` with ``on_failure: block`` the pack fails with
    ``TESTS_FAILED`` unless forced or tests are skipped; ``warn`` adds a warning; ``ignore``
    registers. Returns the result as stored (compacted) and the verdict."""
    stored = compact_test_result(result) if result is not None else None
    policy = (result or {}).get("policy") if isinstance((result or {}).get("policy"), dict) else None
    min_rate = _rate((policy or {}).get("min_pass_rate", testing.min_pass_rate if testing else 1.0), default=1.0)
    on_failure = (policy or {}).get("on_failure", testing.on_failure if testing else "block")
    if on_failure not in {"block", "warn", "ignore"}:
        on_failure = "block"
    status = str(result.get("status")) if result is not None else "not_run"
    verdict: dict[str, Any] = {
        "status": status,
        "pass_rate": None,
        "min_pass_rate": min_rate,
        "on_failure": on_failure,
        "report": (result or {}).get("report"),
    }
    if skip_tests:
        return stored, {**verdict, "decision": "skipped_by_request"}
    if result is None:
        if testing is not None and testing.enabled and testing.runners:
            warnings.append(f"{pack_ref} declares tests but no test result was reported; they did not run")
        return None, {**verdict, "decision": "not_run"}
    if status == "skipped":
        return stored, {**verdict, "decision": "skipped"}
    counts = counted_tests(result)
    rate = counts["pass_rate"]
    verdict.update(counts)
    if rate >= min_rate:
        return stored, {**verdict, "decision": "passed"}
    shortfall = shortfall_message(pack_ref, counts, min_rate, status=status) + (
        f"; report: {verdict['report']}" if verdict["report"] else ""
    )
    if on_failure == "ignore":
        return stored, {**verdict, "decision": "ignored"}
    if on_failure == "warn":
        warnings.append(shortfall)
        return stored, {**verdict, "decision": "warned"}
    if force:
        warnings.append(f"{shortfall}; registered anyway (force)")
        return stored, {**verdict, "decision": "forced"}
    raise BuildError(
        f"{shortfall}; fix the tests, or install with skip_tests or force",
        error_code="TESTS_FAILED",
        details={**verdict, "decision": "blocked"},
    )


def counted_tests(result: dict[str, Any]) -> dict[str, Any]:
    """The counts the gate judges by: ``ran`` (passed + failed: skipped tests did not run),
    ``passed``, ``failed``, ``skipped``, ``pass_rate`` (passed / ran) and ``failed_tests`` (names,
    as the build reported them). A result without ``ran`` (an older build) is counted the same way."""
    passed, failed, skipped = (_count(result.get(k)) for k in ("passed", "failed", "skipped"))
    ran = _count(result.get("ran"))
    if ran is None and passed is not None and failed is not None:
        ran = passed + failed
    names = result.get("failed_tests")
    failed_tests = [str(n)[:_NAME_CHARACTERS] for n in names[:_MAX_NAMES]] if isinstance(names, list) else []
    if failed is None:
        failed = len(failed_tests)
    return {
        "ran": ran,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "pass_rate": _pass_rate(result, passed, ran),
        "failed_tests": failed_tests,
        "failed_tests_not_listed": max(0, failed - len(failed_tests)),
    }


def shortfall_message(pack_ref: str, counts: dict[str, Any], min_rate: float, *, status: str) -> str:
    """``tests of app: 9 of 28 tests passed (rate 32%, minimum 90%); failing: a, b ... and 3 more``."""
    passed = "?" if counts["passed"] is None else counts["passed"]
    ran = "?" if counts["ran"] is None else counts["ran"]
    text = (
        f"tests of {pack_ref}: {passed} of {ran} tests passed "
        f"(rate {counts['pass_rate']:.0%}, minimum {min_rate:.0%}; status {status})"
    )
    names = counts["failed_tests"][:_NAMES_IN_MESSAGE]
    more = counts["failed"] - len(names)
    if names:
        text += "; failing: " + ", ".join(names) + (f" and {more} more" if more > 0 else "")
    elif more > 0:
        text += f"; {more} failed (not named by the build)"
    return text


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _rate(value: Any, *, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(1.0, max(0.0, float(value)))


def _pass_rate(result: dict[str, Any], passed: int | None, ran: int | None) -> float:
    if result.get("status") == "error":
        return 0.0  # the tests could not run: nothing is known to pass
    rate = result.get("pass_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return min(1.0, max(0.0, float(rate)))
    if passed is not None and ran:
        return passed / ran
    return 1.0 if result.get("status") == "passed" else 0.0


def compact_test_result(result: dict[str, Any]) -> dict[str, Any]:
    """The test result as stored and returned: the counts, the policy and the report location; the
    per-suite detail is cut when large (it lives in the report)."""
    compact = dict(result)
    if public_json_size(compact) <= _TEST_RESULT_BYTES:
        return compact
    listed = compact.get("suites")
    suites: list[Any] = listed if isinstance(listed, list) else []
    compact["suites"] = [
        {k: v for k, v in suite.items() if isinstance(v, str | int | float | bool) or v is None}
        for suite in suites
        if isinstance(suite, dict)
    ]
    while compact["suites"] and public_json_size(compact) > _TEST_RESULT_BYTES:
        compact["suites"] = compact["suites"][: len(compact["suites"]) // 2]
    compact["suites_truncated"] = True
    if public_json_size(compact) > _TEST_RESULT_BYTES:
        compact = {k: v for k, v in compact.items() if isinstance(v, str | int | float | bool) or v is None}
        compact["suites_truncated"] = True
    return compact
