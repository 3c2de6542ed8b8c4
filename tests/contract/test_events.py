"""The events in tests/events are what the deployed functions receive.

Each file parses with the model its handler parses it with, and where the template routes it (an
EventBridge rule, an API path, the state machine's Map item), it fits that route.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    EventBridgeModel,
    S3EventNotificationEventBridgeModel,
)
from pydantic import BaseModel, model_validator

from attune_cli.template import StackResources
from attune_packs.models import BuildPackEnvsEvent
from attune_packs.services.authorizer import TokenAuthorizerEvent
from attune_packs.services.build_reports import BuildStateDetail
from testkit.events import event_names, load_event

ROOT = Path(__file__).resolve().parents[2]


class RestRequestWithTokenAuthorizer(APIGatewayProxyEventModel):
    """A REST API request behind a Lambda TOKEN authorizer: ``requestContext.authorizer`` is that authorizer's
    own context (``principalId`` and flat string values such as ``scopes``), not Cognito's claims and scope list."""

    @model_validator(mode="before")
    @classmethod
    def _authorizer_context(cls, event: dict[str, Any]) -> dict[str, Any]:
        context = dict(event["requestContext"])
        authorizer = context.pop("authorizer")
        assert set(authorizer) >= {"principalId", "scopes"}, "what the authorizer answers and the routes read"
        assert all(isinstance(v, str | int | bool) for v in authorizer.values()), "API Gateway passes flat values"
        return {**event, "requestContext": context}


# event file -> (the function that receives it, the model its handler parses it with)
EVENTS: dict[str, tuple[str, type[BaseModel]]] = {
    "api_rest_request": ("ServeApiFunction", RestRequestWithTokenAuthorizer),
    "api_token_authorizer": ("AuthorizeRequestFunction", TokenAuthorizerEvent),
    "build_pack_envs_map_item": ("BuildPackEnvsFunction", BuildPackEnvsEvent),
    "build_pack_envs_direct": ("BuildPackEnvsFunction", BuildPackEnvsEvent),
    "build_pack_envs_async": ("BuildPackEnvsFunction", BuildPackEnvsEvent),
    "codebuild_build_state_change_failed": ("ReportBuildResultFunction", EventBridgeModel),
    "s3_object_created_eventbridge": ("StartUploadInstallFunction", S3EventNotificationEventBridgeModel),
    "s3_object_created_eventbridge_unversioned": ("StartUploadInstallFunction", S3EventNotificationEventBridgeModel),
}


@pytest.fixture(scope="module")
def stack() -> StackResources:
    return StackResources.load(ROOT)


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge pattern matching for what the template uses: literal lists, ``prefix``, nesting.

    A CloudFormation reference (``{"Ref": ...}``) names a resource only known once deployed: any value fits.
    """
    if isinstance(pattern, list):
        return any(matches(p, value) for p in pattern)
    if isinstance(pattern, dict) and set(pattern) == {"prefix"}:
        return isinstance(value, str) and value.startswith(pattern["prefix"])
    if isinstance(pattern, dict) and {"Ref", "Fn::GetAtt"} & set(pattern):
        return value is not None
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(matches(p, value.get(k)) for k, p in pattern.items())
    return bool(pattern == value)


def rule_patterns(stack: StackResources, function: str) -> list[dict[str, Any]]:
    [spec] = [f for f in stack.functions() if f.logical_id == function]
    return [e["Properties"]["Pattern"] for e in spec.events.values() if e["Type"] == "EventBridgeRule"]


def test_every_event_file_says_which_function_receives_it() -> None:
    assert set(event_names()) == set(EVENTS)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_each_event_parses_with_its_handlers_model(name: str, stack: StackResources) -> None:
    function, model = EVENTS[name]
    assert function in {f.logical_id for f in stack.functions()}
    model.model_validate(load_event(name))


@pytest.mark.parametrize(
    "name",
    [
        "codebuild_build_state_change_failed",
        "s3_object_created_eventbridge",
        "s3_object_created_eventbridge_unversioned",
    ],
)
def test_eventbridge_events_match_the_rule_that_routes_them(name: str, stack: StackResources) -> None:
    [pattern] = rule_patterns(stack, EVENTS[name][0])
    event = load_event(name)
    assert matches(pattern, event)
    assert not matches(pattern, {**event, "source": "aws.other"}), "the pattern is not a wildcard"


def test_the_build_state_change_carries_what_the_report_reads() -> None:
    detail = BuildStateDetail.model_validate(load_event("codebuild_build_state_change_failed")["detail"])
    assert detail.build_status == "FAILED" and detail.variable("TASK_TOKEN") == "tok"
    assert detail.failed_phase()[0] == "PRE_BUILD"


def test_the_api_request_is_on_the_functions_api_route(stack: StackResources) -> None:
    [spec] = [f for f in stack.functions() if f.logical_id == "ServeApiFunction"]
    [route] = [e["Properties"] for e in spec.events.values() if e["Type"] == "Api"]
    assert load_event("api_rest_request")["resource"] == route["Path"]


def test_the_map_item_has_exactly_the_payload_the_state_machine_sends() -> None:
    asl = json.loads((ROOT / "statemachine" / "install_packs.asl.json").read_text())
    build_map = asl["States"]["BuildEnvironments"]
    payload = build_map["ItemProcessor"]["States"]["BuildPackEnvironment"]["Parameters"]["Payload"]
    item = load_event("build_pack_envs_map_item")
    assert set(item) == {key.removesuffix(".$") for key in payload}
    assert set(item["options"]) == {key.removesuffix(".$") for key in build_map["ItemSelector"]["options"]}


def test_an_event_is_a_fresh_copy_each_time() -> None:
    first = load_event("api_rest_request")
    first["headers"]["X-Changed"] = "yes"
    assert "X-Changed" not in load_event("api_rest_request")["headers"]
    with pytest.raises(FileNotFoundError, match="have: api_rest_request"):
        load_event("no_such_event")
