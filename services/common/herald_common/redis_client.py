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


def revoked_key(jti: str) -> str:
    """Deny-list key of a revoked token id (expires with the token)."""
    return f"herald:revoked:{jti}"
