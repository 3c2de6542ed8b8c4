"""Test result formats (JUnit XML, JSON), one runner's suite, and the summary registration reads."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # noqa: S405 - size-capped, DTDs refused before parsing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

MAX_FAILURES_PER_SUITE = 20
MAX_FAILED_TESTS = 100
MAX_MESSAGE_CHARS = 500
MAX_RESULT_BYTES = 5 * 2**20


class ResultFormatError(ValueError):
    """A runner's result output could not be read."""


def make_case(name: str, status: str, message: str = "") -> dict[str, str]:
    return {"name": str(name)[:300], "status": status, "message": str(message or "")[:MAX_MESSAGE_CHARS]}


def parse_junit(text: str) -> list[dict[str, str]]:
    """Test cases of a JUnit XML document (``<testsuites>`` or ``<testsuite>`` at the root)."""
    if len(text.encode("utf-8", "replace")) > MAX_RESULT_BYTES:
        raise ResultFormatError("JUnit XML larger than 5 MiB")
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ResultFormatError("JUnit XML with a DOCTYPE or entity declarations is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 - see the checks above
    except ET.ParseError as exc:
        raise ResultFormatError(f"JUnit XML does not parse: {exc}") from exc
    cases = []
    for case in root.iter("testcase"):
        name = ".".join(p for p in (case.get("classname"), case.get("name")) if p) or "unnamed"
        problem = next((c for c in case if c.tag in ("failure", "error")), None)
        skipped = next((c for c in case if c.tag == "skipped"), None)
        if problem is not None:
            lines = (problem.text or "").strip().splitlines()
            message = problem.get("message") or (lines[-1] if lines else problem.tag)
            cases.append(make_case(name, "failed", message))
        elif skipped is not None:
            cases.append(make_case(name, "skipped", skipped.get("message") or ""))
        else:
            cases.append(make_case(name, "passed"))
    return cases


_STATUS_ALIASES = {
    "pass": "passed",
    "passed": "passed",
    "ok": "passed",
    "success": "passed",
    "fail": "failed",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "skip": "skipped",
    "skipped": "skipped",
}


def parse_json_results(text: str) -> list[dict[str, str]]:
    """``{"tests": [{"name", "status", "message"}]}`` or counts with ``failures``."""
    document = None
    try:
        document = json.loads(text)
    except ValueError:
        # Printed on stdout among other lines: take the last line that is a JSON object.
        for line in reversed(text.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    document = json.loads(line)
                    break
                except ValueError:
                    continue
    if not isinstance(document, dict):
        raise ResultFormatError("no JSON object with test results was found")
    if isinstance(document.get("tests"), list):
        cases = []
        for number, test in enumerate(document["tests"], start=1):
            if not isinstance(test, dict):
                raise ResultFormatError(f"tests[{number - 1}] is not an object")
            status = _STATUS_ALIASES.get(str(test.get("status", "")).lower())
            if status is None:
                raise ResultFormatError(f"tests[{number - 1}] has an unknown status {test.get('status')!r}")
            cases.append(make_case(test.get("name") or f"test {number}", status, test.get("message") or ""))
        return cases
    counts = {}
    for key in ("passed", "failed", "skipped"):
        value = document.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ResultFormatError(f"{key} must be a non-negative integer")
        counts[key] = value
    if not any(counts.values()) and "passed" not in document:
        raise ResultFormatError('the JSON results have neither "tests" nor "passed"/"failed" counts')
    failures = [f for f in document.get("failures") or [] if isinstance(f, dict)][: counts["failed"]]
    cases = [make_case(f.get("name") or "unnamed", "failed", f.get("message") or "") for f in failures]
    cases += [make_case(f"failed test {n + 1}", "failed") for n in range(counts["failed"] - len(cases))]
    cases += [make_case(f"passed test {n + 1}", "passed") for n in range(counts["passed"])]
    cases += [make_case(f"skipped test {n + 1}", "skipped") for n in range(counts["skipped"])]
    return cases


def _status(passed: int, failed: int) -> str:
    if failed == 0 and passed == 0:
        return "skipped"
    if failed == 0:
        return "passed"
    return "failed" if passed == 0 else "partial"


def suite_result(name: str, runner_type: str, cases: list[dict[str, str]], error: str | None = None) -> dict[str, Any]:
    """One runner's entry of ``suites``. An error (the runner could not run, timed out, wrote
    unreadable results) counts as one failed test, named after the runner, when no test was
    recorded, so it lowers the pass rate instead of vanishing. ``failed_tests`` names every
    failed test (up to :data:`MAX_FAILED_TESTS`); ``failures`` keeps the first few messages."""
    passed = sum(1 for c in cases if c["status"] == "passed")
    failed = sum(1 for c in cases if c["status"] == "failed")
    skipped = sum(1 for c in cases if c["status"] == "skipped")
    failures = [{"name": c["name"], "message": c["message"]} for c in cases if c["status"] == "failed"]
    status = _status(passed, failed)
    if error is not None:
        failures.insert(0, {"name": name, "message": error[:MAX_MESSAGE_CHARS]})
        if passed + failed == 0:
            failed = 1
        status = "error"
    failed_tests = list(dict.fromkeys(f["name"] for f in failures))
    return {
        "name": name,
        "type": runner_type,
        "status": status,
        "total": passed + failed + skipped,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "failed_tests": failed_tests[:MAX_FAILED_TESTS],
        "failures": failures[:MAX_FAILURES_PER_SUITE],
    }


def summarise(
    suites: list[dict[str, Any]],
    *,
    policy: dict[str, Any],
    duration_ms: int,
    report: str,
    interpreter: str,
    status: str | None = None,
) -> dict[str, Any]:
    """The test result registration gates on, in exactly this shape.

    ``ran`` is passed + failed (skipped tests did not run); ``pass_rate`` is passed / ran, 0.0
    when no test ran. ``failed_tests`` names the failed tests of every suite (``<suite>: <test>``).
    ``status``: ``error`` when a runner could not run, ``skipped`` when no test ran, ``passed``
    with no failure, ``failed`` with no pass, ``partial`` otherwise."""
    passed = sum(s["passed"] for s in suites)
    failed = sum(s["failed"] for s in suites)
    skipped = sum(s["skipped"] for s in suites)
    if status is None:
        status = "error" if any(s["status"] == "error" for s in suites) else _status(passed, failed)
    failed_tests = [
        test if test == s["name"] else f"{s['name']}: {test}" for s in suites for test in s.get("failed_tests", [])
    ]
    return {
        "status": status,
        "total_tests": passed + failed + skipped,
        "ran": passed + failed,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "pass_rate": round(passed / (passed + failed), 4) if passed + failed else 0.0,
        "failed_tests": failed_tests[:MAX_FAILED_TESTS],
        "duration_ms": int(duration_ms),
        "suites": suites,
        "policy": {
            "min_pass_rate": float(policy.get("min_pass_rate", 1.0)),
            "on_failure": str(policy.get("on_failure", "block")),
        },
        "report": report,
        "interpreter": interpreter,
    }
