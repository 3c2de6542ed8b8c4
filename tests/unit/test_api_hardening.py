"""The API's guards route by route: one scope table, bounded bodies, tokens that always expire,
an audit trail that names the authenticated principal, and registration that trusts only the
pipeline. No AWS: the guards and validation answer before any route touches a service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes import FakePackTable

from attune_packs import wiring
from attune_packs.api.app import guard
from attune_packs.api.bounds import MAX_JSON_DEPTH, MAX_MULTIPART_BYTES, json_depth
from attune_packs.api.install_routes import parse_upload_form
from attune_packs.api.routes import openapi_document
from attune_packs.api.scopes import ROUTE_SCOPES, route_of, scope_for
from attune_packs.errors import InvalidRequestError
from attune_packs.models import InstallRequest
from attune_packs.services.installations import start_installation
from attune_packs.services.tokens import MAX_TTL_DAYS, AuthError, create_token, list_tokens, verify_token
from testkit.api import api_event, call

RANK = {"read": 0, "install": 1, "admin": 2}


def concrete(template: str) -> str:
    return "/api/v1" + template.replace("{", "x-").replace("}", "")


# --- one scope table ------------------------------------------------------------------------------


def test_the_scope_table_lists_exactly_the_routes_of_the_api() -> None:
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in json.loads(openapi_document())["paths"].items()
        for method in operations
    }
    assert documented == set(ROUTE_SCOPES)


def test_the_document_states_each_routes_scope_from_the_table() -> None:
    for path, operations in json.loads(openapi_document())["paths"].items():
        for method, operation in operations.items():
            scope = ROUTE_SCOPES[(method.upper(), path.removeprefix("/api/v1"))]
            assert operation["security"] == [{"bearerAuth": [scope]}] and operation["x-required-scope"] == scope


@pytest.mark.parametrize(("method", "template"), sorted(ROUTE_SCOPES))
@pytest.mark.parametrize("token", [None, "read", "install", "admin"])
def test_each_route_needs_its_scope(method: str, template: str, token: str | None) -> None:
    needed = ROUTE_SCOPES[(method, template)]
    path = concrete(template)
    assert route_of(method, path) == (method, template)
    headers = {"Content-Type": "multipart/form-data; boundary=x"} if template == "/packs/upload" else {}
    body = "--x--\r\n" if template == "/packs/upload" else ({} if method in {"POST", "PUT"} else None)
    refused = guard(api_event(method, path, scopes=token, body=body, headers=headers))
    if token is None:
        assert refused is not None and refused.status_code == 401
    elif RANK[token] < RANK[needed]:
        assert refused is not None and refused.status_code == 403
        assert needed in json.loads(refused.body)["error"]
    else:
        assert refused is None


def test_literal_routes_win_over_templates() -> None:
    assert scope_for("GET", "/api/v1/packs/installs/api-1") == "read"
    assert route_of("GET", "/api/v1/packs/installs/api-1") == ("GET", "/packs/installs/{installation_id}")
    assert route_of("GET", "/api/v1/packs/slack/tests/latest") == ("GET", "/packs/{ref}/tests/latest")
    assert route_of("GET", "/api/v1/packs/slack/actions") == ("GET", "/packs/{ref}/{component_type}")
    assert scope_for("GET", "/api/v1/tokens") == "admin"
    assert scope_for("GET", "/api/v1/no/such/route") is None


def test_a_read_token_cannot_list_tokens() -> None:
    status, body = call(api_event("GET", "/api/v1/tokens", scopes="read"))
    assert status == 403 and body["code"] == "FORBIDDEN"
    status, body = call(api_event("GET", "/api/v1/tokens", scopes="install"))
    assert status == 403


# --- bodies bounded before parsing ----------------------------------------------------------------


def test_a_200_kb_body_nested_100_000_deep_is_400_not_a_fault() -> None:
    body = "[" * 100_000 + "]" * 100_000
    assert len(body) == 200_000
    status, payload = call(api_event("POST", "/api/v1/packs/download", scopes="install", body=body))
    assert (status, payload["code"]) == (400, "JSON_TOO_DEEP")


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert json_depth('{"a": "[[[[[[[[[[", "b": [1, {"c": "\\"]]]"}]}') == 3
    assert json_depth("[" * (MAX_JSON_DEPTH + 5)) == MAX_JSON_DEPTH + 1
    assert json_depth("") == 0


@pytest.mark.parametrize("route", ["/api/v1/packs/install", "/api/v1/tokens", "/api/v1/packs/register-batch"])
def test_deep_bodies_are_refused_on_every_json_route(route: str) -> None:
    nested: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        nested = {"a": nested}
    status, payload = call(api_event("POST", route, scopes="admin", body={"packs": ["x"], "n": nested}))
    assert (status, payload["code"]) == (400, "JSON_TOO_DEEP")


def test_an_upload_over_the_multipart_limit_is_told_to_use_the_presigned_route() -> None:
    body = "x" * (MAX_MULTIPART_BYTES + 1)
    event = api_event(
        "POST",
        "/api/v1/packs/upload",
        scopes="install",
        body=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    status, payload = call(event)
    assert status == 413 and payload["code"] == "UPLOAD_TOO_LARGE"
    assert payload["details"]["presigned_route"] == "/api/v1/packs/uploads"


def test_an_upload_must_be_multipart() -> None:
    status, payload = call(api_event("POST", "/api/v1/packs/upload", scopes="install", body={"pack": "x"}))
    assert (status, payload["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")


def multipart(fields: dict[str, tuple[str | None, bytes]], boundary: str = "----attune") -> tuple[str, bytes]:
    parts = []
    for name, (filename, content) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_the_upload_form_reads_attunes_fields() -> None:
    archive = bytes(range(256)) * 10
    content_type, body = multipart(
        {
            "pack": ("my pack.tar.gz", archive),
            "force": (None, b"true"),
            "skip_tests": (None, b"false"),
            "other": (None, b"ignored"),
        }
    )
    form = parse_upload_form(content_type, body)
    assert (form.filename, form.content, form.force, form.skip_tests) == ("my pack.tar.gz", archive, True, False)
    content_type, body = multipart({"force": (None, b"true")})
    with pytest.raises(InvalidRequestError, match="'pack'"):
        parse_upload_form(content_type, body)


# --- tokens always expire -------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [None, 0, -1, MAX_TTL_DAYS + 1, "5", True, 1.5])
def test_ttl_days_is_a_positive_integer_up_to_the_maximum(ttl: Any) -> None:
    body = {"name": "ci", "scopes": ["read"], "ttl_days": ttl}
    event = api_event("POST", "/api/v1/tokens", scopes="admin", body=body)
    status, payload = call(event)
    assert (status, payload["code"]) == (400, "INVALID_REQUEST")
    assert payload["details"][0]["field"] == "ttl_days"
    with pytest.raises(InvalidRequestError):
        create_token(FakePackTable(), name="ci", scopes=["read"], ttl_days=ttl)


def test_a_stored_token_without_expiry_is_listed_and_never_accepted() -> None:
    table = FakePackTable()
    created = create_token(table, name="new", scopes=["read"], ttl_days=MAX_TTL_DAYS)
    legacy = create_token(table, name="legacy", scopes=["admin"])
    item = table.items[(f"TOKEN#{legacy.info.token_id}", "TOKEN")]
    del item["expires_at"]
    assert {t.name: t.expires_at for t in list_tokens(table)}["legacy"] is None
    with pytest.raises(AuthError, match="expiry"):
        verify_token(table, f"Bearer {legacy.token}")
    assert verify_token(table, f"Bearer {created.token}").name == "new"


# --- the audit trail names the principal ----------------------------------------------------------


class Executions:
    state_machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m"

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        created = name not in self.started
        self.started.setdefault(name, payload)
        return f"arn:{name}", created


def test_started_by_is_the_principal_whatever_the_request_said() -> None:
    executions = Executions()
    request = InstallRequest(packs=["slack"], started_by="admin:alice (approved)")
    started = start_installation(request, executions, started_by="api:0123456789ab")
    [payload] = executions.started.values()
    assert payload["started_by"] == started["started_by"] == "api:0123456789ab"


def test_attunes_install_request_starts_an_installation_recording_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    executions = Executions()
    monkeypatch.setattr(wiring, "executions", lambda: executions)
    body = {
        "source": "slack@2.1.0",
        "ref_spec": None,
        "skip_tests": True,
        "skip_deps": True,
        "client_label": "alice via the web UI",
    }
    status, payload = call(api_event("POST", "/api/v1/packs/install", scopes="install", body=body))
    assert status == 202, payload
    [request] = executions.started.values()
    assert request["packs"] == ["slack@2.1.0"] and request["skip_tests"] and request["skip_dependencies"]
    assert request["started_by"] == "api:000000000000" == payload["data"]["started_by"]
    assert request["client_label"] == "alice via the web UI"


def test_a_caller_cannot_write_started_by() -> None:
    body = {"packs": ["slack"], "started_by": "admin:alice (approved)"}
    status, payload = call(api_event("POST", "/api/v1/packs/install", scopes="install", body=body))
    assert status == 400 and payload["details"][0]["field"] == "started_by"


# --- registration trusts only the pipeline --------------------------------------------------------

INLINE_BUILD = {
    "pack_ref": "evil",
    "environments": {"python": {"artifact": "https://attacker.example/env.tar.gz", "env_hash": "x", "cached": True}},
    "duration_ms": 1,
    "test_result": {"status": "passed", "total_tests": 99, "passed": 99, "failed": 0},
}


@pytest.mark.parametrize(
    "result",
    [
        INLINE_BUILD,
        {"pack_ref": "evil", "test_result": {"status": "passed"}},
        {"pack_ref": "evil", "failed": True, "error_type": "X"},
    ],
)
def test_register_batch_refuses_inline_build_and_test_results(result: dict[str, Any]) -> None:
    body = {"pack_paths": ["s3://packs/archives/sha256/" + "a" * 64 + ".tar.gz"], "build_results": [result]}
    status, payload = call(api_event("POST", "/api/v1/packs/register-batch", scopes="install", body=body))
    assert status == 400 and payload["code"] == "INVALID_REQUEST"
    assert payload["details"][0]["field"].startswith("build_results")


def test_register_batch_refuses_what_only_the_state_machine_sets() -> None:
    for field, value in (("requested_by", "admin:alice"), ("installation_id", "api-x")):
        body = {"pack_paths": ["s3://packs/a.tar.gz"], field: value}
        status, payload = call(api_event("POST", "/api/v1/packs/register-batch", scopes="install", body=body))
        assert status == 400 and payload["details"][0]["field"] == field


# --- revocation takes effect within the authorizer's cache time ------------------------------------

REVOCATION_BOUND_SECONDS = 60  # stated in docs/api.md


def test_the_authorizer_cache_bounds_how_long_a_revoked_token_still_works() -> None:
    from attune_cli.template import StackResources

    root = Path(__file__).resolve().parents[2]
    stack = StackResources.load(root)
    _api_id, api = stack.single("AWS::Serverless::Api")
    auth = api["Properties"]["Auth"]
    identity = auth["Authorizers"][auth["DefaultAuthorizer"]]["Identity"]
    assert 0 < int(identity["ReauthorizeEvery"]) <= REVOCATION_BOUND_SECONDS
    assert f"**{REVOCATION_BOUND_SECONDS} seconds**" in (root / "docs" / "api.md").read_text()


# --- the OpenAPI document says what the API answers -------------------------------------------------


def test_the_document_is_valid_and_declares_the_statuses_the_api_answers() -> None:
    from openapi_spec_validator import validate

    document = json.loads(openapi_document())
    validate(document)
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    operations = [(m, p, o) for p, ops in document["paths"].items() for m, o in ops.items()]
    for method, path, operation in operations:
        statuses = set(operation["responses"])
        assert "422" not in statuses, f"{method} {path} documents a 422 it never answers"
        assert {"401", "403"} <= statuses
        for status in statuses - {"200", "201", "202"}:
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= statuses
    paths = document["paths"]
    install = paths["/api/v1/packs/install"]["post"]
    assert "202" in install["responses"] and "200" not in install["responses"]
    assert install["requestBody"]["content"]["application/json"]["examples"]
    assert "202" in paths["/api/v1/packs/upload"]["post"]["responses"]
    assert "multipart/form-data" in paths["/api/v1/packs/upload"]["post"]["requestBody"]["content"]
    assert {"200", "202"} <= set(paths["/api/v1/packs/build-envs"]["post"]["responses"])
    assert "HTTPValidationError" not in json.dumps(document)
