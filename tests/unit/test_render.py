"""What the CLI prints for an installation and for a pack: outcomes, problems and test results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from attune_cli.backends import ExecutionResult
from attune_cli.render import install_report, install_summary, json_text, pack_details

TEST_RESULT = {
    "status": "partial",
    "total_tests": 4,
    "passed": 3,
    "failed": 1,
    "skipped": 0,
    "pass_rate": 0.75,
    "duration_ms": 1234,
    "suites": [{"name": "checks", "failures": [{"name": "test_zero", "message": "expected 0, got 1"}]}],
}


def output(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "COMPLETED",
        "download": {"downloaded_packs": [], "failed_packs": []},
        "dependency_download": {"downloaded_packs": [], "failed_packs": []},
        "dependencies": {"install_order": ["lib", "app"], "errors": [], "conflicts": []},
        "builds": [
            {
                "pack_ref": "app",
                "environments": {
                    "python": {"env_hash": "ab" * 32, "cached": False, "package_count": 2, "artifact": "s3://b/k"}
                },
                "test_result": TEST_RESULT,
            }
        ],
        "register": {
            "registered_packs": [
                {"pack_ref": "app", "pack_version": "1.0.0", "status": "registered", "components_registered": {}}
            ],
            "failed_packs": [],
        },
    }
    base.update(overrides)
    return base


def test_an_installation_with_test_results_reports_them_with_the_first_failure() -> None:
    report = install_report("install-1", ExecutionResult("SUCCEEDED", output(), None, None))
    assert report["outcome"] == "ok"
    assert [t["pack_ref"] for t in report["tests"]] == ["app"]
    text = install_summary(report)
    assert "app  partial: 3/4 passed, 1 failed, 0 skipped (rate 0.75) in 1.2s" in text
    assert "first failure: test_zero: expected 0, got 1" in text


def test_a_conflict_makes_the_outcome_partial_and_is_listed_with_its_stage() -> None:
    conflict = {"pack_ref": "other", "message": "needs lib<1", "error_code": "DEPENDENCY_CONFLICT"}
    dependencies = {"install_order": ["app"], "errors": [], "conflicts": [conflict]}
    report = install_report("install-2", ExecutionResult("SUCCEEDED", output(dependencies=dependencies), None, None))
    assert report["outcome"] == "partial"
    assert "[dependencies] other: DEPENDENCY_CONFLICT: needs lib<1" in install_summary(report)


def test_nothing_registered_is_a_failed_outcome() -> None:
    register = {"registered_packs": [], "failed_packs": []}
    report = install_report("install-3", ExecutionResult("SUCCEEDED", output(register=register), None, None))
    assert report["outcome"] == "failed"


def test_a_pack_shows_its_test_result() -> None:
    pack = {
        "ref": "app",
        "version": "1.0.0",
        "description": "d",
        "test_result": TEST_RESULT,
        "components": {"actions": [{"ref": "app.run", "description": "runs"}]},
        "history": [{"version": "1.0.0", "registered_at": "2026-11-29T00:00:00"}],
    }
    text = pack_details(pack)
    assert "tests: partial: 3/4 passed" in text and "app.run" in text


def test_a_summary_whose_reports_could_not_be_read_still_counts_its_registrations() -> None:
    register = {"summary": {"success_count": 2, "failure_count": 0}, "report": "s3://b/k"}
    out = output(register=register, reports_unavailable=["register"])
    report = install_report("install-4", ExecutionResult("SUCCEEDED", out, None, None))
    assert report["outcome"] == "ok"
    assert "could not be read" in install_summary(report) and "register" in install_summary(report)


def test_a_tests_line_counts_passed_of_the_tests_that_ran() -> None:
    skipped = {**TEST_RESULT, "total_tests": 39, "ran": 28, "passed": 9, "failed": 19, "skipped": 11}
    pack = {"ref": "app", "version": "1.0.0", "test_result": skipped, "components": {}, "history": []}
    assert "9/28 passed, 19 failed, 11 skipped" in pack_details(pack)


def test_a_pack_shows_every_kept_pack_yaml_field() -> None:
    manifest = {
        "ref": "core",
        "name": "core",
        "version": "1.0.0",
        "system": True,
        "enabled": False,
        "tags": ["ops", "core"],
        "email": "ops@example.com",
        "runtimes": ["python", "shell"],
        "python_dependencies": ["requests>=2.28"],
        "meta": {"documentation_url": "https://docs.example.com"},
        "conf_schema": {"type": "object", "properties": {"region": {"type": "string"}}},
        "config": {"region": "eu-west-1"},
        "x_vendor_field": "kept",
        "keywords": [],
        "author": None,
    }
    pack = {"ref": "core", "version": "1.0.0", "system": True, "enabled": False, "manifest": manifest}
    text = pack_details({**pack, "components": {}, "history": []})
    assert "system pack: removing or replacing it needs --force" in text and "enabled: no" in text
    for line in (
        "    tags: ops, core",
        "    email: ops@example.com",
        "    runtimes: python, shell",
        "    python_dependencies: requests>=2.28",
        '    meta: {"documentation_url": "https://docs.example.com"}',
        '    conf_schema: {"type": "object", "properties": {"region": {"type": "string"}}}',
        '    config: {"region": "eu-west-1"}',
        "    x_vendor_field: kept",
    ):
        assert line in text.splitlines()
    assert "keywords:" not in text and "author:" not in text, "unset fields are left out"


def test_fields_kept_in_s3_are_named_with_their_location() -> None:
    document = {"ref": "s3://b/manifests/x.json", "bytes": 90000, "fields": ["conf_schema", "config_schema"]}
    pack = {"ref": "a", "version": "1", "manifest": {"tags": ["t"]}, "manifest_document": document}
    text = pack_details({**pack, "components": {}, "history": []})
    assert "conf_schema, config_schema: kept in s3://b/manifests/x.json (90000 bytes)" in text


JSON_VALUES: list[Any] = [
    {"ref": "big", "components": {"actions": [{"ref": "big.a", "n": 1, "x": 1.5, "ok": True, "none": None}]}},
    [],
    {},
    {"empty": {}, "list": [], "nested": [[], [{}], [1, [2, [3]]]]},
    'ünïcode "quoted" \\ back\nslash\t\u2028',
    [0, -1, 10**30, 1e-7, 1e300, -0.0, 2.5, float("nan"), float("inf"), float("-inf")],
    [True, False, None, "", " "],
    {"k" * 300: "v" * 1000, "🙂": "✓"},
]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_text_is_json_dumps_with_an_indent_of_two(value: Any) -> None:
    assert json_text(value) == json.dumps(value, indent=2)
    assert json_text(value, default=str) == json.dumps(value, indent=2, default=str)


def test_json_text_leaves_what_json_answers_are_not_made_of_to_json_dumps() -> None:
    odd: dict[Any, Any] = {1: "int key", "when": datetime(2026, 1, 1, tzinfo=UTC), "pair": (1, 2)}
    assert json_text(odd, default=str) == json.dumps(odd, indent=2, default=str)
    with pytest.raises(TypeError):
        json_text({"when": datetime(2026, 1, 1, tzinfo=UTC)})  # as json.dumps without a default
