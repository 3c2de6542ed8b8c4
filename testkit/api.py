"""Calling the HTTP API's Lambda handler in a test: a REST request event from tests/events, a Lambda
context, and the answer as (status, body)."""

from __future__ import annotations

import json
from typing import Any

from testkit.events import load_event


def api_event(
    method: str, path: str, *, scopes: str | None = "read", body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The recorded REST request, for ``method path``, as the authorizer passed it (``scopes=None``:
    no authorizer context at all)."""
    event = load_event("api_rest_request")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    if scopes is None:
        event["requestContext"]["authorizer"] = {}
    else:
        event["requestContext"]["authorizer"]["scopes"] = scopes
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["headers"].update(headers or {})
    return event


class Context:
    function_name = "serve_api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:serve_api"
    aws_request_id = "test"


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    from attune_packs.api.routes import handle

    response = handle(event, Context())
    return response["statusCode"], json.loads(response["body"] or "{}")
