"""Tokens, the authorizer's decision, route scopes, and the API's guards (no AWS needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes import FakePackTable

from attune_packs.api.routes import openapi_document
from attune_packs.api.scopes import scope_for
from attune_packs.services.authorizer import TokenAuthorizerEvent, api_wide_arn, authorize
from attune_packs.services.tokens import AuthError, create_token, revoke_token, verify_token
from testkit.api import api_event, call
from testkit.events import load_event


def test_a_created_token_verifies_and_only_its_hash_is_stored() -> None:
    table = FakePackTable()
    created = create_token(table, name="ci", scopes=["install"])
    info = verify_token(table, f"Bearer {created.token}")
    assert info.scopes == ["install"] and info.allows("read") and not info.allows("admin")
    stored = table.items[(f"TOKEN#{created.info.token_id}", "TOKEN")]
    assert created.token not in json.dumps(stored)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic abc", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer not-a-token", "malformed token"),
        ("Bearer atn_000000000000_" + "x" * 43, "unknown"),
    ],
)
def test_bad_credentials_are_refused_with_the_reason(header: str | None, reason: str) -> None:
    with pytest.raises(AuthError) as caught:
        verify_token(FakePackTable(), header)
    assert reason in caught.value.message


def test_revoked_and_expired_tokens_are_refused() -> None:
    table = FakePackTable()
    revoked = create_token(table, name="a", scopes=["read"])
    revoke_token(table, revoked.info.token_id)
    with pytest.raises(AuthError, match="revoked"):
        verify_token(table, f"Bearer {revoked.token}")
    old = create_token(table, name="b", scopes=["read"], ttl_days=1, now=datetime.now(UTC) - timedelta(days=2))
    with pytest.raises(AuthError, match="expired"):
        verify_token(table, f"Bearer {old.token}")


def test_a_tampered_secret_with_a_real_id_is_refused() -> None:
    table = FakePackTable()
    created = create_token(table, name="a", scopes=["admin"])
    tampered = created.token[:-4] + ("AAAA" if not created.token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthError, match="unknown"):
        verify_token(table, f"Bearer {tampered}")


def test_the_authorizer_allows_the_whole_stage_and_passes_scopes() -> None:
    table = FakePackTable()
    created = create_token(table, name="a", scopes=["install"])
    arn = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/POST/api/v1/packs/install"
    event = {**load_event("api_token_authorizer"), "authorizationToken": f"Bearer {created.token}", "methodArn": arn}
    policy = authorize(TokenAuthorizerEvent.model_validate(event), table)
    assert (
        policy["policyDocument"]["Statement"][0]["Resource"]
        == api_wide_arn(arn)
        == "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/*/*"
    )
    assert policy["context"]["scopes"] == "install"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/packs", "read"),
        ("GET", "/api/v1/openapi.json", "read"),
        ("POST", "/api/v1/packs/install", "install"),
        ("POST", "/api/v1/packs/download", "install"),
        ("DELETE", "/api/v1/packs/slack", "admin"),
        ("POST", "/api/v1/pack-indices", "admin"),
        ("GET", "/api/v1/pack-indices", "read"),
        ("PUT", "/api/v1/pack-indices/abc", "admin"),
    ],
)
def test_route_scopes(method: str, path: str, scope: str) -> None:
    assert scope_for(method, path) == scope


def test_a_request_without_authorizer_context_is_401_and_under_scoped_is_403() -> None:
    status, body = call(api_event("GET", "/api/v1/packs", scopes=None))
    assert status == 401 and body["code"] == "UNAUTHORIZED"
    status, body = call(api_event("POST", "/api/v1/packs/install", scopes="read", body={"packs": ["x"]}))
    assert status == 403 and body["code"] == "FORBIDDEN" and "install" in body["error"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ('{"packs": ["x"', {}, 400, "INVALID_JSON"),
        ("packs=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ({"packs": ["x" * 300_000]}, {}, 413, "PAYLOAD_TOO_LARGE"),
        ({"packs": []}, {}, 400, "INVALID_REQUEST"),
        ({"packs": ["x"], "unknown_field": 1}, {}, 400, "INVALID_REQUEST"),
        ({"packs": "not-a-list"}, {}, 400, "INVALID_REQUEST"),
    ],
)
def test_bad_bodies_get_4xx_before_any_aws_call(body: Any, headers: dict[str, str], status: int, code: str) -> None:
    got, payload = call(api_event("POST", "/api/v1/packs/download", scopes="install", body=body, headers=headers))
    assert (got, payload["code"]) == (status, code)
    if code == "INVALID_REQUEST":
        assert payload["details"] and all({"field", "problem"} <= set(d) for d in payload["details"])


def test_unknown_routes_are_404_in_the_same_shape() -> None:
    status, body = call(api_event("GET", "/api/v1/nothing-here"))
    assert status == 404 and body["code"] == "NOT_FOUND"


def test_the_openapi_document_is_valid_openapi_3() -> None:
    from openapi_spec_validator import validate

    document = json.loads(openapi_document())
    validate(document)
    assert document["openapi"].startswith("3.")
    assert "/api/v1/packs/install" in document["paths"] and "/api/v1/pack-indices/{index_id}" in document["paths"]


def test_the_upload_event_names_its_installation_after_the_object() -> None:
    from aws_lambda_powertools.utilities.parser import parse
    from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel

    from attune_packs.services.uploads import handle_object_created, upload_installation_name

    class Executions:
        state_machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m"

        def __init__(self) -> None:
            self.started: dict[str, dict[str, Any]] = {}

        def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
            created = name not in self.started
            self.started.setdefault(name, payload)
            return f"arn:{name}", created

    event = parse(
        event=load_event("s3_object_created_eventbridge"),
        model=S3EventNotificationEventBridgeModel,
    )
    executions = Executions()
    first = handle_object_created(event, executions)
    again = handle_object_created(event, executions)
    assert first["started"] is True and again["started"] is False and len(executions.started) == 1
    [payload] = executions.started.values()
    version = "?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert payload["packs"] == ["s3://attune-packs-bucket/uploads/4f1c/my pack+v1.tar.gz" + version]
    assert payload["started_by"] == "s3://attune-packs-bucket/uploads/4f1c/my pack+v1.tar.gz"
    assert first["installation_id"] == upload_installation_name("attune-packs-bucket", "uploads/4f1c/my pack+v1.tar.gz")


def test_the_openapi_document_does_not_offer_report_key_which_only_the_state_machine_sets() -> None:
    assert "report_key" not in openapi_document()
