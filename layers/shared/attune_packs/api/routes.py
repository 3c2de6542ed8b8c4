"""Routes of the HTTP API, all under /api/v1. Each route parses, calls one service, shapes.

Every response body is ``{"data": ...}`` on success and ``{"error", "code", "details"?}`` on
failure. Scopes come from the Lambda authorizer's context (``read`` < ``install`` < ``admin``);
a route needing more than the token carries is 403.
"""

from __future__ import annotations

import json
import re
import uuid
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from attune_packs import wiring
from attune_packs.edge import logger, parse_request
from attune_packs.errors import (
    AttuneError,
    IdempotencyMismatchError,
    InvalidRequestError,
    NotFoundError,
    RegistrationConflictError,
    SourceError,
    TransientError,
)
from attune_packs.models import (
    COMPONENT_TYPES,
    MAX_PACKS_PER_INSTALLATION,
    BuildEnvsRequest,
    DependenciesRequest,
    DownloadRequest,
    InstallRequest,
    RegisterRequest,
    Reported,
)
from attune_packs.services import catalog, installations, tokens
from attune_packs.services import managed_indices as index_admin
from attune_packs.services.tokens import AuthError, ForbiddenError, TokenInfo, scope_for

MAX_BODY_BYTES = 256 * 1024
MAX_UPLOAD_BYTES = 512 * 2**20
PREFIX = "/api/v1"


def _serialize(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


app = APIGatewayRestResolver(enable_validation=True, serializer=_serialize)


# --- errors: one body shape, mapped once -------------------------------------------------------


def error_response(status: int, message: str, code: str, details: Any = None) -> Response:
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
_CONFLICT_CODES = {
    "PACK_HAS_DEPENDENTS",
    "DEPENDENT_CONFLICT",
    "DEPENDENCY_CHANGED",
    "ROLLBACK_UNAVAILABLE",
    "LOCK_MISMATCH",
}


def status_of(error: AttuneError) -> int:
    if error.error_code in _CONFLICT_CODES:
        return int(HTTPStatus.CONFLICT)
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return int(status)
    return int(HTTPStatus.UNPROCESSABLE_ENTITY) if error.error_code != "INTERNAL_ERROR" else 500


@app.exception_handler(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response:
    if any(e.get("type") == "json_invalid" for e in error.errors()):
        return error_response(400, "the body is not valid JSON", "INVALID_JSON")
    details = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "(body)", "problem": e.get("msg")}
        for e in error.errors()
    ]
    return error_response(400, "invalid request", "INVALID_REQUEST", details)


@app.exception_handler(AttuneError)
def _attune_error(error: AttuneError) -> Response:
    status = status_of(error)
    if status >= 500:
        logger.exception("fault while serving a request")
        return error_response(status, "internal error", "INTERNAL_ERROR")
    return error_response(status, error.message, error.error_code, error.details)


@app.exception_handler(Exception)
def _fault(error: Exception) -> Response:
    logger.exception("unexpected fault while serving a request")
    return error_response(500, "internal error; the request id is in the logs", "INTERNAL_ERROR")


@app.not_found
def _not_found(_error: Exception) -> Response:
    return error_response(404, f"no route {app.current_event.http_method} {app.current_event.path}", "NOT_FOUND")


# --- guards: authorisation, body size, content type (before routing and validation) -----------


def caller() -> TokenInfo:
    return _caller(app.current_event.raw_event)


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


def _header(event: dict[str, Any], name: str) -> str:
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if k.lower() == name), "")


def guard(event: dict[str, Any]) -> Response | None:
    """Refuse a request before any route, validation or AWS call: credentials first, then the
    body's size, media type and syntax."""
    method, path = str(event.get("httpMethod", "")).upper(), str(event.get("path", ""))
    try:
        needed = scope_for(method, path)
        if not _caller(event).allows(needed):
            raise ForbiddenError(f"this token lacks the '{needed}' scope needed for {method} {path}")
    except AttuneError as error:
        return _attune_error(error)
    if method in {"POST", "PUT", "PATCH"} and event.get("body"):
        body = str(event["body"])
        if len(body.encode()) > MAX_BODY_BYTES:
            return error_response(413, f"request body over {MAX_BODY_BYTES} bytes", "PAYLOAD_TOO_LARGE")
        if _header(event, "content-type").split(";")[0].strip().lower() != "application/json":
            return error_response(415, "send the body as application/json", "UNSUPPORTED_MEDIA_TYPE")
        try:
            json.loads(body)
        except ValueError as exc:
            return error_response(400, f"the body is not valid JSON: {exc}", "INVALID_JSON")
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


def data(payload: Any, status: int = 200, **extra: Any) -> Response[dict[str, Any]]:
    body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    return Response(status_code=status, content_type="application/json", body={"data": body, **extra})


