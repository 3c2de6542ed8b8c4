"""Registry indices and API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, ConfigDict, Field

from attune_packs import wiring
from attune_packs.api.app import PREFIX, app, data
from attune_packs.api.openapi import responses
from attune_packs.errors import NotFoundError
from attune_packs.services import managed_indices as index_admin
from attune_packs.services import tokens
from attune_packs.services.managed_indices import IndexRecord
from attune_packs.services.tokens import DEFAULT_TTL_DAYS, MAX_TTL_DAYS, SCOPES, TokenInfo

# --- registry indices ----------------------------------------------------------------------------


@app.get(f"{PREFIX}/pack-indices", responses=responses(200, list[IndexRecord], "the indices, by position"))
def list_indices() -> Response[Any]:
    return data([r.model_dump() for r in index_admin.list_indices(wiring.pack_table())])


@app.post(f"{PREFIX}/pack-indices", responses=responses(201, IndexRecord, "the index, created"))
def create_index(body: index_admin.IndexInput) -> Response[Any]:
    index_admin.check_index_location(body, wiring.settings())
    return data(index_admin.create_index(wiring.pack_table(), body), status=201)


@app.put(f"{PREFIX}/pack-indices/<index_id>", responses=responses(200, IndexRecord, "the index, updated"))
def update_index(index_id: str, body: index_admin.IndexInput) -> Response[Any]:
    index_admin.check_index_location(body, wiring.settings())
    return data(index_admin.update_index(wiring.pack_table(), index_id, body))


@app.delete(f"{PREFIX}/pack-indices/<index_id>")
def delete_index(index_id: str) -> Response[Any]:
    index_admin.delete_index(wiring.pack_table(), index_id)
    return data({"deleted": index_id})


@app.get(f"{PREFIX}/pack-indices/packs")
def search_index_packs(q: Annotated[str, Query(max_length=100)] = "") -> Response[Any]:
    return data(index_admin.search_packs(wiring.pack_table(), wiring.object_store(), wiring.settings(), q))


@app.get(f"{PREFIX}/pack-indices/packs/<ref>")
def index_pack(ref: str) -> Response[Any]:
    found = index_admin.search_packs(wiring.pack_table(), wiring.object_store(), wiring.settings(), "", ref=ref)
    if not found:
        raise NotFoundError(f"no registry index offers {ref!r}")
    return data(found)


# --- API tokens (admin) ------------------------------------------------------------------------


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=3, description=f"among {', '.join(SCOPES)}")
    ttl_days: int = Field(
        default=DEFAULT_TTL_DAYS,
        ge=1,
        le=MAX_TTL_DAYS,
        strict=True,
        description=f"days until the token expires: a whole number from 1 to {MAX_TTL_DAYS} (null is refused)",
    )


class CreatedTokenOut(TokenInfo):
    token: str = Field(description="the secret, shown this once")


@app.get(f"{PREFIX}/tokens", responses=responses(200, list[TokenInfo], "every token, never its secret"))
def list_api_tokens() -> Response[Any]:
    return data([t.model_dump() for t in tokens.list_tokens(wiring.pack_table())])


@app.post(f"{PREFIX}/tokens", responses=responses(201, CreatedTokenOut, "the token, with its secret"))
def create_api_token(body: TokenBody) -> Response[Any]:
    created = tokens.create_token(wiring.pack_table(), name=body.name, scopes=body.scopes, ttl_days=body.ttl_days)
    return data({"token": created.token, **created.info.model_dump()}, status=201)


@app.delete(f"{PREFIX}/tokens/<token_id>", responses=responses(200, TokenInfo, "the token, revoked"))
def revoke_api_token(token_id: str) -> Response[Any]:
    return data(tokens.revoke_token(wiring.pack_table(), token_id).model_dump())
