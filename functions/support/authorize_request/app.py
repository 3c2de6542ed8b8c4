"""Lambda TOKEN authorizer: `Authorization: Bearer <token>` -> allow with scopes, or 401."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import logger, parse_request
from attune_packs.services.authorizer import TokenAuthorizerEvent, authorize
from attune_packs.services.tokens import AuthError


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return authorize(parse_request(TokenAuthorizerEvent, event), wiring.pack_table())
    except AuthError as error:
        logger.info("refused credentials", extra={"reason": error.message})
        # API Gateway turns exactly this message into a 401 (the UNAUTHORIZED gateway response).
        raise Exception("Unauthorized") from error  # noqa: TRY002 - the contract of Lambda authorizers
