"""The users service's route authorization matrix (generated from its OpenAPI), plus the
one ownership rule a user can test here: another user's account is not reachable."""

from __future__ import annotations

import pytest
from herald_common.auth import TokenIssuer
from herald_testing.authz import ADMIN, CALLERS, PUBLIC, USER, check_routes

pytestmark = pytest.mark.integration

POLICY = {
    "GET /.well-known/jwks.json": PUBLIC,
    "POST /v1/auth/register": PUBLIC,
    "POST /v1/auth/login": PUBLIC,
    "POST /v1/auth/refresh": PUBLIC,
    "POST /v1/auth/logout": USER,
    "POST /v1/users/unsubscribe/{token}": PUBLIC,
    "GET /v1/users/me": USER,
    "PATCH /v1/users/me": USER,
    "PATCH /v1/users/me/preferences": USER,
    "DELETE /v1/users/me": USER,
    "GET /v1/users": ADMIN,
    "GET /v1/users/{user_id}": ADMIN,
}


async def test_route_matrix(users, signing_key) -> None:
    user = users.bearer((await users.register("matrix@example.com"))["access_token"])
    admin = users.bearer(await users.admin_token())
    registered = 0

    async def fresh_user() -> dict[str, str]:
        nonlocal registered
        registered += 1
        tokens = await users.register(f"matrix-{registered}@example.com")
        return users.bearer(tokens["access_token"])

    async def fresh_admin() -> dict[str, str]:
        return users.bearer(await users.admin_token())

    fresh = (fresh_user, fresh_admin)
    settings = users.settings
    issuer = TokenIssuer(signing_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    matrix = await check_routes(
        users.client,
        POLICY,
        user=user,
        admin=admin,
        issuer=issuer,
        redis_url=settings.redis_url,
        destructive={"POST /v1/auth/logout": fresh, "DELETE /v1/users/me": fresh},
    )
    assert len(matrix.rows) == len(CALLERS) * len(POLICY)


async def test_another_users_account_is_out_of_reach(users) -> None:
    ann = await users.register("ann-matrix@example.com")
    bob = await users.register("bob-matrix@example.com")
    r = await users.client.get(
        f"/v1/users/{ann['user']['id']}", headers=users.bearer(bob["access_token"])
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    # "me" is always the token's own user.
    r = await users.client.get("/v1/users/me", headers=users.bearer(bob["access_token"]))
    assert r.json()["id"] == bob["user"]["id"]
