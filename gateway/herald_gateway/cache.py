"""Per-user response cache in Redis, invalidated by events, with a TTL as backstop.

Keys carry a generation number per (entity, user): invalidating bumps the generation,
so a value computed from a service answer that raced with an invalidation is written
under the old generation and never read. Redis trouble never fails a request: the
cache is then bypassed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from herald_common.events import Envelope, NotificationCreated
from herald_common.redis_client import inbox_version_key
from prometheus_client import Counter

log = logging.getLogger(__name__)

CACHE = Counter("herald_gateway_cache_total", "Gateway cache lookups", ["entity", "result"])
INVALIDATIONS = Counter(
    "herald_gateway_cache_invalidations_total", "Cache invalidations", ["entity", "reason"]
)

ME, RECOMMENDATIONS, UNREAD, UNSEEN, INBOX = "me", "recommendations", "unread", "unseen", "inbox"
ENTITIES = (ME, RECOMMENDATIONS, UNREAD, UNSEEN, INBOX)
# Every inbox change (new, read, seen, archived, snoozed, woken, deleted) moves the
# counts and the pages. These values also carry the user's inbox version
# (herald_common.redis_client.inbox_version_key), which the notifications service bumps
# before it pushes a change, so a push never races an event-driven invalidation.
COUNTS = (UNREAD, UNSEEN, INBOX)


# The root query fields whose answers come only from cached entities, and those entities:
# an operation made of these alone is cached whole (OPERATION), keyed by its text,
# variables and the generations of every entity it reads.
ROOT_ENTITIES: dict[str, tuple[str, ...]] = {
    "__typename": (),
    "me": (ME,),
    "recommendations": (RECOMMENDATIONS,),
    "unreadCount": (UNREAD,),
    "unseenCount": (UNSEEN,),
    "notifications": (INBOX,),
}
OPERATION = "operation"


def operation_entities(root_fields: frozenset[str] | None) -> tuple[str, ...] | None:
    """The entities a query with these root fields reads, or None when it reads anything
    else (then only its fields' own caches apply)."""
    if not root_fields or not root_fields <= ROOT_ENTITIES.keys():
        return None
    return tuple(sorted({e for f in root_fields for e in ROOT_ENTITIES[f]}))


class ResponseCache:
    """get-or-load per user and entity, whole operations, and invalidation.

    A value is stored as ``<generation>\n<json>`` under a key without the generation;
    one MGET reads the generation counters and the value together, and a value whose
    stamp is not the current generation is a miss. A value computed while an
    invalidation raced past is stamped with the old generation, so it is never served.
    """

    def __init__(
        self, redis: Any, ttl_seconds: int = 60, enabled: bool = True, prefix: str = "herald:gw"
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.enabled = enabled and redis is not None

    def _gen_key(self, entity: str, user_id: str) -> str:
        return f"{self.prefix}:gen:{entity}:{user_id}"

    def _value_key(self, entity: str, user_id: str, variant: str) -> str:
        return f"{self.prefix}:{entity}:{user_id}:{variant}"

    def _gen_keys(self, entities: tuple[str, ...], user_id: str) -> list[str]:
        """The counters a value of ``entities`` depends on: a generation per entity and,
        for the inbox entities, the user's inbox version (which the notifications service
        bumps before it pushes a change)."""
        keys = [self._gen_key(e, user_id) for e in entities]
        if any(e in COUNTS for e in entities):
            keys.append(inbox_version_key(user_id))
        return keys

    async def _read(self, gen_keys: list[str], value_key: str) -> tuple[str, str | None]:
        """``(generation, json)`` in one round trip; json is None on a miss."""
        *gens, raw = await self.redis.mget([*gen_keys, value_key])
        gen = ".".join(g or "0" for g in gens)
        if raw is not None:
            stamp, _, body = raw.partition("\n")
            if stamp == gen:
                return gen, body
        return gen, None

    async def _write(self, value_key: str, gen: str, body: str) -> None:
        try:
            await self.redis.set(value_key, f"{gen}\n{body}", ex=self.ttl)
        except Exception:
            log.warning("cache write failed", exc_info=True)

    async def _lookup(
        self, label: str, entities: tuple[str, ...], user_id: str, value_key: str
    ) -> tuple[str, str | None] | None:
        """The generation and the cached text (None: not cached), counted as a hit or a
        miss of ``label``; None when the cache could not be read (counted as an error)."""
        try:
            gen, raw = await self._read(self._gen_keys(entities, user_id), value_key)
        except Exception:
            log.warning("cache read failed", exc_info=True)
            CACHE.labels(label, "error").inc()
            return None
        CACHE.labels(label, "miss" if raw is None else "hit").inc()
        return gen, raw

    async def get_or_load(
        self,
        entity: str,
        user_id: str,
        load: Callable[[], Awaitable[Any]],
        variant: str = "",
    ) -> Any:
        """The cached value, or ``load()``'s result (then cached). Errors are not cached."""
        if not self.enabled:
            return await load()
        value_key = self._value_key(entity, user_id, variant)
        found = await self._lookup(entity, (entity,), user_id, value_key)
        if found is None:
            return await load()
        gen, raw = found
        if raw is not None:
            return json.loads(raw)
        value = await load()
        await self._write(value_key, gen, json.dumps(value))
        return value

    async def get_or_execute(
        self,
        user_id: str,
        entities: tuple[str, ...],
        operation: str,
        execute: Callable[[], Awaitable[dict[str, Any]]],
    ) -> str | dict[str, Any]:
        """A whole query's answer: the cached JSON text, or ``execute()``'s result, cached
        when it has data and no errors. ``operation`` identifies the document, operation
        name and variables."""
        if not self.enabled:
            return await execute()
        variant = hashlib.blake2b(operation.encode(), digest_size=16).hexdigest()
        value_key = self._value_key(OPERATION, user_id, variant)
        found = await self._lookup(OPERATION, entities, user_id, value_key)
        if found is None:
            return await execute()
        gen, raw = found
        if raw is not None:
            return raw
        result = await execute()
        if set(result) == {"data"} and result["data"] is not None:
            await self._write(value_key, gen, json.dumps(result, separators=(",", ":")))
        return result

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
