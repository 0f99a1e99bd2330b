"""The process's real-time hub (``herald_gateway.realtime``): one Redis pub/sub
connection for every open subscription, reference-counted channels, bounded queues.

The gateway tests run the real app (real Redis, WebSockets); the hub tests drive a
:class:`RealtimeHub` directly on the real Redis, some of them through a proxy that cuts
or silences the connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from herald_common.redis_client import user_channel
from herald_testing import eventually
from herald_testing.faults import TcpProxy
from websockets.asyncio.client import connect

from herald_gateway.errors import GraphQLFailure
from herald_gateway.realtime import RealtimeHub, SubscriptionOverflow

from .conftest import token
from .test_websocket import SUB, note, recv

pytestmark = pytest.mark.integration

HOUR = 3600.0
INBOX = "subscription { inboxChanged { kind ids unreadCount unseenCount } }"


@pytest.fixture
async def direct_redis(infra):
    """A client of the real Redis, not the gateway's."""
    client = aioredis.from_url(infra["HERALD_REDIS_URL"], decode_responses=True)
    yield client
    await client.aclose()


async def _numsub(redis: Any, channel: str) -> int:
    return int((await redis.pubsub_numsub(channel))[0][1])


async def _open(url: str, user: str, **options: Any):
    """A graphql-transport-ws socket of ``user`` past ``connection_ack``."""
    ws = await connect(url, subprotocols=["graphql-transport-ws"], **options)
    await ws.send(
        json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}}
        )
    )
    assert (await recv(ws))["type"] == "connection_ack"
    return ws


async def _subscribe(ws, op_id: str, query: str = SUB) -> None:
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": query}}))


def _with_pool(url: str, size: int) -> str:
    return f"{url}{'&' if '?' in url else '?'}max_connections={size}"


def _inbox_change(user: str, unread: int) -> str:
    return json.dumps(
        {
            "event": "inbox_changed",
            "user_id": user,
            "kind": "read",
            "ids": ["n1"],
            "unread_count": unread,
            "unseen_count": 0,
        }
    )


# --- the gateway ---------------------------------------------------------------------


async def test_150_subscriptions_on_a_pool_of_20_and_queries_still_answer(
    gateway_factory, infra, direct_redis, unique
) -> None:
    """150 subscriptions open at once on one process whose Redis pool holds 20
    connections: each receives its user's push, and an authenticated query (its
    deny-list check needs the pool) answers meanwhile. Each subscription used to hold a
    pool connection: the 21st waited for one, and every request needing Redis got
    UNAVAILABLE."""
    gw = await gateway_factory(
        redis_url=_with_pool(infra["HERALD_REDIS_URL"], 20),
        websocket_token_recheck_seconds=HOUR,
    )
    assert gw.gateway.redis.connection_pool.max_connections == 20
    hub = gw.gateway.realtime
    url = gw.url.replace("http", "ws") + "/graphql"
    users = [f"many-{unique}-{i}" for i in range(150)]
    # Opened ten at a time: each connection_init checks its token through the pool.
    admission = asyncio.Semaphore(10)

    async def subscribed(user: str):
        async with admission:
            ws = await _open(url, user)
            await _subscribe(ws, "s1")
            return ws

    sockets = await asyncio.gather(*(subscribed(user) for user in users))
    try:
        await eventually(lambda: hub.channels == 150, timeout=60)
        channels = [user_channel(user) for user in users]

        async def all_on_one_subscription() -> bool:
            counts = await direct_redis.pubsub_numsub(*channels)
            return [int(n) for _, n in counts] == [1] * 150

        await eventually(all_on_one_subscription, timeout=30)
        for user in users:
            await direct_redis.publish(user_channel(user), note(user, f"for-{user}"))
        received = await asyncio.gather(*(recv(ws) for ws in sockets))
        for user, message in zip(users, received, strict=True):
            assert message["type"] == "next" and message["id"] == "s1", message
            node = message["payload"]["data"]["notificationAdded"]
            assert (node["id"], node["userId"]) == (f"for-{user}", user)
        # With all of them open, an authenticated request still gets its answer.
        r = await gw.gql("{ unreadCount }", user=users[0])
        assert r.status_code == 200 and r.json() == {"data": {"unreadCount": 3}}, r.text
        r = await gw.gql("{ me { id } }", user=f"other-{unique}")
        assert "errors" not in r.json(), r.text
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    await eventually(lambda: hub.channels == 0, timeout=30)


