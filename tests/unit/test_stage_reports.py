"""Stage reports: whole responses in S3, summaries in the state machine, put back for readers."""

from __future__ import annotations

import json

import pytest
from fakes import FakeObjectStore
from pydantic import ValidationError

from attune_packs.adapters.s3 import S3Location
from attune_packs.buildspec.build_tools import MAX_ANSWER_REQUIREMENTS, task_answer
from attune_packs.models import (
    DownloadedPack,
    DownloadRequest,
    DownloadResponse,
    PackFailure,
    RegisterRequest,
)
from attune_packs.services.reports import answer, expand_installation_output


def download_response(*refs: str, failed: tuple[str, ...] = ()) -> DownloadResponse:
    packs = [
        DownloadedPack(
            source=ref,
            source_type="registry",
            pack_ref=ref,
            pack_version="1.0.0",
            archive=f"s3://packs/archives/sha256/{ref}.tar.gz",
            checksum="sha256:" + "0" * 64,
            size_bytes=10,
            stored=True,
        )
        for ref in refs
    ]
    failures = [PackFailure(source=s, error="gone", error_code="PACK_NOT_FOUND") for s in failed]
    return DownloadResponse(
        downloaded_packs=packs,
        failed_packs=failures,
        pack_paths=[p.archive for p in packs],
        total_count=len(packs) + len(failures),
        success_count=len(packs),
        failure_count=len(failures),
    )


def test_without_a_report_key_the_whole_response_is_the_answer() -> None:
    store = FakeObjectStore()
    body = answer(download_response("a"), DownloadRequest(packs=["a"]), store)
    assert body["downloaded_packs"][0]["pack_ref"] == "a" and body["report"] is None
    assert store.objects == {}


def test_with_a_report_key_the_whole_response_is_stored_and_only_its_summary_answered() -> None:
    store = FakeObjectStore()
    key = "reports/installs/install-1/download.json"
    body = answer(download_response("a", "b"), DownloadRequest(packs=["a", "b"], report_key=key), store)
    assert set(body) == {"pack_paths", "total_count", "success_count", "failure_count", "report"}
    assert body["report"] == f"s3://packs/{key}" and body["success_count"] == 2
    stored = store.get_json(S3Location("packs", key))
    assert [p["pack_ref"] for p in stored["downloaded_packs"]] == ["a", "b"] and stored["report"] == body["report"]


@pytest.mark.parametrize(
    "key",
    [
        "archives/sha256/x.json",
        "reports/installs/../archives/x.json",
        "reports/installs/a/b/c.json",
        "reports/installs/install-1/Download.json",
        "reports/builds/x.json",
    ],
)
def test_a_report_key_outside_the_installation_reports_is_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        RegisterRequest(pack_paths=["s3://packs/archives/sha256/x.tar.gz"], report_key=key)


def test_an_installation_output_is_expanded_from_its_reports_every_dependency_round_together() -> None:
    store = FakeObjectStore()
    prefix = "reports/installs/install-7/"

    def stage(name: str, response: DownloadResponse) -> dict:
        return answer(response, DownloadRequest(packs=["x"], report_key=f"{prefix}{name}.json"), store)

    summary = {
        "installation_id": "install-7",
        "status": "COMPLETED",
        "dependency_rounds": 1,  # resolved, downloaded lib, resolved again, downloaded base: nothing missing
        "download": stage("download", download_response("app")),
        "dependencies": {"install_order": ["base", "lib", "app"], "report": f"s3://packs/{prefix}dependencies-1.json"},
        "register": {"summary": {}},
    }
    stage("dependency-download-0", download_response("lib", failed=("ghost",)))
    stage("dependency-download-1", download_response("base"))
    store.put_bytes(f"{prefix}dependencies-0.json", json.dumps({"install_order": ["lib", "app"]}).encode())
    store.put_bytes(f"{prefix}dependencies-1.json", json.dumps({"install_order": ["base", "lib", "app"]}).encode())

    expanded = expand_installation_output(summary, store)

    assert expanded is not None
    assert [p["pack_ref"] for p in expanded["download"]["downloaded_packs"]] == ["app"]
    rounds = expanded["dependency_download"]
    assert [p["pack_ref"] for p in rounds["downloaded_packs"]] == ["lib", "base"]
    assert [f["source"] for f in rounds["failed_packs"]] == ["ghost"] and rounds["success_count"] == 2
    assert expanded["dependencies"]["install_order"] == ["base", "lib", "app"], "the last round is the whole batch"
    assert expanded["register"] == {"summary": {}}, "no report: the summary stays"
    assert "reports_unavailable" not in expanded


