"""The HTTP API (API Gateway REST proxy): every /api/v1 route, through powertools' resolver."""

from typing import Any

from attune_packs import wiring
from attune_packs.api.routes import app, handle
from attune_packs.observability import api_route, count_api_response, observed
from attune_packs.settings import ServeApiSettings


@observed
@wiring.configured(ServeApiSettings)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = handle(event, context)
    count_api_response(api_route(app, event), response)
    return response