# --- stage endpoints -----------------------------------------------------------------------------


@app.post(f"{PREFIX}/packs/download")
def download(request: DownloadRequest) -> Response[dict[str, Any]]:
    from attune_packs.services.stages.download import download_packs

    _no_report_key(request)
    return data(
        download_packs(request, wiring.object_store(), wiring.settings(), stored_indices=wiring.stored_indices())
    )


@app.post(f"{PREFIX}/packs/dependencies")
def dependencies(request: DependenciesRequest) -> Response[dict[str, Any]]:
    from attune_packs.services.stages.dependencies import analyze_dependencies

    _no_report_key(request)
    return data(analyze_dependencies(request, wiring.object_store(), wiring.pack_table(), wiring.settings()))


@app.post(f"{PREFIX}/packs/build-envs")
def build_envs(request: BuildEnvsRequest) -> Response[dict[str, Any]]:
    """Builds can outlast API Gateway's 29 s: the work runs asynchronously; poll the status URL."""
    installation_id = f"build-{uuid.uuid4().hex}"
    installations.record_async_build(installation_id, wiring.object_store(), "RUNNING")
    wiring.async_invoker().invoke_build_envs(installation_id, request.model_dump(mode="json"))
    return data(
        {"installation_id": installation_id, "status_url": f"{PREFIX}/packs/installs/{installation_id}"}, status=202
    )


@app.post(f"{PREFIX}/packs/register-batch")
def register_batch(request: RegisterRequest) -> Response[dict[str, Any]]:
    from attune_packs.services.stages.register import RegistryPolicy, register_packs

    _no_report_key(request)
    policy = RegistryPolicy(keep_versions=wiring.settings().keep_versions)
    return data(register_packs(request, store=wiring.object_store(), table=wiring.pack_table(), policy=policy))


def _no_report_key(request: Reported) -> None:
    """Stage reports belong to state machine executions: an API client may not write one."""
    if request.report_key is not None:
        raise InvalidRequestError(
            "invalid request: report_key: reserved for the state machine",
            details=[{"field": "report_key", "problem": "reserved for the state machine"}],
        )


# --- installations -------------------------------------------------------------------------------


class InstallBody(InstallRequest):
    """``packs[]`` or a single ``source``; the rest as the state machine takes it."""

    model_config = ConfigDict(extra="forbid")
    packs: list[str] = Field(default_factory=list, max_length=MAX_PACKS_PER_INSTALLATION)  # type: ignore[assignment]
    source: str | None = None
    lock: dict[str, Any] | None = Field(
        default=None, description="a lockfile (docs/lockfile.md): install exactly it, or LOCK_MISMATCH (409)"
    )

    @model_validator(mode="after")
    def _stages_accept_it(self) -> InstallBody:  # type: ignore[override]
        return self  # checked on the InstallRequest made of packs[] and source


@app.post(f"{PREFIX}/packs/install")
def install(body: InstallBody) -> Response[dict[str, Any]]:
    _no_pins(body)
    packs = [*body.packs, *([body.source] if body.source else [])]
    if not packs and body.lock is not None:
        from attune_packs.domain.lockfile import parse_lockfile

        packs = parse_lockfile(body.lock).requested_sources()
    if not packs:
        raise InvalidRequestError("give packs[] or source", details=[{"field": "packs", "problem": "empty"}])
    fields = body.model_dump(exclude={"packs", "source", "lock", "locked", "locked_requirements"})
    fields["started_by"] = fields.get("started_by") or f"api:{caller().token_id}"
    request = parse_request(InstallRequest, {"packs": packs, **fields})
    if body.lock is not None:  # verified now, synchronously (bounded as a plan); pins enforced by the stages
        from attune_packs.services.lockfile import locked_install_request

        request = locked_install_request(
            request,
            body.lock,
            wiring.object_store(),
            wiring.pack_table(),
            wiring.settings(),
            stored_indices=wiring.stored_indices(),
        )
    key = (app.current_event.headers or {}).get("idempotency-key") or (app.current_event.headers or {}).get(
        "Idempotency-Key"
    )
    started = installations.start_installation(request, wiring.executions(), idempotency_key=key)
    return data({**started, "status_url": f"{PREFIX}/packs/installs/{started['installation_id']}"}, status=202)


def _no_pins(body: InstallBody) -> None:
    """``locked`` pins come from a verified lockfile only: a client sends ``lock``."""
    for name in ("locked", "locked_requirements"):
        if getattr(body, name) is not None:
            raise InvalidRequestError(
                f"invalid request: {name}: set from a verified lockfile; send the lockfile as lock",
                details=[{"field": name, "problem": "send lock instead"}],
            )


