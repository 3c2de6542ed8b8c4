"""The resolver every route module registers on, the one error mapping, and the guards that run
before any route: credentials and scope (``scopes.ROUTE_SCOPES``), body size, media type and depth.

Every response body is ``{"data": ...}`` on success and ``{"error", "code", "details"?}`` on
failure.
"""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel

from attune_packs.api.bounds import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_MULTIPART_BYTES, json_depth
from attune_packs.api.scopes import PREFIX, scope_for
from attune_packs.edge import logger
from attune_packs.errors import (
    AttuneError,
    IdempotencyMismatchError,
    InvalidRequestError,
    NotFoundError,
    RegistrationConflictError,
    SourceError,
    TransientError,
)
from attune_packs.services.tokens import AuthError, ForbiddenError, TokenInfo

__all__ = ["PREFIX", "app", "caller", "data", "error_response", "handle", "principal"]

# Routes that take multipart/form-data instead of JSON (Attune's web UI upload).
MULTIPART_ROUTES = {("POST", f"{PREFIX}/packs/upload")}


def _serialize(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


app = APIGatewayRestResolver(enable_validation=True, serializer=_serialize)


# --- errors: one body shape, mapped once -------------------------------------------------------


def error_response(status: int, message: str, code: str, details: Any = None) -> Response[Any]:
    body: dict[str, Any] = {"error": message, "code": code}
    if details is not None:
        body["details"] = details
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


_STATUS = [
    (AuthError, HTTPStatus.UNAUTHORIZED),
    (ForbiddenError, HTTPStatus.FORBIDDEN),
    (NotFoundError, HTTPStatus.NOT_FOUND),
    (IdempotencyMismatchError, HTTPStatus.CONFLICT),
    (RegistrationConflictError, HTTPStatus.CONFLICT),
    (InvalidRequestError, HTTPStatus.BAD_REQUEST),
    (SourceError, HTTPStatus.BAD_REQUEST),
    (TransientError, HTTPStatus.SERVICE_UNAVAILABLE),
]

# Codes that mean "the registry's state does not allow this now": a conflict, not a bad request.
_CONFLICT_CODES = {"PACK_HAS_DEPENDENTS", "DEPENDENT_CONFLICT", "DEPENDENCY_CHANGED", "ROLLBACK_UNAVAILABLE"}
# Codes that are about the size of what was sent.
_TOO_LARGE_CODES = {"PAYLOAD_TOO_LARGE", "UPLOAD_TOO_LARGE"}


def status_of(error: AttuneError) -> int:
    if error.error_code in _CONFLICT_CODES:
        return int(HTTPStatus.CONFLICT)
    if error.error_code in _TOO_LARGE_CODES:
        return int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return int(status)
    return int(HTTPStatus.UNPROCESSABLE_ENTITY) if error.error_code != "INTERNAL_ERROR" else 500


def _invalid(error: RequestValidationError) -> Response[Any]:
    if any(e.get("type") == "json_invalid" for e in error.errors()):
        return error_response(400, "the body is not valid JSON", "INVALID_JSON")
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "(body)", "problem": e.get("msg")}
        for e in error.errors()
    ]
    return error_response(400, "invalid request", "INVALID_REQUEST", details)


def _attune_error(error: AttuneError) -> Response[Any]:
    status = status_of(error)
    if status >= 500:
        logger.exception("fault while serving a request")
        return error_response(status, "internal error", "INTERNAL_ERROR")
    return error_response(status, error.message, error.error_code, error.details)


def _fault(error: Exception) -> Response[Any]:
    logger.exception("unexpected fault while serving a request")
    return error_response(500, "internal error; the request id is in the logs", "INTERNAL_ERROR")


# Registered by call rather than as decorators: powertools' decorator is untyped and would erase the
# handlers' own types (which ``guard`` relies on).
app.exception_handler(RequestValidationError)(_invalid)
app.exception_handler(AttuneError)(_attune_error)
app.exception_handler(Exception)(_fault)


@app.not_found
def _not_found(_error: Exception) -> Response[Any]:
    return error_response(404, f"no route {app.current_event.http_method} {app.current_event.path}", "NOT_FOUND")


# --- who is calling ----------------------------------------------------------------------------


def caller() -> TokenInfo:
    return _caller(app.current_event.raw_event)


def principal() -> str:
    """The authenticated principal, as the audit trail records it (never anything a body says)."""
    return f"api:{caller().token_id}"


def _caller(event: dict[str, Any]) -> TokenInfo:
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    if not context.get("token_id"):
        raise AuthError("missing or invalid token")
    return TokenInfo(
        token_id=str(context["token_id"]),
        name=str(context.get("name", "")),
        scopes=str(context.get("scopes", "")).split(),
        created_at="",
        expires_at=None,
    )


def header(event: dict[str, Any], name: str) -> str:
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if k.lower() == name.lower()), "")


def body_bytes(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode()


# --- guards: before routing and validation ------------------------------------------------------


def _authorised(event: dict[str, Any], method: str, path: str) -> None:
    who = _caller(event)
    needed = scope_for(method, path)
    if needed is not None and not who.allows(needed):
        raise ForbiddenError(f"this token lacks the '{needed}' scope needed for {method} {path}")


def _body_refusal(event: dict[str, Any], method: str, path: str) -> Response[Any] | None:
    media = header(event, "content-type").split(";")[0].strip().lower()
    if (method, path) in MULTIPART_ROUTES:
        size = len(body_bytes(event))
        if size > MAX_MULTIPART_BYTES:
            return error_response(
                413,
                f"an upload through {PREFIX}/packs/upload may be at most {MAX_MULTIPART_BYTES} bytes ({size} sent): "
                f"for larger archives ask {PREFIX}/packs/uploads for a presigned upload",
                "UPLOAD_TOO_LARGE",
                {"max_bytes": MAX_MULTIPART_BYTES, "presigned_route": f"{PREFIX}/packs/uploads"},
            )
        if media != "multipart/form-data":
            return error_response(415, "send the archive as multipart/form-data", "UNSUPPORTED_MEDIA_TYPE")
        return None
    body = body_bytes(event)
    if len(body) > MAX_BODY_BYTES:
        return error_response(413, f"request body over {MAX_BODY_BYTES} bytes", "PAYLOAD_TOO_LARGE")
    if media != "application/json":
        return error_response(415, "send the body as application/json", "UNSUPPORTED_MEDIA_TYPE")
    text = body.decode("utf-8", errors="replace")
    if json_depth(text) > MAX_JSON_DEPTH:
        return error_response(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels", "JSON_TOO_DEEP")
    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:
        return error_response(400, f"the body is not valid JSON: {exc}", "INVALID_JSON")
    return None


def guard(event: dict[str, Any]) -> Response[Any] | None:
    """Refuse a request before any route, validation or AWS call: credentials and scope first,
    then the body's size, media type, depth and syntax."""
    method, path = str(event.get("httpMethod", "")).upper(), str(event.get("path", ""))
    try:
        _authorised(event, method, path)
    except AttuneError as error:
        return _attune_error(error)
    if method in {"POST", "PUT", "PATCH"} and event.get("body"):
        return _body_refusal(event, method, path)
    return None


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The API function's entry: guards, then the resolver."""
    refused = guard(event)
    if refused is not None:
        return {
            "statusCode": refused.status_code,
            "headers": {"Content-Type": "application/json"},
            "body": refused.body,
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


def data(payload: Any, status: int = 200, **extra: Any) -> Response[Any]:
    body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return Response(status_code=status, content_type="application/json", body={"data": body, **extra})
