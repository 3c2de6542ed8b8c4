"""The scope every route needs: ONE table, read by the guard before any route runs.

Scopes are ranked: ``read`` < ``install`` < ``admin`` (a token holding one also holds those below).
Reading needs ``read``; starting work that adds packs or results needs ``install``; changing or
removing what is installed or configured, and managing tokens, needs ``admin``. A path that is no
route still needs a valid token (API Gateway's authorizer runs first) and then answers 404.
"""

from __future__ import annotations

from typing import Literal

Scope = Literal["read", "install", "admin"]
PREFIX = "/api/v1"

# (method, path template under /api/v1) -> scope. Templates use {name} for one path segment.
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    ("GET", "/openapi.json"): "read",
    # stages, as Attune's core-pack wrappers call them
    ("POST", "/packs/download"): "install",
    ("POST", "/packs/dependencies"): "install",
    ("POST", "/packs/build-envs"): "install",
    ("POST", "/packs/register-batch"): "install",
    ("POST", "/packs/register"): "install",
    # installations and uploads
    ("POST", "/packs/install"): "install",
    ("GET", "/packs/installs/{installation_id}"): "read",
    ("POST", "/packs/uploads"): "install",
    ("POST", "/packs/upload"): "install",
    # the registry
    ("GET", "/packs"): "read",
    ("GET", "/packs/{ref}"): "read",
    ("PUT", "/packs/{ref}"): "admin",
    ("DELETE", "/packs/{ref}"): "admin",
    ("POST", "/packs/{ref}/rollback"): "admin",
    ("GET", "/packs/{ref}/tests"): "read",
    ("GET", "/packs/{ref}/tests/latest"): "read",
    ("GET", "/packs/{ref}/tests/{execution_id}"): "read",
    ("POST", "/packs/{ref}/test"): "install",
    ("GET", "/packs/{ref}/{component_type}"): "read",
    ("GET", "/components/{component_type}"): "read",
    # registry indices
    ("GET", "/pack-indices"): "read",
    ("POST", "/pack-indices"): "admin",
    ("PUT", "/pack-indices/{index_id}"): "admin",
    ("DELETE", "/pack-indices/{index_id}"): "admin",
    ("GET", "/pack-indices/packs"): "read",
    ("GET", "/pack-indices/packs/{ref}"): "read",
    # API tokens
    ("GET", "/tokens"): "admin",
    ("POST", "/tokens"): "admin",
    ("DELETE", "/tokens/{token_id}"): "admin",
}


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def route_of(method: str, path: str) -> tuple[str, str] | None:
    """The table's route for a concrete request, the most literal template winning
    (``/packs/installs/x`` is the installation route, not a pack's components)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    if not path.startswith(PREFIX + "/") and path != PREFIX:
        return None
    wanted = _segments(path[len(PREFIX) :])
    best: tuple[int, tuple[str, str]] | None = None
    for route in ROUTE_SCOPES:
        if route[0] != method:
            continue
        template = _segments(route[1])
        if len(template) != len(wanted):
            continue
        literal = 0
        for part, value in zip(template, wanted, strict=True):
            if part.startswith("{"):
                continue
            if part != value:
                break
            literal += 1
        else:
            if best is None or literal > best[0]:
                best = (literal, route)
    return best[1] if best else None


def scope_for(method: str, path: str) -> Scope | None:
    """The scope the route needs, or None when no route matches (answered 404 after authentication)."""
    route = route_of(method, path)
    return ROUTE_SCOPES[route] if route else None
