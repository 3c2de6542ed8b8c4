"""The OpenAPI document, made truthful: response models per status inside the ``{"data": ...}``
envelope, the error model for every refusal the guards and routes answer, and the bearer scheme
with the scope each route needs (from ``scopes.ROUTE_SCOPES``).

powertools generates the document from the routes' request models and ``responses``; it also adds
a 422 "Validation Error" that this API never answers (invalid requests are 400): that one is
replaced here by the statuses the API does answer.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from attune_packs.api.bounds import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_MULTIPART_BYTES
from attune_packs.api.scopes import PREFIX, ROUTE_SCOPES

SCHEME = "bearerAuth"
_ERROR_REF = "#/components/schemas/ErrorBody"


class ErrorBody(BaseModel):
    """Every refusal and fault: a stable code, a message a person can act on, details per field."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    error: str
    code: str = Field(description="stable error code, e.g. INVALID_REQUEST, FORBIDDEN, NOT_FOUND, PAYLOAD_TOO_LARGE")
    details: Any = Field(default=None, description="for INVALID_REQUEST: [{field, problem}]")


@cache
def envelope(model: Any) -> type[BaseModel]:
    """``{"data": <model>}``, named after the model (``list[X]``: ``XListEnvelope``)."""
    args = getattr(model, "__args__", ())
    name = f"{args[0].__name__}List" if args else model.__name__
    return create_model(f"{name}Envelope", __config__=ConfigDict(defer_build=True), data=(model, ...))


def responses(status: int, model: Any, description: str) -> dict[int, Any]:
    return {status: {"description": description, "content": {"application/json": {"model": envelope(model)}}}}


_ERRORS = {
    400: "invalid request: INVALID_REQUEST (details per field), INVALID_JSON, JSON_TOO_DEEP, or a refusal of the "
    "request's content (its code says which)",
    401: "missing, malformed, unknown, expired or revoked token",
    403: "the token lacks the scope this route needs (FORBIDDEN)",
    404: "no such pack, installation, index, token or route (NOT_FOUND)",
    409: "the registry's state does not allow it now (CONFLICT, PACK_HAS_DEPENDENTS, IDEMPOTENCY_MISMATCH, ...)",
    413: f"body over {MAX_BODY_BYTES} bytes (PAYLOAD_TOO_LARGE); uploads over {MAX_MULTIPART_BYTES} bytes "
    "(UPLOAD_TOO_LARGE: use POST /api/v1/packs/uploads)",
    415: "the body is not application/json (multipart/form-data for POST /packs/upload)",
    503: "a transient fault: retry later",
}

INSTALL_EXAMPLES = {
    "registry": {"summary": "a pack from the registry indices", "value": {"packs": ["slack@>=2,<3"]}},
    "attune": {
        "summary": "Attune's InstallPackRequest",
        "value": {
            "source": "https://github.com/org/pack.git",
            "ref_spec": "v1.2.0",
            "skip_tests": False,
            "skip_deps": False,
        },
    },
}
INSTALL_STARTED_EXAMPLE = {
    "data": {
        "installation_id": "api-6f1c0e5b2a7d4c3e9f8a1b2c3d4e5f60",
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:InstallPacks:api-6f1c...",
        "created": True,
        "started_by": "api:0123456789ab",
        "status_url": "/api/v1/packs/installs/api-6f1c0e5b2a7d4c3e9f8a1b2c3d4e5f60",
    }
}


def _template(path: str) -> str:
    return path[len(PREFIX) :] if path.startswith(PREFIX) else path


def _errors_for(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    codes = [401, 403, 503]
    if "requestBody" in operation:
        codes += [400, 413, 415]
    if operation.get("parameters"):
        codes.append(400)
    if "{" in path or method in {"put", "delete"}:
        codes.append(404)
    if method in {"put", "delete"} or path.endswith(("/install", "/register", "/register-batch", "/rollback", "/test")):
        codes.append(409)
    return sorted(set(codes))


def _patch_operation(method: str, path: str, operation: dict[str, Any]) -> None:
    operation["responses"].pop(422, None)
    operation["responses"].pop("422", None)
    for code in _errors_for(method, path, operation):
        operation["responses"].setdefault(
            str(code),
            {"description": _ERRORS[code], "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}}},
        )
    scope = ROUTE_SCOPES[(method.upper(), _template(path))]
    operation["security"] = [{SCHEME: [scope]}]
    operation["x-required-scope"] = scope
    needs = f"Requires a token with the `{scope}` scope."
    operation["description"] = f"{operation.get('description', '')}\n\n{needs}".strip()


def _add_examples(paths: dict[str, Any]) -> None:
    install = paths.get(f"{PREFIX}/packs/install", {}).get("post")
    if install:
        media = install.get("requestBody", {}).get("content", {}).get("application/json", {})
        media["examples"] = INSTALL_EXAMPLES
        started = install["responses"].get("202", {}).get("content", {}).get("application/json", {})
        started["example"] = INSTALL_STARTED_EXAMPLE


def truthful(document: dict[str, Any]) -> dict[str, Any]:
    """Patch powertools' document: errors, security, examples; no HTTPValidationError."""
    paths = document.get("paths", {})
    for path, operations in paths.items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"] = {str(k): v for k, v in operation["responses"].items()}
                _patch_operation(method, path, operation)
    _add_examples(paths)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    text = json.dumps(document)
    for unused in ("HTTPValidationError", "ValidationError"):
        if not re.search(rf'"#/components/schemas/{unused}"', text):
            schemas.pop(unused, None)
    document["components"]["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "atn_<id>_<secret>",
            "description": "An API token (attune-packs token create). Scopes are ranked read < install < admin; "
            "the scope each operation needs is in its `security` and `x-required-scope`.",
        }
    }
    document["security"] = [{SCHEME: []}]
    document.setdefault("info", {})["description"] = (
        "The Attune Pack Installer API: Attune's pack routes on AWS. Bodies are JSON (at most "
        f"{MAX_BODY_BYTES} bytes, nesting at most {MAX_JSON_DEPTH} deep) except POST /packs/upload "
        f'(multipart/form-data, at most {MAX_MULTIPART_BYTES} bytes). Success: {{"data": ...}}; '
        'failure: {"error", "code", "details"?}.'
    )
    return document
