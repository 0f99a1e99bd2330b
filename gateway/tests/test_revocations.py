"""A revoked token ends its WebSockets at once (``herald_gateway.revocations``).

The periodic deny-list re-check is set to an hour in these tests, so only the
announcement on ``herald:revocations`` (or the re-check after a lost subscription) can
close a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from herald_common.redis_client import revoke_token, revoked_key, user_channel
from herald_testing import eventually
from herald_testing.faults import TcpProxy
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .conftest import ISSUER, token
from .test_websocket import _subscribed, note, recv

pytestmark = pytest.mark.integration

HOUR = 3600.0


async def _authenticated(url: str, bearer: str):
    """An open graphql-transport-ws socket past ``connection_ack``."""
    ws = await connect(url, subprotocols=["graphql-transport-ws"])
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}})
    )
    assert (await recv(ws))["type"] == "connection_ack"
    return ws


async def _subscriber_count(gw, channel: str, expected: int) -> bool:
    counts = await gw.gateway.redis.pubsub_numsub(channel)
    return bool(counts) and counts[0][1] == expected


async def _closed(ws) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        await recv(ws)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


@contextlib.asynccontextmanager
async def _behind_proxy(gateway_factory, infra) -> AsyncIterator[tuple[Any, TcpProxy]]:
    """A gateway reaching Redis only through a fault-injection proxy (no periodic token
    re-check), and the proxy."""
    proxy = await TcpProxy.for_url(infra["HERALD_REDIS_URL"], 6379).start()
    try:
        gw = await gateway_factory(
            websocket_token_recheck_seconds=HOUR,
            redis_url=proxy.url_through(infra["HERALD_REDIS_URL"]),
        )
        yield gw, proxy
    finally:
        await proxy.close()


async def test_a_revocation_closes_that_tokens_socket_and_no_other(gateway_factory, unique) -> None:
    gw = await gateway_factory(websocket_token_recheck_seconds=HOUR)
    revocations = gw.gateway.revocations
    await asyncio.wait_for(revocations.subscribed.wait(), 10)
    user = f"revoke-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    first, first_claims = ISSUER.issue(user, ttl=timedelta(minutes=10))
    second, _ = ISSUER.issue(user, ttl=timedelta(minutes=10))
    ws1 = await _subscribed(gw, url, "graphql-transport-ws", user, first)
    ws2 = await _subscribed(gw, url, "graphql-transport-ws", user, second)
    async with ws1, ws2:
        await eventually(lambda: revocations.watched >= 2, timeout=10)
        # Both subscriptions share the process's one Redis subscription to the channel.
        await eventually(lambda: gw.gateway.realtime.subscribers(user_channel(user)) == 2)
        await eventually(lambda: _subscriber_count(gw, user_channel(user), 1), timeout=10)
        # What the users service does on logout: deny-list and announce in one pipeline.
        await revoke_token(gw.gateway.redis, first_claims["jti"], 60)
        assert await gw.gateway.redis.exists(revoked_key(first_claims["jti"]))
        assert await _closed(ws1) == (4401, "Unauthorized: token revoked")
        # The same user's other session, with another token, keeps working.
        await ws2.send(json.dumps({"type": "ping"}))
        assert await recv(ws2) == {"type": "pong"}
        await gw.gateway.redis.publish(user_channel(user), note(user, "after-revoke"))
        message = await recv(ws2)
        assert message["type"] == "next"
        assert message["payload"]["data"]["notificationAdded"]["id"] == "after-revoke"
        await eventually(lambda: revocations.watched == 1, timeout=10)


async def test_legacy_protocol_is_told_before_the_close(gateway_factory, unique) -> None:
    gw = await gateway_factory(websocket_token_recheck_seconds=HOUR)
    await asyncio.wait_for(gw.gateway.revocations.subscribed.wait(), 10)
    user = f"revoke-legacy-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    bearer, claims = ISSUER.issue(user, ttl=timedelta(minutes=10))
    ws = await _subscribed(gw, url, "graphql-ws", user, bearer)
    async with ws:
        await eventually(lambda: gw.gateway.revocations.watched >= 1, timeout=10)
        await revoke_token(gw.gateway.redis, claims["jti"], 60)
        message = await recv(ws)
        assert message["type"] == "connection_error"
        assert message["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
        message = await recv(ws)
        assert message["type"] == "error" and message["id"] == "s1"
        assert await _closed(ws) == (4401, "Unauthorized: token revoked")


async def test_announcements_missed_while_redis_was_away_are_caught_up(
    gateway_factory, infra, direct_redis, unique
) -> None:
    """The listener's connection is cut; a revocation made meanwhile (deny-list only, its
    announcement lost) closes the socket as soon as the listener is back."""
    async with _behind_proxy(gateway_factory, infra) as (gw, proxy):
        revocations = gw.gateway.revocations
        await asyncio.wait_for(revocations.subscribed.wait(), 10)
        user = f"revoke-missed-{unique}"
        url = gw.url.replace("http", "ws") + "/graphql"
        bearer, claims = ISSUER.issue(user, ttl=timedelta(minutes=10))
        kept, _ = ISSUER.issue(user, ttl=timedelta(minutes=10))
        ws = await _authenticated(url, bearer)
        other = await _authenticated(url, kept)
        async with ws, other:
            await eventually(lambda: revocations.watched == 2, timeout=10)
            proxy.pause()
            proxy.drop_all()
            await eventually(lambda: not revocations.subscribed.is_set(), timeout=10)
            # Straight to the real Redis: the gateway cannot hear this announcement.
            await revoke_token(direct_redis, claims["jti"], 60)
            proxy.resume()
            assert await _closed(ws) == (4401, "Unauthorized: token revoked")
            await other.send(json.dumps({"type": "ping"}))
            assert await recv(other) == {"type": "pong"}
            await eventually(revocations.subscribed.is_set, timeout=30)
            # And announcements are heard again.
            await revoke_token(direct_redis, _jti(kept), 60)
            assert await _closed(other) == (4401, "Unauthorized: token revoked")


async def _numsub(redis, channel: str, expected: int) -> bool:
    counts = await redis.pubsub_numsub(channel)
    return bool(counts) and counts[0][1] == expected


async def test_an_open_subscription_resumes_when_redis_is_back(
    gateway_factory, infra, direct_redis, unique
) -> None:
    """Redis away (connections cut, new ones refused) under a subscribed socket: the
    socket stays open, the reader subscribes again once Redis answers, and the next
    notification is delivered on the same subscription."""
    async with _behind_proxy(gateway_factory, infra) as (gw, proxy):
        user = f"resume-{unique}"
        channel = user_channel(user)
        url = gw.url.replace("http", "ws") + "/graphql"
        ws = await _subscribed(gw, url, "graphql-transport-ws", user, token(user))
        async with ws:
            await direct_redis.publish(channel, note(user, "before"))
            assert (await recv(ws))["payload"]["data"]["notificationAdded"]["id"] == "before"
            proxy.pause()
            proxy.drop_all()
            await eventually(lambda: _numsub(direct_redis, channel, 0), timeout=10)
            # Published while the gateway cannot hear it: not replayed (the inbox has it).
            await direct_redis.publish(channel, note(user, "lost"))
            proxy.resume()
            await eventually(lambda: _numsub(direct_redis, channel, 1), timeout=30)
            await direct_redis.publish(channel, note(user, "after"))
            message = await recv(ws)
            assert message["type"] == "next" and message["id"] == "s1", message
            assert message["payload"]["data"]["notificationAdded"]["id"] == "after"


async def test_a_token_revoked_while_redis_was_away_gets_nothing_after_the_resume(
    gateway_factory, infra, direct_redis, unique
) -> None:
    """The token is deny-listed while the gateway cannot reach Redis (its announcement is
    lost). When Redis is back the resumed reader re-checks the token before delivering:
    the subscription gets no notification, only an UNAUTHENTICATED error at most, and
    the socket closes with 4401."""
    async with _behind_proxy(gateway_factory, infra) as (gw, proxy):
        user = f"resume-revoked-{unique}"
        channel = user_channel(user)
        url = gw.url.replace("http", "ws") + "/graphql"
        bearer, claims = ISSUER.issue(user, ttl=timedelta(minutes=10))
        ws = await _subscribed(gw, url, "graphql-transport-ws", user, bearer)
        async with ws:
            proxy.pause()
            proxy.drop_all()
            await eventually(lambda: _numsub(direct_redis, channel, 0), timeout=10)
            await revoke_token(direct_redis, claims["jti"], 60)
            proxy.resume()

            async def publish_until_closed() -> None:
                for i in range(600):
                    await direct_redis.publish(channel, note(user, f"after-{i}"))
                    await asyncio.sleep(0.05)

            publisher = asyncio.create_task(publish_until_closed())
            messages = []
            try:
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        messages.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            finally:
                publisher.cancel()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (
                4401,
                "Unauthorized: token revoked",
            )
            for message in messages:
                assert message["type"] == "error", message
                assert {e["extensions"]["code"] for e in message["payload"]} == {"UNAUTHENTICATED"}


@pytest.fixture
async def direct_redis(infra):
    """A client of the real Redis, bypassing any proxy."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(infra["HERALD_REDIS_URL"], decode_responses=True)
    yield client
    await client.aclose()


