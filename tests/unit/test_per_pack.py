"""The per-pack guard: one pack's error is that pack's failure, a bug is INTERNAL_ERROR."""

from __future__ import annotations

import pytest

from attune_packs.errors import InternalError, ManifestError, ThrottledError
from attune_packs.services.stages.per_pack import PackFailures, bugs_as_internal_errors


def test_a_typed_error_becomes_the_packs_failure_with_its_code_and_details() -> None:
    failures = PackFailures("register")

    with failures.guard("s3://b/a.tar.gz", "a") as attempt:
        raise ManifestError("a.yaml: line 2", error_code="MANIFEST_DUPLICATE_KEY", details=[{"line": 2}])

    assert attempt.failed
    [failure] = failures.failed
    assert (failure.source, failure.pack_ref, failure.error_code) == ("s3://b/a.tar.gz", "a", "MANIFEST_DUPLICATE_KEY")
    assert failure.details == [{"line": 2}]


def test_an_unexpected_exception_is_internal_error_naming_its_type_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = PackFailures("dependencies")

    with failures.guard("s3://b/a.tar.gz") as attempt:
        attempt.pack_ref = "a"
        raise KeyError("version")

    [failure] = failures.failed
    assert (failure.error_code, failure.pack_ref, failure.retriable) == ("INTERNAL_ERROR", "a", False)
    assert failure.details == {"exception_type": "KeyError", "stage": "dependencies"}
    assert "KeyError" in failure.error
    assert "Traceback" in caplog.text


def test_a_block_that_succeeds_records_nothing() -> None:
    failures = PackFailures("download")

    with failures.guard("x") as attempt:
        pass

    assert not attempt.failed and failures.failed == []


def test_a_transient_error_propagates_unless_the_stage_reports_it_per_pack() -> None:
    with pytest.raises(ThrottledError), PackFailures("register").guard("x"):
        raise ThrottledError("Rate exceeded")

    per_pack = PackFailures("download", propagate_transient=False)
    with per_pack.guard("x"):
        raise ThrottledError("Rate exceeded")
    assert [(f.error_code, f.retriable) for f in per_pack.failed] == [("THROTTLED", True)]


def test_long_detail_lists_are_cut_with_a_count() -> None:
    failures = PackFailures("register")

    with failures.guard("x"):
        raise ManifestError("many", details=[{"problem": str(n)} for n in range(60)])

    details = failures.failed[0].details
    assert len(details) == 51 and details[-1] == {"problem": "... and 10 more"}


def test_a_bug_in_single_pack_work_is_raised_as_internal_error() -> None:
    with pytest.raises(InternalError) as raised, bugs_as_internal_errors("build"):
        raise TypeError("unsupported operand")

    assert raised.value.error_code == "INTERNAL_ERROR"
    assert raised.value.details == {"exception_type": "TypeError", "stage": "build"}


def test_a_typed_error_in_single_pack_work_passes_unchanged() -> None:
    with pytest.raises(ManifestError), bugs_as_internal_errors("build"):
        raise ManifestError("bad")
