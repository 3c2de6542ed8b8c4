"""The test gate: a pack's test result judged by its policy before it is registered.

Kept on its own: what a build's test result carries is the build stage's to change.
"""

from __future__ import annotations

from typing import Any

from attune_packs.domain.manifest import Testing
from attune_packs.errors import BuildError
from attune_packs.services.catalog import public_json_size

_TEST_RESULT_BYTES = 16 * 1024


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
    rate = _pass_rate(result)
    verdict["pass_rate"] = rate
    if rate >= min_rate:
        return stored, {**verdict, "decision": "passed"}
    shortfall = (
        f"tests of {pack_ref} passed {rate:.0%} (status {status}; {result.get('passed', '?')} of "
        f"{result.get('total_tests', '?')}), below the required {min_rate:.0%}"
        + (f"; report: {verdict['report']}" if verdict["report"] else "")
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
        f"{shortfall}; fix the tests, or install with skip_tests or force", error_code="TESTS_FAILED", details=verdict
    )


def _rate(value: Any, *, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(1.0, max(0.0, float(value)))


def _pass_rate(result: dict[str, Any]) -> float:
    if result.get("status") == "error":
        return 0.0  # the tests could not run: nothing is known to pass
    rate = result.get("pass_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return min(1.0, max(0.0, float(rate)))
    total, passed = result.get("total_tests"), result.get("passed")
    if isinstance(total, int) and isinstance(passed, int) and total > 0:
        return passed / total
    return 1.0 if result.get("status") == "passed" else 0.0


def compact_test_result(result: dict[str, Any]) -> dict[str, Any]:
    """The test result as stored and returned: the counts, the policy and the report location; the
    per-suite detail is cut when large (it lives in the report)."""
    compact = dict(result)
    if public_json_size(compact) <= _TEST_RESULT_BYTES:
        return compact
    suites = compact.get("suites") if isinstance(compact.get("suites"), list) else []
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
