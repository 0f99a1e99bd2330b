"""Login rate limits in Redis (fixed windows, shared by every replica of the service).

* per normalized email: failed logins; once ``max_failures`` are reached within the
  window, further attempts for that email are refused until the window ends, even with
  the right password (that is what stops guessing). A successful login clears it.
* per client address: every attempt counts.

Keys hash the email so no address appears in Redis.

Redis unreachable: the limits fail **closed**. A login that cannot be counted is
refused with 503 ``UNAVAILABLE`` (the service's usual error body), before the password
is checked; a failure or success that cannot be recorded refuses the login the same
way. Guessing passwords must not get faster when Redis is down, and a session issued
then could not be used anyway: every verifier refuses tokens while the deny-list cannot
be read (``herald_common.auth.TokenVerifier``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from herald_common.errors import RateLimited, Unavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# Redis cannot be reached (stopped, restarting, network, pool exhausted).
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


@asynccontextmanager
async def _redis_needed() -> AsyncIterator[None]:
    """Turn Redis being unreachable into a typed 503 (fail closed)."""
    try:
        yield
    except _UNREACHABLE as exc:
        log.warning("login rate limit unavailable: Redis cannot be reached", exc_info=True)
        raise Unavailable("logins cannot be checked right now; try again shortly") from exc


@dataclass(frozen=True)
class Limit:
    max_hits: int
    window_seconds: int


class LoginRateLimiter:
    """Counts login attempts and failures; raises :class:`RateLimited` when over."""

    def __init__(self, redis: Any, *, prefix: str, per_email: Limit, per_address: Limit) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_email = per_email
        self.per_address = per_address

    def _email_key(self, email: str) -> str:
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        return f"{self.prefix}:email:{digest}"

    def _address_key(self, address: str) -> str:
        return f"{self.prefix}:addr:{address}"

    async def _ttl(self, key: str, window: int) -> int:
        ttl = int(await self.redis.ttl(key))
        return ttl if ttl > 0 else window

    async def _hit(self, key: str, window: int) -> int:
        """Increment a fixed-window counter; the window starts with the first hit."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        return int(count)

    async def check_attempt(self, email: str, address: str | None) -> None:
        """Count an attempt from ``address``; refuse if the address or email is over
        (:class:`RateLimited`), or if Redis cannot be reached (:class:`Unavailable`)."""
        async with _redis_needed():
            await self._check_attempt(email, address)

    async def _check_attempt(self, email: str, address: str | None) -> None:
        if address:
            key = self._address_key(address)
            hits = await self._hit(key, self.per_address.window_seconds)
            if hits > self.per_address.max_hits:
                raise RateLimited(
                    "too many login attempts from this address; try again later",
                    retry_after=await self._ttl(key, self.per_address.window_seconds),
                )
        key = self._email_key(email)
        failures = int(await self.redis.get(key) or 0)
        if failures >= self.per_email.max_hits:
            raise RateLimited(
                "too many failed logins for this account; try again later",
                retry_after=await self._ttl(key, self.per_email.window_seconds),
                field="email",
            )

    async def record_failure(self, email: str) -> None:
        async with _redis_needed():
            await self._hit(self._email_key(email), self.per_email.window_seconds)

    async def record_success(self, email: str) -> None:
        async with _redis_needed():
            await self.redis.delete(self._email_key(email))
