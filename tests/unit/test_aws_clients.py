"""One retry layer: every boto3 client gets botocore's standard retries from one place; adapters
page with boto3's paginators and turn what botocore gave up on into retriable errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from attune_packs.adapters import clients
from attune_packs.adapters.codebuild import CodeBuildStarter
from attune_packs.adapters.stepfunctions import StepFunctionsExecutions
from attune_packs.errors import ThrottledError

ARN = "arn:aws:states:us-east-1:123456789012:execution:attune-install-packs:api-1"


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    clients.reset_clients()
    yield
    clients.reset_clients()


@pytest.mark.parametrize("service", ["s3", "stepfunctions", "codebuild", "logs", "lambda", "dynamodb"])
def test_every_client_retries_in_botocore_standard_mode_with_bounded_attempts_and_timeouts(service: str) -> None:
    config = clients.client(service).meta.config

    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert (config.connect_timeout, config.read_timeout) == (5, 60)
    assert clients.client(service) is clients.client(service), "one client per process"


def _event(event_id: int) -> dict[str, object]:
    import datetime

    return {"timestamp": datetime.datetime(2026, 1, 1), "type": "PassStateEntered", "id": event_id}


def test_an_execution_history_is_read_through_every_page() -> None:
    sfn = clients.client("stepfunctions")
    executions = StepFunctionsExecutions(sfn, "arn:aws:states:us-east-1:123456789012:stateMachine:install-packs")
    with Stubber(sfn) as stub:
        stub.add_response(
            "get_execution_history",
            {"events": [_event(1), _event(2)], "nextToken": "page-2"},
            {"executionArn": ARN, "reverseOrder": False, "maxResults": 1000},
        )
        stub.add_response(
            "get_execution_history",
            {"events": [_event(3)]},
            {"executionArn": ARN, "reverseOrder": False, "maxResults": 1000, "nextToken": "page-2"},
        )

        events = executions.history(ARN)

        stub.assert_no_pending_responses()
    assert [e["id"] for e in events] == [1, 2, 3]


def test_a_throttled_build_start_is_one_call_then_a_retriable_error_for_the_state_machine() -> None:
    codebuild = clients.client("codebuild")
    starter = CodeBuildStarter(codebuild, "environments")
    with Stubber(codebuild) as stub:
        stub.add_client_error("start_build", service_error_code="ThrottlingException", http_status_code=400)

        with pytest.raises(ThrottledError):
            starter.start(buildspec="version: 0.2", environment={}, timeout_minutes=5, idempotency_token="t")

        stub.assert_no_pending_responses()
