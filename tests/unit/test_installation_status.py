"""An installation's status: from its execution while its history lasts, from its stage reports in
S3 afterwards (90 days on AWS, a restart of the local stack)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import FakeObjectStore

from attune_packs.errors import NotFoundError, TransientError
from attune_packs.services.installations import installation_status


class NoExecutions:
    """Step Functions once the execution's history is gone: describe finds nothing."""

    state_machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:install"

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        raise AssertionError("a status never starts anything")

    def describe(self, name_or_arn: str) -> dict[str, Any] | None:
        return None

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        raise AssertionError("no history to read")


def _report(store: FakeObjectStore, installation_id: str, name: str, body: dict[str, Any]) -> None:
    store.add(f"reports/installs/{installation_id}/{name}.json", json.dumps(body).encode())


def test_past_its_history_an_installation_is_answered_from_its_stage_reports() -> None:
    # Given an installation whose stages reported, and whose execution is no longer known
    store = FakeObjectStore()
    registered = {"pack_ref": "svc_pack", "pack_version": "1.0.0", "status": "registered"}
    _report(store, "inst-1", "download", {"downloaded_packs": [{"pack_ref": "svc_pack"}], "failed_packs": []})
    _report(store, "inst-1", "register", {"registered_packs": [registered], "failed_packs": []})

    # When its status is asked
    status = installation_status("inst-1", NoExecutions(), store)

    # Then it says the history is gone, does not guess how the execution ended, and shows the reports
    assert status["status"] == "UNKNOWN"
    assert status["history_available"] is False
    assert status["stages"] == []
    assert "status" not in status["result"]
    assert status["result"]["register"]["registered_packs"] == [registered]
    assert status["result"]["download"]["downloaded_packs"] == [{"pack_ref": "svc_pack"}]


def test_an_installation_nothing_is_known_of_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="no installation 'inst-404'"):
        installation_status("inst-404", NoExecutions(), FakeObjectStore())


class UnreadableStore(FakeObjectStore):
    def head(self, location: Any) -> dict[str, Any] | None:
        raise ConnectionError("S3 is not answering")


def test_past_its_history_an_installation_whose_reports_cannot_be_read_is_a_retriable_fault() -> None:
    with pytest.raises(TransientError, match="cannot be read now"):
        installation_status("inst-1", NoExecutions(), UnreadableStore())