async def test_subscriptions_of_one_user_share_one_channel_subscription(
    gateway_factory, direct_redis, unique
) -> None:
    """Two sockets of one user, three subscriptions (both fields on the second): one
    Redis subscription to the channel, which stays while any is open and is gone when
    the last one ends."""
    gw = await gateway_factory(websocket_token_recheck_seconds=HOUR)
    hub = gw.gateway.realtime
    user = f"shared-{unique}"
    channel = user_channel(user)
    url = gw.url.replace("http", "ws") + "/graphql"
    first = await _open(url, user)
    second = await _open(url, user)
    async with first, second:
        await _subscribe(first, "s1")
        await _subscribe(second, "a")
        await _subscribe(second, "b", INBOX)
        await eventually(lambda: hub.subscribers(channel) == 3, timeout=10)
        await eventually(lambda: _numsub_is(direct_redis, channel, 1), timeout=10)
        assert await direct_redis.pubsub_channels(channel) == [channel]

        await direct_redis.publish(channel, note(user, "n1"))
        for ws, op_id in ((first, "s1"), (second, "a")):
            message = await recv(ws)
            assert (message["type"], message["id"]) == ("next", op_id), message
            assert message["payload"]["data"]["notificationAdded"]["id"] == "n1"
        await direct_redis.publish(channel, _inbox_change(user, 7))
        message = await recv(second)
        assert (message["type"], message["id"]) == ("next", "b"), message
        assert message["payload"]["data"]["inboxChanged"]["unreadCount"] == 7

        await second.send(json.dumps({"id": "a", "type": "complete"}))
        await second.send(json.dumps({"id": "b", "type": "complete"}))
        await eventually(lambda: hub.subscribers(channel) == 1, timeout=10)
        assert await _numsub(direct_redis, channel) == 1
        await direct_redis.publish(channel, note(user, "n2"))
        message = await recv(first)
        assert message["payload"]["data"]["notificationAdded"]["id"] == "n2"

        await first.send(json.dumps({"id": "s1", "type": "complete"}))
        await eventually(lambda: _numsub_is(direct_redis, channel, 0), timeout=10)
        assert await direct_redis.pubsub_channels(channel) == []
        assert hub.subscribers(channel) == 0


async def _numsub_is(redis: Any, channel: str, expected: int) -> bool:
    return await _numsub(redis, channel) == expected


async def test_a_slow_socket_ends_its_own_subscription_and_delays_no_other(
    gateway_factory, direct_redis, unique
) -> None:
    """A socket that stops reading: once the gateway cannot send to it and its queue
    (4 here) is full, its subscription ends with UNAVAILABLE / SLOW_CONSUMER after what
    was already on its way, in order; the same user's other socket receives every
    message meanwhile, and the slow socket itself stays open."""
    gw = await gateway_factory(subscription_queue_size=4, websocket_token_recheck_seconds=HOUR)
    hub = gw.gateway.realtime
    user = f"slow-{unique}"
    channel = user_channel(user)
    url = gw.url.replace("http", "ws") + "/graphql"
    fast = await _open(url, user)
    # It stops reading its socket after one frame; no pings that would need answers, no
    # compression that would shrink what fills the buffers.
    slow = await _open(url, user, max_queue=1, ping_interval=None, compression=None)
    async with fast, slow:
        await _subscribe(fast, "f")
        await _subscribe(slow, "s")
        await eventually(lambda: hub.subscribers(channel) == 2, timeout=10)
        await eventually(lambda: _numsub_is(direct_redis, channel, 1), timeout=10)
        fast_ids: list[str] = []

        async def read_fast() -> None:
            while True:
                message = await recv(fast)
                assert (message["type"], message["id"]) == ("next", "f"), message
                fast_ids.append(message["payload"]["data"]["notificationAdded"]["id"])

        reader = asyncio.create_task(read_fast())
        body = "x" * 256 * 1024
        published: list[str] = []
        try:
            # Until the slow socket's buffers and its queue are full.
            while hub.subscribers(channel) == 2:
                assert len(published) < 2000, "the slow subscription never overflowed"
                nid = f"n{len(published)}"
                payload = json.loads(note(user, nid))
                payload["content"]["body"] = body
                await direct_redis.publish(channel, json.dumps(payload))
                published.append(nid)
                await asyncio.sleep(0.005)
            await direct_redis.publish(channel, note(user, "after"))
            published.append("after")
            await eventually(lambda: len(fast_ids) == len(published), timeout=60)
        finally:
            reader.cancel()
        assert fast_ids == published

        slow_ids: list[str] = []
        while True:
            message = await recv(slow)
            if message["type"] != "next":
                break
            slow_ids.append(message["payload"]["data"]["notificationAdded"]["id"])
        assert message["type"] == "error" and message["id"] == "s", message
        [error] = message["payload"]
        assert error["extensions"] == {"code": "UNAVAILABLE", "reason": "SLOW_CONSUMER"}
        assert "fell behind" in error["message"]
        # What it got is the start of the stream, in order; the rest was dropped.
        assert slow_ids == published[: len(slow_ids)]
        assert len(slow_ids) < len(published) - 1
        # The socket itself is fine, and the subscription is over: nothing more comes.
        await slow.send(json.dumps({"type": "ping"}))
        assert await recv(slow) == {"type": "pong"}
        assert hub.subscribers(channel) == 1


