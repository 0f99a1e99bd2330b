"""The authorization matrix of a service's HTTP routes, generated from its OpenAPI.

Each service's ``test_authz_routes.py`` declares who may call each route (``public``,
``user``, ``admin``); :func:`check_routes` fails when a route of ``/openapi.json`` has no
entry, then calls every route as anonymous, with each bad token of
:data:`herald_testing.tokens.FORGED` (garbage, tampered payload, ``alg: none``, HS256
with the public key, expired, revoked, a refresh token as bearer, another key, an
embedded ``jwk`` — the GraphQL matrix's kinds, made against the issuer the service
trusts), as a user and as an admin:

* ``user`` routes: anonymous and every bad token → 401; user and admin → neither 401
  nor 403;
* ``admin`` routes: anonymous and every bad token → 401, a user → 403, an admin →
  neither;
* ``public`` routes: never 401/403 for lack of a token, and never a 5xx.

Path parameters get a placeholder (``matrix-…``); bodies are ``{}``: the refusal comes
before any validation, and an admitted call may answer 400/404 for the placeholder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from herald_common.auth import TokenIssuer

from herald_testing.tokens import FORGED, forged_headers

PUBLIC, USER, ADMIN = "public", "user", "admin"
# Who calls each route: anonymous, every bad token, a user, an admin.
CALLERS = ("anonymous", *FORGED, "user", "admin")
SKIPPED = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc")


@dataclass
class Matrix:
    rows: list[tuple[str, str, int]] = field(default_factory=list)

    def statuses(self, route: str) -> dict[str, int]:
        return {caller: status for r, caller, status in self.rows if r == route}


def routes_of(spec: dict[str, Any]) -> list[str]:
    out = []
    for path, item in spec.get("paths", {}).items():
        if path in SKIPPED:
            continue
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                out.append(f"{method.upper()} {path}")
    return sorted(out)


async def check_routes(
    client: httpx.AsyncClient,
    policy: dict[str, str],
    *,
    user: dict[str, str],
    admin: dict[str, str],
    issuer: TokenIssuer,
    redis_url: str,
    destructive: dict[str, tuple[Callable[[], Awaitable[dict[str, str]]], ...]] | None = None,
) -> Matrix:
    """Check every route against ``policy``; returns the table of statuses.

    ``issuer`` is the token issuer the service trusts and ``redis_url`` the Redis of its
    deny-list: the bad tokens are forged against them (:mod:`herald_testing.tokens`).
    ``destructive`` maps routes that end the caller's token or account (logout, delete)
    to factories of fresh ``(user, admin)`` headers; those routes run last, in that order."""
    destructive = destructive or {}
    spec = (await client.get("/openapi.json")).json()
    routes = routes_of(spec)
    missing = sorted(set(routes) - policy.keys())
    assert not missing, f"routes without an authorization policy: {missing}"
    redis = aioredis.from_url(redis_url)
    try:
        forged = await forged_headers(issuer, redis, user="matrix-forged")
    finally:
        await redis.aclose()
    callers: dict[str, dict[str, str]] = {"anonymous": {}, **forged, "user": user, "admin": admin}
    assert tuple(callers) == CALLERS
    matrix = Matrix()
    order = list(destructive)
    for route in sorted(routes, key=lambda r: order.index(r) + 1 if r in destructive else 0):
        method, path = route.split(" ", 1)
        url = path
        for part in path.split("/"):
            if part.startswith("{") and part.endswith("}"):
                url = url.replace(part, f"matrix-{part[1:-1]}")
        rule = policy[route]
        for caller, headers in callers.items():
            if route in destructive and caller in ("user", "admin"):
                headers = await destructive[route][0 if caller == "user" else 1]()
            kwargs: dict[str, Any] = {"headers": headers}
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            response = await client.request(method, url, **kwargs)
            status = response.status_code
            matrix.rows.append((route, caller, status))
            where = f"{route} as {caller}: {status} {response.text[:300]}"
            assert status < 500, where
            if status in (401, 403):
                body = response.json()
                assert body["error"]["code"] in ("UNAUTHENTICATED", "FORBIDDEN"), where
            if rule == PUBLIC:
                if caller == "anonymous":
                    assert status not in (401, 403), where
            elif caller == "anonymous" or caller in FORGED:
                assert status == 401, where
            elif caller == "user" and rule == ADMIN:
                assert status == 403, where
            else:
                assert status not in (401, 403), where
    return matrix