def _plan_request(body: InstallBody) -> InstallRequest:
    _no_pins(body)
    packs = [*body.packs, *([body.source] if body.source else [])]
    if not packs:
        raise InvalidRequestError("give packs[] or source", details=[{"field": "packs", "problem": "empty"}])
    fields = body.model_dump(exclude={"packs", "source", "lock", "locked", "locked_requirements"})
    return parse_request(InstallRequest, {"packs": packs, **fields})


@app.post(f"{PREFIX}/packs/plan")
def plan(body: InstallBody) -> Response[dict[str, Any]]:
    """What ``POST /packs/install`` with this body would do, and no side effect. Synchronous:
    bounded by the body's ``timeout`` for all downloads together (API Gateway answers within 29 s,
    so keep it under that), at most MAX_PACKS_PER_INSTALLATION packs and the configured number of
    dependency rounds."""
    from attune_packs.services.plan import plan_install

    request = _plan_request(body)
    planned = plan_install(
        request, wiring.object_store(), wiring.pack_table(), wiring.settings(), stored_indices=wiring.stored_indices()
    )
    return data(planned)


@app.post(f"{PREFIX}/packs/lock")
def lock(body: InstallBody) -> Response[dict[str, Any]]:
    """The lockfile (docs/lockfile.md) of what ``POST /packs/install`` with this body would install:
    its plan, with Python requirements resolved (uv) to exact versions and hashes. Synchronous and
    bounded as ``/packs/plan``; where uv is not available (Lambda) a pack with Python requirements
    is ``LOCK_UNVERIFIABLE``: lock with the CLI."""
    from attune_packs.services.lockfile import lock_install

    request = _plan_request(body)
    locked = lock_install(
        request, wiring.object_store(), wiring.pack_table(), wiring.settings(), stored_indices=wiring.stored_indices()
    )
    return data(locked)


@app.get(f"{PREFIX}/packs/installs/<installation_id>")
def installation(installation_id: str) -> Response[dict[str, Any]]:
    if installation_id.startswith("build-"):
        return data(installations.async_build_status(installation_id, wiring.object_store()))
    from attune_packs.services.lockfile import installation_lock

    status = installations.installation_status(installation_id, wiring.executions(), wiring.object_store())
    status["lock"] = installation_lock(
        installation_id, status, wiring.object_store(), wiring.pack_table(), wiring.settings()
    )
    status["lock_url"] = f"{PREFIX}/packs/installs/{installation_id}/lock" if status["lock"] else None
    return data(status)


@app.get(f"{PREFIX}/packs/installs/<installation_id>/lock")
def installation_lockfile(installation_id: str) -> Response[dict[str, Any]]:
    """The lockfile of a finished installation (reports/installs/<id>/lock.json), as stored."""
    from attune_packs.services.lockfile import installation_lock, read_installation_lock

    status = installations.installation_status(installation_id, wiring.executions(), wiring.object_store())
    installation_lock(installation_id, status, wiring.object_store(), wiring.pack_table(), wiring.settings())
    return Response(
        status_code=200,
        content_type="application/json",
        body=read_installation_lock(wiring.object_store(), installation_id),
    )


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = "application/gzip"


@app.post(f"{PREFIX}/packs/uploads")
def create_upload(body: UploadBody) -> Response[dict[str, Any]]:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", body.filename.rsplit("/", 1)[-1])
    if not name.endswith((".tar.gz", ".tgz", ".zip")):
        raise InvalidRequestError(
            "upload a .tar.gz, .tgz or .zip archive",
            details=[{"field": "filename", "problem": "unsupported extension"}],
        )
    store = wiring.object_store()
    key = f"uploads/{uuid.uuid4().hex}/{name}"
    form = store.presigned_post(key, max_bytes=MAX_UPLOAD_BYTES, content_type=body.content_type)
    return data(
        {
            "upload": form,
            "key": key,
            "max_bytes": MAX_UPLOAD_BYTES,
            "installation_id": installations.upload_installation_name(store.bucket, key),
        },
        status=201,
    )


# --- registry ------------------------------------------------------------------------------------


