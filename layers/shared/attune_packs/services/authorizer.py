"""The Lambda authorizer's decision: a bearer token becomes an IAM policy plus scope context.

API Gateway caches the answer per token for a short time, so the policy allows the whole API and
the scopes travel in the context; the API function checks the scope each route needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from attune_packs.adapters.dynamodb import PackTable
from attune_packs.services.tokens import verify_token


class TokenAuthorizerEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)
    type: str = "TOKEN"
    authorization_token: str | None = Field(default=None, alias="authorizationToken")
    method_arn: str = Field(alias="methodArn")


def api_wide_arn(method_arn: str) -> str:
    """arn:aws:execute-api:region:account:api-id/stage/METHOD/path -> .../stage/*/*"""
    head, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{head}/{stage}/*/*"


def authorize(event: TokenAuthorizerEvent, table: PackTable) -> dict[str, Any]:
    """Raises AuthError for bad credentials (the function then answers "Unauthorized", a 401)."""
    info = verify_token(table, event.authorization_token)
    return {
        "principalId": f"token:{info.token_id}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": api_wide_arn(event.method_arn)}
            ],
        },
        "context": {"token_id": info.token_id, "name": info.name, "scopes": " ".join(info.scopes)},
    }
