"""What the gateway does while Redis cannot be reached (gateway/README.md, "When Redis is
down"): the rate limit lets requests through, the cache is skipped (every answer is
loaded from its service), and both work again once Redis answers. Redis sits behind a
fault-injection proxy (:class:`herald_testing.faults.TcpProxy`) that severs the open
connections and refuses new ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from herald_testing import eventually
from herald_testing.faults import TcpProxy

from herald_gateway.cache import CACHE, ME, OPERATION, ResponseCache

pytestmark = pytest.mark.integration


@pytest.fixture
async def proxy(infra) -> AsyncIterator[TcpProxy]:
    proxied = await TcpProxy.for_url(infra["HERALD_REDIS_URL"], 6379).start()
    yield proxied
    await proxied.close()


def _cut(proxy: TcpProxy) -> None:
    proxy.pause()
    proxy.drop_all()


async def test_the_rate_limit_fails_open_and_counts_again_after(gateway_factory, proxy, infra):
    gw = await gateway_factory(
        rate_limit_per_minute=2, redis_url=proxy.url_through(infra["HERALD_REDIS_URL"])
    )
    query = "{ __typename }"  # anonymous: limited per client address

    async def status() -> int:
        return (await gw.gql(query, user=None)).status_code

    assert [await status() for _ in range(3)] == [200, 200, 429]
    _cut(proxy)
    # Over the limit, but it cannot be counted: let through, answered.
    for _ in range(5):
        r = await gw.gql(query, user=None)
        assert r.status_code == 200 and r.json() == {"data": {"__typename": "Query"}}, r.text
    proxy.resume()

    async def limited_again() -> bool:
        return await status() == 429

    await eventually(limited_again, timeout=30, interval=0.2)


async def test_the_cache_is_skipped_and_used_again_after(proxy, infra, unique) -> None:
    client = aioredis.from_url(
        proxy.url_through(infra["HERALD_REDIS_URL"]), decode_responses=True, socket_timeout=5
    )
    cache = ResponseCache(client, ttl_seconds=60, prefix=f"herald:gw:t{unique}")
    user = f"down-{unique}"
    loads: list[str] = []

    async def load() -> dict[str, Any]:
        loads.append("me")
        return {"id": user}

    async def execute() -> dict[str, Any]:
        loads.append("operation")
        return {"data": {"me": {"id": user}}}

    try:
        assert await cache.get_or_load(ME, user, load) == {"id": user}
        assert await cache.get_or_load(ME, user, load) == {"id": user}
        assert loads == ["me"]  # the second answer was cached
        _cut(proxy)
        errors = CACHE.labels(ME, "error")._value.get()
        operation_errors = CACHE.labels(OPERATION, "error")._value.get()
        for _ in range(2):
            assert await cache.get_or_load(ME, user, load) == {"id": user}
            assert await cache.get_or_execute(user, (ME,), "{ me { id } }", execute) == {
                "data": {"me": {"id": user}}
            }
        await cache.invalidate(user, (ME,), "test")  # logged, not raised
        assert loads == ["me", "me", "operation", "me", "operation"]
        assert CACHE.labels(ME, "error")._value.get() == errors + 2
        assert CACHE.labels(OPERATION, "error")._value.get() == operation_errors + 2
        proxy.resume()

        async def cached_again() -> bool:
            before = len(loads)
            await cache.get_or_load(ME, user, load)
            await cache.get_or_load(ME, user, load)
            return len(loads) == before + 1 or len(loads) == before

        await eventually(cached_again, timeout=30, interval=0.2)
    finally:
        await client.aclose()
