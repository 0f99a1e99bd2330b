"""Redis client factory (caching, token deny-list, rate limits, real-time fan-out)."""

from __future__ import annotations

import redis.asyncio as aioredis

from herald_common.settings import HeraldSettings


def create_redis(settings: HeraldSettings) -> aioredis.Redis:
    return aioredis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=5,
        retry_on_timeout=True,
    )


def user_channel(user_id: str) -> str:
    """Pub/sub channel that carries a user's new notifications to subscriptions."""
    return f"herald:notifications:{user_id}"


def inbox_version_key(user_id: str) -> str:
    """Counter of a user's inbox: the notifications service bumps it after every change
    it makes to the inbox and before it pushes that change. Gateway caches of inbox reads
    (counts, pages) carry its value in their keys, so a client that re-reads its inbox on a
    push never gets an answer cached before the change."""
    return f"herald:inbox-version:{user_id}"


# The counter only has to outlive the cached reads it guards (minutes).
INBOX_VERSION_TTL_SECONDS = 86_400


def bump_inbox_versions(pipe: aioredis.client.Pipeline, user_ids: set[str]) -> None:
    """Queue the bump of each user's inbox version on ``pipe`` (before its pushes)."""
    for user_id in sorted(user_ids):
        key = inbox_version_key(user_id)
        pipe.incr(key)
        pipe.expire(key, INBOX_VERSION_TTL_SECONDS)


def revoked_key(jti: str) -> str:
    """Deny-list key of a revoked token id (expires with the token)."""
    return f"herald:revoked:{jti}"


# Where revoked token ids are announced; every gateway process listens once
# (herald_gateway.revocations) and closes the WebSockets holding that token.
REVOCATIONS_CHANNEL = "herald:revocations"


async def revoke_token(redis: aioredis.Redis, jti: str, ttl_seconds: int) -> None:
    """Deny-list ``jti`` for ``ttl_seconds`` and announce it, in one pipeline.

    The deny-list entry is written before the announcement in the same MULTI/EXEC, so
    a listener that re-checks the deny-list on an announcement already sees it.
    """
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(revoked_key(jti), "1", ex=ttl_seconds)
        pipe.publish(REVOCATIONS_CHANNEL, jti)
        await pipe.execute()
