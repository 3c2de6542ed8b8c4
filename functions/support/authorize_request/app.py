"""Lambda TOKEN authorizer: `Authorization: Bearer <token>` -> allow with scopes, or 401."""

from typing import Any

from attune_packs import wiring
from attune_packs.edge import logger, parse_request
from attune_packs.observability import observed
from attune_packs.services.authorizer import TokenAuthorizerEvent, authorize
from attune_packs.services.tokens import AuthError
from attune_packs.settings import AuthorizeRequestSettings


@observed
@wiring.configured(AuthorizeRequestSettings)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return authorize(parse_request(TokenAuthorizerEvent, event), wiring.pack_table())
    except AuthError as error:
        logger.info("refused credentials", extra={"reason": error.message})
        # API Gateway turns exactly this message into a 401 (the UNAUTHORIZED gateway response).
        raise Exception("Unauthorized") from error  # noqa: TRY002 - the contract of Lambda authorizers
