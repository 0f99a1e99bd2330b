"""The product facts the gateway enriches with (name, category, price), kept in the
process for a while.

Every ``trackActivity`` names products, and the answers of the products loader repeat
the same few thousand: asking the recommendations service each time cost about half of
the gateway's CPU under activity load. Known products are kept for
``product_cache_seconds`` (a catalog replaced by ``generate`` shows after at most that
long), at most ``product_cache_size`` of them, least recently used out first. Unknown
ids are never kept: a product added to the catalog is accepted on the next call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from herald_common.lru import MISSING, ExpiringLRU

from herald_gateway.cache import CACHE
from herald_gateway.clients.base import CallContext
from herald_gateway.loaders import batch_results

PRODUCTS = "products"
CHUNK = 100  # ids per catalog call

Fetch = Callable[[list[str], CallContext], Awaitable[list[Any]]]


class ProductCatalog:
    """get-or-load of products by id, in chunks, with a time-to-live per product."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_seconds: float,
        size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl = ttl_seconds
        self._clock = clock
        self._entries: ExpiringLRU[str, dict[str, Any]] = ExpiringLRU(size, clock)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, ids: Iterable[str], call: CallContext) -> dict[str, dict[str, Any]]:
        """The known products among ``ids``, by id (unknown ones are left out)."""
        now = self._clock()
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for product_id in dict.fromkeys(ids):
            product = self._entries.get(product_id, now)
            if product is MISSING:
                missing.append(product_id)
            else:
                found[product_id] = product
        if found:
            CACHE.labels(PRODUCTS, "hit").inc(len(found))
        if not missing:
            return found
        CACHE.labels(PRODUCTS, "miss").inc(len(missing))
        chunks = [missing[i : i + CHUNK] for i in range(0, len(missing), CHUNK)]
        answers = await asyncio.gather(*(self._fetch(chunk, call) for chunk in chunks))
        loaded = {k: v for answer in answers for k, v in batch_results(answer).items()}
        found.update(loaded)
        if self.ttl > 0:
            expires = self._clock() + self.ttl
            for product_id, product in loaded.items():
                self._entries.put(product_id, product, expires)
        return found
