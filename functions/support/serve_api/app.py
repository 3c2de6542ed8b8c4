"""The HTTP API (API Gateway REST proxy): every /api/v1 route, through powertools' resolver."""

from typing import Any

from attune_packs.api.routes import handle
from attune_packs.edge import logger


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context)