def test_build_references_are_read_back_and_an_unreadable_report_is_named_not_fatal() -> None:
    import hashlib

    store = FakeObjectStore()
    content = json.dumps({"pack_ref": "app", "environments": {}}).encode()
    store.put_bytes("reports/installs/i-1/build-app-1.json", content)
    store.put_bytes("reports/installs/i-1/build-forged-1.json", b'{"pack_ref": "forged", "environments": {}}')
    store.put_bytes("reports/installs/i-1/build-broken.json", json.dumps({"error": "the whole cause"}).encode())
    digest = hashlib.sha256(content).hexdigest()
    summary = {
        "installation_id": "i-1",
        "status": "COMPLETED",
        "download": {"success_count": 1, "report": "s3://packs/reports/installs/i-1/download.json"},
        "builds": [
            {"pack_ref": "app", "report": "s3://packs/reports/installs/i-1/build-app-1.json", "sha256": digest},
            {"pack_ref": "gone", "report": "s3://packs/reports/installs/i-1/build-gone-1.json", "sha256": digest},
            {"pack_ref": "forged", "report": "s3://packs/reports/installs/i-1/build-forged-1.json", "sha256": digest},
            {
                "pack_ref": "broken",
                "failed": True,
                "error_type": "BuildError",
                "error": "short",
                "report": "s3://packs/reports/installs/i-1/build-broken.json",
            },
        ],
    }
    expanded = expand_installation_output(summary, store)
    assert expanded is not None
    assert expanded["builds"][0] == {"pack_ref": "app", "environments": {}}
    assert expanded["builds"][1:3] == summary["builds"][1:3], "missing or not what the build answered: left as is"
    assert expanded["builds"][3]["error"] == "the whole cause"
    assert expanded["download"] == {"report": summary["download"]["report"]}, "unreadable: only where it is"
    assert expanded["reports_unavailable"] == ["download", "build-gone", "build-forged"]


def test_an_output_without_reports_is_returned_as_it_is() -> None:
    output = {"installation_id": "install-9", "status": "COMPLETED", "download": {"success_count": 0}}
    assert expand_installation_output(output, FakeObjectStore()) == output
    assert expand_installation_output(None, FakeObjectStore()) is None


def test_a_build_answers_its_token_without_its_long_lists() -> None:
    failures = [{"name": f"test_{n}", "status": "failed", "message": "x" * 2000} for n in range(20)]
    result = {
        "pack_ref": "big",
        "environments": {
            "python": {"requirements_installed": [f"pkg{n}==1.0" for n in range(400)], "package_count": 400}
        },
        "test_result": {
            "status": "failed",
            "report": "s3://packs/reports/builds/tests/x.json",
            "suites": [{"name": f"suite{n}", "failed": 20, "failures": failures} for n in range(30)],
        },
    }
    compact = task_answer(result)
    assert len(json.dumps(compact)) < 8_000 < len(json.dumps(result))
    assert len(compact["environments"]["python"]["requirements_installed"]) == MAX_ANSWER_REQUIREMENTS
    assert compact["environments"]["python"]["package_count"] == 400
    first = compact["test_result"]["suites"][0]
    assert first["failed"] == 20 and [f["name"] for f in first["failures"]] == ["test_0"]
    assert compact["test_result"]["report"] == result["test_result"]["report"]


def test_a_failed_installation_shows_what_its_stages_reported_before_it_failed() -> None:
    from attune_packs.services.reports import unfinished_installation_output

    store = FakeObjectStore()
    prefix = "reports/installs/install-f/"
    answer(download_response("app"), DownloadRequest(packs=["app"], report_key=f"{prefix}download.json"), store)
    answer(
        download_response("lib", failed=("ghost",)),
        DownloadRequest(packs=["lib"], report_key=f"{prefix}dependency-download-0.json"),
        store,
    )
    store.put_bytes(f"{prefix}dependencies-0.json", json.dumps({"install_order": ["app"]}).encode())
    store.put_bytes(f"{prefix}dependencies-1.json", json.dumps({"install_order": ["lib", "app"]}).encode())

    output = unfinished_installation_output("install-f", store)

    assert output is not None and output["status"] == "UNFINISHED"
    assert [p["pack_ref"] for p in output["download"]["downloaded_packs"]] == ["app"]
    assert [p["pack_ref"] for p in output["dependency_download"]["downloaded_packs"]] == ["lib"]
    assert output["dependencies"]["install_order"] == ["lib", "app"]
    assert "register" not in output and "reports_unavailable" not in output
    assert unfinished_installation_output("install-none", store) is None
