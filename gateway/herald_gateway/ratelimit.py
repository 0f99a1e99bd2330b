"""Per-user (per-address when anonymous) request rate limit, in Redis.

A fixed one-minute window per caller: simple, shared by every gateway replica, and
cheap (one script call per request: INCR, and EXPIRE on the window's first). Redis trouble lets requests through: the limit protects
the services, it must not take the API down with it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter

from herald_gateway.errors import GraphQLFailure

log = logging.getLogger(__name__)

REFUSED = Counter("herald_gateway_rate_limited_total", "Requests refused by the rate limit")
WINDOW_SECONDS = 60
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RateLimiter:
    def __init__(
        self, redis: Any, per_minute: int, clock: Any = time.time, prefix: str = "herald:gw"
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_minute = per_minute
        self.clock = clock
        # One round trip per request: the window's count, its expiry set by the first.
        self._count = redis.register_script(COUNT_SCRIPT) if redis is not None else None

    async def check(self, caller: str) -> None:
        """Count one request of ``caller``; raise RATE_LIMITED over the limit."""
        if self._count is None or self.per_minute <= 0:
            return
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        key = f"{self.prefix}:rate:{caller}:{window}"
        try:
            count = await self._count(keys=[key], args=[WINDOW_SECONDS * 2])
        except Exception:
            log.warning("rate limit check failed; letting the request through", exc_info=True)
            return
        if int(count) > self.per_minute:
            REFUSED.inc()
            retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now))
            raise GraphQLFailure(
                f"too many requests: the limit is {self.per_minute} per minute",
                "RATE_LIMITED",
                retry_after=retry_after,
            )
