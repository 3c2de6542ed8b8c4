"""Uploads under uploads/: one installation per object version, whatever EventBridge delivers twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

from attune_packs.adapters.s3 import parse_s3_uri
from attune_packs.errors import IdempotencyMismatchError
from attune_packs.services.uploads import handle_object_created, upload_installation_name

EVENTS = Path(__file__).resolve().parents[1] / "events"
BUCKET, KEY = "attune-packs-bucket", "uploads/4f1c/my pack+v1.tar.gz"


class Executions:
    """Step Functions' naming rule: a name with the same input is the same execution, with another
    input it is refused."""

    state_machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m"

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        if name in self.started:
            if self.started[name] != payload:
                raise IdempotencyMismatchError(f"{name} exists with another input")
            return f"arn:{name}", False
        self.started[name] = payload
        return f"arn:{name}", True


def event(
    file: str = "s3_object_created_eventbridge.json", **object_fields: str
) -> S3EventNotificationEventBridgeModel:
    raw = json.loads((EVENTS / file).read_text())
    raw["detail"]["object"].update(object_fields)
    return parse(event=raw, model=S3EventNotificationEventBridgeModel)


@pytest.mark.parametrize(
    "file", ["s3_object_created_eventbridge.json", "s3_object_created_eventbridge_unversioned.json"]
)
def test_a_duplicate_delivery_starts_one_installation(file: str) -> None:
    executions = Executions()
    first = handle_object_created(event(file), executions)
    again = handle_object_created(event(file), executions)
    assert (first["started"], again["started"]) == (True, False)
    assert first["installation_id"] == again["installation_id"] == upload_installation_name(BUCKET, KEY)
    assert len(executions.started) == 1


def test_a_new_version_of_the_same_key_installs_the_new_content() -> None:
    executions = Executions()
    first = handle_object_created(event(), executions)
    second = handle_object_created(
        event(**{"version-id": "v2", "etag": "e2", "sequencer": "0055AED6DCD90281F0"}), executions
    )
    second_again = handle_object_created(event(**{"version-id": "v2", "etag": "e2"}), executions)
    assert first["installation_id"] != second["installation_id"] == second_again["installation_id"]
    assert second["started"] is True and second_again["started"] is False
    [source] = executions.started[second["installation_id"]]["packs"]
    assert parse_s3_uri(source).version_id == "v2" and parse_s3_uri(source).key == KEY


def test_without_versioning_etag_and_sequencer_tell_uploads_apart() -> None:
    executions = Executions()
    file = "s3_object_created_eventbridge_unversioned.json"
    first = handle_object_created(event(file), executions)
    same_bytes_again = handle_object_created(event(file, sequencer="0055AED6DCD90281F0"), executions)
    assert same_bytes_again["started"] is True and same_bytes_again["installation_id"] != first["installation_id"]
    [source] = executions.started[first["installation_id"]]["packs"]
    assert parse_s3_uri(source).key == KEY and parse_s3_uri(source).version_id is None


def test_objects_that_are_not_archives_under_uploads_start_nothing() -> None:
    executions = Executions()
    assert handle_object_created(event(key="uploads/notes.txt"), executions)["started"] is False
    assert handle_object_created(event(key="archives/sha256/x.tar.gz"), executions)["started"] is False
    assert executions.started == {}
