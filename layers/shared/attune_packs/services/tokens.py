"""API tokens: random, shown once, stored only as a hash, scoped, expiring, revocable.

A token reads ``atn_<id>_<secret>``. The table keeps one record per token id
(:mod:`attune_packs.data.tokens`) with the SHA-256 of the whole token, its scopes, expiry and
revocation time; verifying looks the id up and compares the hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from attune_packs.data import tokens as stored
from attune_packs.data.operations import PackTable
from attune_packs.errors import AttuneError, InvalidRequestError, NotFoundError

Scope = Literal["read", "install", "admin"]
SCOPES: tuple[str, ...] = ("read", "install", "admin")
# Each scope includes the ones before it.
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
TOKEN_PATTERN = re.compile(r"^atn_([a-f0-9]{12})_([A-Za-z0-9_-]{32,64})$")
# A token lives ttl_days days: a positive whole number up to this maximum. Every token expires.
DEFAULT_TTL_DAYS = 90
MAX_TTL_DAYS = 365


class AuthError(AttuneError):
    """Missing, malformed, unknown, expired or revoked credentials (HTTP 401)."""

    default_code = "UNAUTHORIZED"


class ForbiddenError(AttuneError):
    """Valid credentials without the scope a route needs (HTTP 403)."""

    default_code = "FORBIDDEN"


class TokenInfo(BaseModel):
    model_config = ConfigDict(defer_build=True)

    token_id: str
    name: str
    scopes: list[str]
    created_at: str = ""
    # None only for tokens stored before every token had to expire: listed, never accepted.
    expires_at: str | None = None
    revoked_at: str | None = None

    def allows(self, needed: str) -> bool:
        return max((_RANK[s] for s in self.scopes if s in _RANK), default=-1) >= _RANK[needed]


class CreatedToken(BaseModel):
    model_config = ConfigDict(defer_build=True)

    token: str
    info: TokenInfo


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    table: PackTable, *, name: str, scopes: list[str], ttl_days: int = DEFAULT_TTL_DAYS, now: datetime | None = None
) -> CreatedToken:
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise InvalidRequestError(f"scopes must be among {', '.join(SCOPES)}")
    if isinstance(ttl_days, bool) or not isinstance(ttl_days, int) or not 1 <= ttl_days <= MAX_TTL_DAYS:
        raise InvalidRequestError(
            f"ttl_days must be a whole number of days from 1 to {MAX_TTL_DAYS}",
            details=[{"field": "ttl_days", "problem": f"an integer from 1 to {MAX_TTL_DAYS}"}],
        )
    now = now or datetime.now(UTC)
    token_id = secrets.token_hex(6)
    token = f"atn_{token_id}_{secrets.token_urlsafe(32)}"
    info = TokenInfo(
        token_id=token_id,
        name=name,
        scopes=sorted(set(scopes), key=_RANK.__getitem__),
        created_at=now.isoformat(),
        expires_at=(now + timedelta(days=ttl_days)).isoformat(),
    )
    stored.save_token(table, token_id, {"hash": _hash(token), **info.model_dump()})
    return CreatedToken(token=token, info=info)


def verify_token(table: PackTable, authorization: str | None, *, now: datetime | None = None) -> TokenInfo:
    """The token's info, or :class:`AuthError` saying what is wrong with the credentials."""
    if not authorization:
        raise AuthError("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("malformed Authorization header: expected 'Bearer <token>'")
    match = TOKEN_PATTERN.fullmatch(token.strip())
    if match is None:
        raise AuthError("malformed token")
    item = stored.read_token(table, match.group(1))
    if item is None or not hmac.compare_digest(str(item.get("hash", "")), _hash(token.strip())):
        raise AuthError("unknown token")
    info = TokenInfo.model_validate(item)
    now = now or datetime.now(UTC)
    if info.revoked_at:
        raise AuthError("token revoked")
    if not info.expires_at:
        raise AuthError("token without an expiry date: create a new one")
    if datetime.fromisoformat(info.expires_at) <= now:
        raise AuthError("token expired")
    return info


def list_tokens(table: PackTable) -> list[TokenInfo]:
    return [TokenInfo.model_validate(item) for item in stored.read_tokens(table)]


def revoke_token(table: PackTable, token_id: str, *, now: datetime | None = None) -> TokenInfo:
    item = stored.read_token(table, token_id)
    if item is None:
        raise NotFoundError(f"no token {token_id!r}")
    item["revoked_at"] = (now or datetime.now(UTC)).isoformat()
    stored.save_token(table, token_id, item)
    return TokenInfo.model_validate(item)


def token_fields(info: TokenInfo) -> dict[str, Any]:
    return info.model_dump()
