"""``CacheListener`` against the real Redis: announcements reach every cache on the
channel, and a connection the server kills turns the cache off until the listener is
subscribed again, which starts the cache afresh."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from herald_common.replica_cache import CacheListener, UserCache, channel_for
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _cache(store: dict[str, dict[str, Any]]) -> UserCache:
    return UserCache(
        load_users=lambda ids: {i: dict(store[i]) for i in ids if i in store},
        bucket_of=lambda _: 0,
    )


async def test_announcements_reach_every_process_and_a_killed_connection_resets(
    infra, unique
) -> None:
    db = f"t_{unique}_replica"
    store = {"ann": {"_id": "ann", "revision": 1, "promotions": True}}
    caches = [_cache(store), _cache(store)]
    listeners = [CacheListener(c, infra["HERALD_REDIS_URL"], db) for c in caches]
    admin = aioredis.from_url(infra["HERALD_REDIS_URL"], decode_responses=True)
    try:
        for listener in listeners:
            listener.start()
        await eventually(lambda: all(c.enabled for c in caches))
        for cache in caches:
            cache.get_many(["ann"])
        assert all(len(c) == 1 for c in caches)

        # Process 0 applies revision 2: both copies go, the old one never comes back.
        store["ann"] = {"_id": "ann", "revision": 2, "promotions": False}
        await listeners[0].applied("ann", 2)
        await eventually(lambda: all(len(c) == 0 for c in caches))
        assert all(c.get_many(["ann"])["ann"]["promotions"] is False for c in caches)

        # The server drops the subscriptions: the caches empty and stay off until their
        # listener has subscribed again, then cache afresh.
        name = f"replica-cache:{db}"
        before = [x.confirmations for x in listeners]
        clients = await admin.client_list()
        ids = [c["id"] for c in clients if c.get("name") == name and int(c.get("sub", 0))]
        assert len(ids) == 2, clients  # one subscription per listener
        killed = 0
        for client_id in ids:
            killed += int(await admin.execute_command("CLIENT", "KILL", "ID", client_id))
        assert killed == 2
        await eventually(
            lambda: all(x.confirmations > b for x, b in zip(listeners, before, strict=True))
        )
        await eventually(lambda: all(c.enabled for c in caches))
        assert all(len(c) == 0 for c in caches)
        caches[1].get_many(["ann"])
        assert len(caches[1]) == 1
        # announcements flow again after the reconnect
        store["ann"] = {"_id": "ann", "revision": 3, "promotions": True}
        await admin.publish(channel_for(db), '{"user_id": "ann", "revision": 3}')
        await eventually(lambda: len(caches[1]) == 0)
        assert caches[1].get_many(["ann"])["ann"]["revision"] == 3
        # a malformed announcement is ignored, the listener keeps going
        await admin.publish(channel_for(db), "not json")
        await admin.publish(channel_for(db), '{"user_id": "ann", "revision": 4}')
        await eventually(lambda: len(caches[1]) == 0)
    finally:
        for listener in listeners:
            await listener.stop()
        await admin.aclose()
    assert not any(c.enabled for c in caches)