# --- the hub itself ------------------------------------------------------------------


@pytest.fixture
async def hubs():
    """``await hubs(url, **options)``: started hubs, stopped afterwards."""
    started: list[RealtimeHub] = []

    async def start(url: str, **options: Any) -> RealtimeHub:
        hub = RealtimeHub(url, **options)
        hub.start()
        started.append(hub)
        await asyncio.wait_for(hub.connected.wait(), 10)
        return hub

    yield start
    for hub in started:
        await hub.stop()


class Reader:
    """A consumer of ``hub.messages(channel)`` recording what it got and its resumes."""

    def __init__(self, hub: RealtimeHub, channel: str) -> None:
        self.events: list[Any] = []
        self.ended: BaseException | None = None
        self._messages = hub.messages(channel, on_resume=self._resumed)
        self.task = asyncio.create_task(self._run())

    async def _resumed(self) -> None:
        self.events.append("resumed")

    async def _run(self) -> None:
        try:
            async for message in self._messages:
                self.events.append(message["n"])
        except GraphQLFailure as exc:
            self.ended = exc

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self._messages.aclose()


async def test_a_full_queue_ends_that_subscriber_only(hubs, infra, direct_redis, unique) -> None:
    """A subscriber that takes one message and no more (queue of 3): the fourth message
    it cannot queue ends it with SLOW_CONSUMER, its queued ones dropped; the channel's
    other subscriber gets everything, before and after."""
    hub = await hubs(infra["HERALD_REDIS_URL"], queue_size=3)
    channel = f"herald:test:{unique}:overflow"
    fast = Reader(hub, channel)
    slow = hub.messages(channel)
    try:
        first = asyncio.create_task(slow.__anext__())
        await eventually(lambda: hub.subscribers(channel) == 2)
        await eventually(lambda: _numsub_is(direct_redis, channel, 1))
        await direct_redis.publish(channel, json.dumps({"n": 0}))
        assert (await asyncio.wait_for(first, 10)) == {"n": 0}
        # Never read again: 1, 2, 3 fill its queue, 4 overflows it.
        for n in range(1, 7):
            await direct_redis.publish(channel, json.dumps({"n": n}))
        await eventually(lambda: fast.events == [0, 1, 2, 3, 4, 5, 6])
        assert hub.subscribers(channel) == 1
        with pytest.raises(SubscriptionOverflow) as info:
            await slow.__anext__()
        assert info.value.to_error()["extensions"] == {
            "code": "UNAVAILABLE",
            "reason": "SLOW_CONSUMER",
        }
        await direct_redis.publish(channel, json.dumps({"n": 7}))
        await eventually(lambda: fast.events[-1] == 7)
        assert await _numsub(direct_redis, channel) == 1
    finally:
        await slow.aclose()
        await fast.close()
    await eventually(lambda: _numsub_is(direct_redis, channel, 0))


async def test_leaving_and_joining_in_any_order_keeps_redis_in_step(
    hubs, infra, direct_redis, unique
) -> None:
    hub = await hubs(infra["HERALD_REDIS_URL"])
    channel = f"herald:test:{unique}:churn"
    for _ in range(20):
        reader = Reader(hub, channel)
        await eventually(lambda: hub.subscribers(channel) == 1)
        await reader.close()
        assert hub.subscribers(channel) == 0
    last = Reader(hub, channel)
    try:
        await eventually(lambda: hub.subscribers(channel) == 1)
        await eventually(lambda: _numsub_is(direct_redis, channel, 1))
        await direct_redis.publish(channel, json.dumps({"n": 1}))
        await eventually(lambda: last.events == [1])
    finally:
        await last.close()
    await eventually(lambda: _numsub_is(direct_redis, channel, 0))