@app.get(f"{PREFIX}/packs")
def list_packs(
    page: Annotated[int, Query(ge=1)] = 1, page_size: Annotated[int, Query(ge=1, le=100)] = 20
) -> Response[dict[str, Any]]:
    packs = sorted(catalog.list_packs(wiring.pack_table()), key=lambda p: p["ref"])
    start = (page - 1) * page_size
    return data(
        packs[start : start + page_size],
        pagination={
            "page": page,
            "page_size": page_size,
            "total": len(packs),
            "pages": max(1, -(-len(packs) // page_size)),
        },
    )


@app.get(f"{PREFIX}/packs/<ref>")
def show_pack(ref: str) -> Response[dict[str, Any]]:
    return data(catalog.show_pack(wiring.pack_table(), ref))


@app.delete(f"{PREFIX}/packs/<ref>")
def remove_pack(ref: str, force: Annotated[bool, Query()] = False) -> Response[dict[str, Any]]:
    from attune_packs.services import lifecycle

    return data(lifecycle.remove_pack(wiring.pack_table(), ref, force=force, requested_by=f"api:{caller().token_id}"))


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(default=None, max_length=64)
    force: bool = False


@app.post(f"{PREFIX}/packs/<ref>/rollback")
def rollback_pack(ref: str, body: RollbackBody) -> Response[dict[str, Any]]:
    from attune_packs.services import lifecycle

    result = lifecycle.rollback_pack(
        wiring.pack_table(),
        wiring.object_store(),
        ref,
        body.version,
        force=body.force,
        requested_by=f"api:{caller().token_id}",
    )
    return data(result)


@app.get(f"{PREFIX}/components/<component_type>")
def list_components(
    component_type: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> Response[dict[str, Any]]:
    return data(catalog.list_components(wiring.pack_table(), component_type, limit=limit, cursor=cursor))


@app.get(f"{PREFIX}/packs/<ref>/<component_type>")
def pack_components(ref: str, component_type: str) -> Response[dict[str, Any]]:
    if component_type not in COMPONENT_TYPES:
        raise NotFoundError(f"unknown component type {component_type!r}; one of {', '.join(COMPONENT_TYPES)}")
    return data(catalog.show_pack(wiring.pack_table(), ref)["components"].get(component_type, []))


# --- registry indices ----------------------------------------------------------------------------


@app.get(f"{PREFIX}/pack-indices")
def list_indices() -> Response[dict[str, Any]]:
    return data([r.model_dump() for r in index_admin.list_indices(wiring.pack_table())])


@app.post(f"{PREFIX}/pack-indices")
def create_index(body: index_admin.IndexInput) -> Response[dict[str, Any]]:
    index_admin.check_index_location(body, wiring.settings())
    return data(index_admin.create_index(wiring.pack_table(), body), status=201)


@app.put(f"{PREFIX}/pack-indices/<index_id>")
def update_index(index_id: str, body: index_admin.IndexInput) -> Response[dict[str, Any]]:
    index_admin.check_index_location(body, wiring.settings())
    return data(index_admin.update_index(wiring.pack_table(), index_id, body))


@app.delete(f"{PREFIX}/pack-indices/<index_id>")
def delete_index(index_id: str) -> Response[dict[str, Any]]:
    index_admin.delete_index(wiring.pack_table(), index_id)
    return data({"deleted": index_id})


@app.get(f"{PREFIX}/pack-indices/packs")
def search_index_packs(q: Annotated[str, Query(max_length=100)] = "") -> Response[dict[str, Any]]:
    return data(index_admin.search_packs(wiring.pack_table(), wiring.object_store(), wiring.settings(), q))


@app.get(f"{PREFIX}/pack-indices/packs/<ref>")
def index_pack(ref: str) -> Response[dict[str, Any]]:
    found = index_admin.search_packs(wiring.pack_table(), wiring.object_store(), wiring.settings(), "", ref=ref)
    if not found:
        raise NotFoundError(f"no registry index offers {ref!r}")
    return data(found)


# --- API tokens (admin) ------------------------------------------------------------------------


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=3)
    ttl_days: int | None = Field(default=90, ge=1, le=3650)


@app.get(f"{PREFIX}/tokens")
def list_api_tokens() -> Response[dict[str, Any]]:
    return data([t.model_dump() for t in tokens.list_tokens(wiring.pack_table())])


@app.post(f"{PREFIX}/tokens")
def create_api_token(body: TokenBody) -> Response[dict[str, Any]]:
    created = tokens.create_token(wiring.pack_table(), name=body.name, scopes=body.scopes, ttl_days=body.ttl_days)
    return data({"token": created.token, **created.info.model_dump()}, status=201)


@app.delete(f"{PREFIX}/tokens/<token_id>")
def revoke_api_token(token_id: str) -> Response[dict[str, Any]]:
    return data(tokens.revoke_token(wiring.pack_table(), token_id).model_dump())


# --- OpenAPI -------------------------------------------------------------------------------------


@app.get(f"{PREFIX}/openapi.json")
def openapi() -> Response[dict[str, Any]]:
    return Response(status_code=200, content_type="application/json", body=json.loads(openapi_document()))


def openapi_document() -> str:
    return app.get_openapi_json_schema(title="Attune Pack Installer API", version="1.0.0")
