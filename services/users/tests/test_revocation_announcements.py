"""Logout and a reused refresh token announce the revoked access token ids on
``herald:revocations`` (gateways close those WebSockets at once), after deny-listing them."""

from __future__ import annotations

import asyncio
import json

import jwt
import pytest
import redis.asyncio as aioredis
from herald_common.redis_client import REVOCATIONS_CHANNEL, revoked_key

pytestmark = pytest.mark.integration


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def _announced(pubsub, jtis: set[str]) -> set[str]:
    """Announcements received until every id in ``jtis`` was seen (others are ignored:
    the channel is shared with other tests)."""
    seen: set[str] = set()
    while not jtis <= seen:
        message = await asyncio.wait_for(pubsub.get_message(timeout=None), 10)
        if message and message["type"] == "message":
            seen.add(message["data"])
    return seen & jtis


@pytest.fixture
async def announcements(infra):
    client = aioredis.from_url(infra["HERALD_REDIS_URL"], decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(REVOCATIONS_CHANNEL)
    yield client, pubsub
    await pubsub.aclose()
    await client.aclose()


async def test_logout_deny_lists_and_announces(users, announcements) -> None:
    redis, pubsub = announcements
    tokens = await users.register("ann@example.com")
    access = tokens["access_token"]
    out = await users.client.post(
        "/v1/auth/logout",
        content=json.dumps({"refresh_token": tokens["refresh_token"]}),
        headers={**users.bearer(access), "content-type": "application/json"},
    )
    assert out.status_code == 204
    assert await _announced(pubsub, {_jti(access)}) == {_jti(access)}
    # Written in the same pipeline, before the announcement.
    assert await redis.exists(revoked_key(_jti(access)))


async def test_a_reused_refresh_token_announces_the_sessions_access_token(
    users, announcements
) -> None:
    _, pubsub = announcements
    tokens = await users.register("bob@example.com")
    first = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert first.status_code == 200
    rotated = first.json()["access_token"]
    reused = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401
    assert await _announced(pubsub, {_jti(rotated)}) == {_jti(rotated)}
