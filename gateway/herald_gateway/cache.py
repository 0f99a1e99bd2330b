"""Per-user response cache in Redis, invalidated by events, with a TTL as backstop.

Keys carry a generation number per (entity, user): invalidating bumps the generation,
so a value computed from a service answer that raced with an invalidation is written
under the old generation and never read. Redis trouble never fails a request: the
cache is then bypassed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from herald_common.events import Envelope, NotificationCreated
from prometheus_client import Counter

log = logging.getLogger(__name__)

CACHE = Counter("herald_gateway_cache_total", "Gateway cache lookups", ["entity", "result"])
INVALIDATIONS = Counter(
    "herald_gateway_cache_invalidations_total", "Cache invalidations", ["entity", "reason"]
)

ME, RECOMMENDATIONS, UNREAD, UNSEEN, INBOX = "me", "recommendations", "unread", "unseen", "inbox"
ENTITIES = (ME, RECOMMENDATIONS, UNREAD, UNSEEN, INBOX)
# Every inbox change (new, read, seen, archived, snoozed, woken, deleted) moves the
# counts and the pages. These reads also carry the user's inbox version
# (herald_common.redis_client.inbox_version_key), which the notifications service bumps
# before it pushes a change, so a push never races an event-driven invalidation.
COUNTS = (UNREAD, UNSEEN, INBOX)


class ResponseCache:
    """get-or-load per user, plus invalidation."""

    def __init__(
        self, redis: Any, ttl_seconds: int = 60, enabled: bool = True, prefix: str = "herald:gw"
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.enabled = enabled and redis is not None

    def _gen_key(self, entity: str, user_id: str) -> str:
        return f"{self.prefix}:gen:{entity}:{user_id}"

    def _value_key(self, entity: str, user_id: str, gen: str, variant: str) -> str:
        return f"{self.prefix}:{entity}:{user_id}:{gen}:{variant}"

    async def get_or_load(
        self,
        entity: str,
        user_id: str,
        load: Callable[[], Awaitable[Any]],
        variant: str = "",
        version_key: str | None = None,
    ) -> Any:
        """The cached value, or ``load()``'s result (then cached). Errors are not cached.
        ``version_key`` names a counter that other components bump on a change: its value
        is part of the key, read (with the generation) before ``load()``."""
        if not self.enabled:
            return await load()
        gen = "0"
        try:
            keys = [self._gen_key(entity, user_id)]
            if version_key is not None:
                keys.append(version_key)
            gen = ".".join(v or "0" for v in await self.redis.mget(keys))
            raw = await self.redis.get(self._value_key(entity, user_id, gen, variant))
        except Exception:
            log.warning("cache read failed", exc_info=True)
            CACHE.labels(entity, "error").inc()
            return await load()
        if raw is not None:
            CACHE.labels(entity, "hit").inc()
            return json.loads(raw)
        CACHE.labels(entity, "miss").inc()
        value = await load()
        try:
            await self.redis.set(
                self._value_key(entity, user_id, gen, variant), json.dumps(value), ex=self.ttl
            )
        except Exception:
            log.warning("cache write failed", exc_info=True)
        return value

    async def invalidate(self, user_id: str, entities: tuple[str, ...], reason: str) -> None:
        if not self.enabled or not user_id:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entity in entities:
                    key = self._gen_key(entity, user_id)
                    pipe.incr(key)
                    # The generation only has to outlive the values it guards.
                    pipe.expire(key, self.ttl * 10)
                await pipe.execute()
        except Exception:
            log.warning("cache invalidation failed", exc_info=True)
            return
        for entity in entities:
            INVALIDATIONS.labels(entity, reason).inc()


def entities_for(event_type: str, payload: Any) -> tuple[str, ...]:
    """Which cached entities an event makes stale."""
    if event_type.startswith("user."):
        return ENTITIES
    if event_type == NotificationCreated.event_type:
        # A new recommendation notification means the recommendations were recomputed.
        if getattr(payload, "type", None) == "recommendation":
            return (*COUNTS, RECOMMENDATIONS)
        return COUNTS
    if event_type.startswith("notification."):
        return COUNTS
    if event_type.startswith("order."):
        # A purchase changes what may be recommended (never what was bought).
        return (RECOMMENDATIONS,)
    return ()


def invalidation_handler(cache: ResponseCache) -> Callable[[Envelope[Any]], Awaitable[None]]:
    """Consumer of the ``gateway.cache`` queue."""

    async def handle(event: Envelope[Any]) -> None:
        """Drop the cached entities of the user the event is about."""
        user_id = getattr(event.payload, "user_id", None)
        entities = entities_for(event.type, event.payload)
        if user_id and entities:
            await cache.invalidate(str(user_id), entities, event.type)

    return handle