async def test_every_live_channel_is_subscribed_again_and_rechecked_after_a_loss(
    hubs, infra, direct_redis, unique
) -> None:
    """The connection is cut and new ones refused for a while: each subscriber's
    ``on_resume`` runs before anything published after the resume reaches it (what was
    published meanwhile is lost); a subscriber that joined during the outage too."""
    proxy = await TcpProxy.for_url(infra["HERALD_REDIS_URL"], 6379).start()
    try:
        hub = await hubs(proxy.url_through(infra["HERALD_REDIS_URL"]))
        channels = [f"herald:test:{unique}:lost:{i}" for i in range(3)]
        readers = [Reader(hub, channel) for channel in channels]
        await eventually(lambda: hub.channels == 3)
        for channel in channels:
            await eventually(lambda c=channel: _numsub_is(direct_redis, c, 1))
            await direct_redis.publish(channel, json.dumps({"n": "before"}))
        await eventually(lambda: all(r.events == ["before"] for r in readers))

        proxy.pause()
        proxy.drop_all()
        await eventually(lambda: not hub.connected.is_set(), timeout=10)
        late = Reader(hub, channels[0])
        for channel in channels:
            await eventually(lambda c=channel: _numsub_is(direct_redis, c, 0), timeout=10)
            await direct_redis.publish(channel, json.dumps({"n": "lost"}))
        proxy.resume()
        await eventually(hub.connected.is_set, timeout=30)
        for channel in channels:
            await eventually(lambda c=channel: _numsub_is(direct_redis, c, 1), timeout=10)
            await direct_redis.publish(channel, json.dumps({"n": "after"}))
        await eventually(lambda: all(r.events == ["before", "resumed", "after"] for r in readers))
        await eventually(lambda: late.events == ["resumed", "after"])
        for reader in [*readers, late]:
            await reader.close()
    finally:
        await proxy.close()


async def test_a_connection_gone_silent_is_noticed_by_the_keepalive(
    hubs, infra, direct_redis, unique
) -> None:
    """Redis stops answering without closing anything: after two keep-alive periods
    without an answer the hub connects again and subscribes its channels again."""
    proxy = await TcpProxy.for_url(infra["HERALD_REDIS_URL"], 6379).start()
    try:
        hub = await hubs(proxy.url_through(infra["HERALD_REDIS_URL"]), keepalive=0.3)
        channel = f"herald:test:{unique}:silent"
        reader = Reader(hub, channel)
        await eventually(lambda: _numsub_is(direct_redis, channel, 1))
        made = proxy.connections_made
        assert proxy.stall() == 1
        await eventually(lambda: proxy.connections_made > made, timeout=10)
        # The stalled connection is still subscribed too: two on the Redis side.
        await eventually(lambda: _numsub_is(direct_redis, channel, 2), timeout=10)
        await eventually(hub.connected.is_set, timeout=10)
        await direct_redis.publish(channel, json.dumps({"n": "after"}))
        await eventually(lambda: reader.events == ["resumed", "after"], timeout=10)
        await reader.close()
    finally:
        await proxy.close()


async def test_stop_ends_open_subscriptions_and_the_connection(infra, direct_redis, unique) -> None:
    hub = RealtimeHub(infra["HERALD_REDIS_URL"])
    hub.start()
    await asyncio.wait_for(hub.connected.wait(), 10)
    channel = f"herald:test:{unique}:stop"
    reader = Reader(hub, channel)
    await eventually(lambda: _numsub_is(direct_redis, channel, 1))
    await asyncio.wait_for(hub.stop(), 10)
    await eventually(lambda: reader.ended is not None)
    assert isinstance(reader.ended, GraphQLFailure) and reader.ended.code == "UNAVAILABLE"
    assert hub.channels == 0 and not hub.connected.is_set()
    await eventually(lambda: _numsub_is(direct_redis, channel, 0))
    with pytest.raises(GraphQLFailure):
        await hub.messages(channel).__anext__()
