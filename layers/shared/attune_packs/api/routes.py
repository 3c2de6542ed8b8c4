"""Routes of the HTTP API, all under /api/v1: the API function's entry.

The routes live in one module per resource (``stage_routes``, ``install_routes``,
``admin_routes``, ``pack_routes``), each registering on the resolver of ``app``; the scope each
needs is in ``scopes.ROUTE_SCOPES``. Importing this module registers them all, in an order where
literal paths come before ``/packs/{ref}/{component_type}``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

# Importing registers the routes; install_routes (/packs/installs/{id}) before pack_routes, whose
# /packs/{ref}/{component_type} would match it too.
from attune_packs.api import admin_routes, install_routes, pack_routes, stage_routes  # noqa: F401
from attune_packs.api.app import PREFIX, app, error_response, guard, handle, status_of
from attune_packs.api.openapi import truthful

__all__ = ["app", "error_response", "guard", "handle", "openapi_document", "status_of"]


@app.get(f"{PREFIX}/openapi.json")
def openapi() -> Response[Any]:
    return Response(status_code=200, content_type="application/json", body=json.loads(openapi_document()))


def openapi_document() -> str:
    document = json.loads(app.get_openapi_json_schema(title="Attune Pack Installer API", version="1.0.0"))
    return json.dumps(truthful(document))