def _jti(token: str) -> str:
    import jwt

    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def test_shutdown_with_open_sockets_is_clean(gateway_factory, direct_redis, unique) -> None:
    """Stopping the server with subscribed and idle authenticated sockets open ends every
    connection, the listener, the real-time hub and the lifespan (an earlier version
    hung here)."""
    gw = await gateway_factory(websocket_token_recheck_seconds=HOUR)
    revocations = gw.gateway.revocations
    await asyncio.wait_for(revocations.subscribed.wait(), 10)
    user = f"shutdown-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    sockets = [
        await _subscribed(gw, url, "graphql-transport-ws", user, token(user)),
        await _subscribed(gw, url, "graphql-ws", user, token(user)),
        await _authenticated(url, token(user)),
    ]
    await eventually(lambda: revocations.watched == 3, timeout=10)
    assert gw.server is not None and gw.serving is not None
    gw.server.should_exit = True
    # A hang guard, not a timing assertion: a hung shutdown fails instead of blocking.
    await asyncio.wait_for(gw.serving, 120)
    assert gw.serving.exception() is None
    for ws in sockets:
        code, _ = await _closed(ws)
        assert code != 1006, "closed without a close frame"
        await ws.close()
    assert revocations.watched == 0
    assert revocations._task is None
    realtime = gw.gateway.realtime
    assert realtime.channels == 0 and not realtime.connected.is_set()
    # Nobody is left listening for this process.
    counts = await direct_redis.pubsub_numsub(user_channel(user))
    assert counts[0][1] == 0


async def test_closed_connections_leave_no_registration(gateway_factory) -> None:
    """Sockets that go away right after the ack (before their watch task ran, often)
    leave nothing registered."""
    gw = await gateway_factory(websocket_token_recheck_seconds=HOUR)
    revocations = gw.gateway.revocations
    url = gw.url.replace("http", "ws") + "/graphql"
    for _ in range(20):
        ws = await _authenticated(url, token("short-lived"))
        await ws.close()
    kept = await _authenticated(url, token("kept"))
    async with kept:
        await eventually(lambda: revocations.watched == 1, timeout=10)
