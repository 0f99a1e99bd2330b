"""WebSocket subscriptions: graphql-transport-ws and the legacy graphql-ws protocol."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from herald_common.redis_client import revoked_key, user_channel
from herald_testing import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .conftest import ISSUER, token

pytestmark = pytest.mark.integration

SUB = "subscription { notificationAdded { id userId type content read sentAt } }"


def note(user: str, nid: str) -> str:
    return json.dumps(
        {
            "id": nid,
            "user_id": user,
            "type": "order_update",
            "content": {"title": "Shipped", "body": "Your order is on its way"},
            "sent_at": "2024-05-01T12:00:00+00:00",
            "read": False,
        }
    )


async def recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


async def publish_until_received(gw, channel: str, payload: str, ws) -> dict:
    """The subscription attaches asynchronously: publish until a subscriber is there."""
    await eventually(lambda: _subscribers(gw, channel), timeout=10)
    await gw.gateway.redis.publish(channel, payload)
    return await recv(ws)


async def _subscribers(gw, channel: str) -> bool:
    counts = await gw.gateway.redis.pubsub_numsub(channel)
    return bool(counts and counts[0][1] > 0)


async def test_graphql_transport_ws_subscription(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"ws-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(
            json.dumps(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {token(user)}"}}
            )
        )
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws)) == {"type": "pong"}

        await ws.send(
            json.dumps({"id": "q1", "type": "subscribe", "payload": {"query": "{ unreadCount }"}})
        )
        assert await recv(ws) == {
            "id": "q1",
            "type": "next",
            "payload": {"data": {"unreadCount": 3}},
        }
        assert await recv(ws) == {"id": "q1", "type": "complete"}

        await ws.send(json.dumps({"id": "s1", "type": "subscribe", "payload": {"query": SUB}}))
        # Someone else's message on another channel never arrives here.
        await gw.gateway.redis.publish(user_channel("someone-else"), note("someone-else", "x"))
        msg = await publish_until_received(gw, user_channel(user), note(user, "n1"), ws)
        assert msg["type"] == "next" and msg["id"] == "s1"
        assert msg["payload"]["data"]["notificationAdded"] == {
            "id": "n1",
            "userId": user,
            "type": "ORDER_UPDATE",
            "content": {"title": "Shipped", "body": "Your order is on its way"},
            "read": False,
            "sentAt": "2024-05-01T12:00:00+00:00",
        }
        await ws.send(json.dumps({"id": "s1", "type": "complete"}))
        await eventually(lambda: _no_subscribers(gw, user_channel(user)), timeout=10)

        await ws.send(
            json.dumps({"id": "bad", "type": "subscribe", "payload": {"query": "{ nope }"}})
        )
        err = await recv(ws)
        assert (
            err["type"] == "error" and err["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        )


async def _no_subscribers(gw, channel: str) -> bool:
    return not await _subscribers(gw, channel)


async def test_transport_ws_refusals(gateway_factory) -> None:
    gw = await gateway_factory()
    url = gw.url.replace("http", "ws") + "/graphql"
    # A bad token at connection_init closes with 4403.
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": "Bearer junk"}})
        )
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd.code == 4403
    # Subscribing before connection_init: 4401.
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUB}}))
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd.code == 4401
    # Anonymous connection: the subscription itself is refused with UNAUTHENTICATED.
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await recv(ws))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUB}}))
        err = await recv(ws)
        assert err["type"] == "error"
        assert err["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        await ws.send("not json")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd.code == 4400


async def test_legacy_graphql_ws_protocol(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"legacy-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol == "graphql-ws"
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authToken": token(user)}})
        )
        assert (await recv(ws))["type"] == "connection_ack"
        assert (await recv(ws))["type"] == "ka"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": SUB}}))
        msg = await publish_until_received(gw, user_channel(user), note(user, "n2"), ws)
        assert msg["type"] == "data" and msg["payload"]["data"]["notificationAdded"]["id"] == "n2"
        await ws.send(json.dumps({"id": "1", "type": "stop"}))
        await ws.send(json.dumps({"type": "connection_terminate"}))


def expiring_token(user: str, seconds: int = 2) -> str:
    """A valid access token whose ``exp`` is about ``seconds`` from now."""
    issued = datetime.now(UTC) - timedelta(minutes=10)
    value, _ = ISSUER.issue(user, ttl=timedelta(minutes=10, seconds=seconds), now=issued)
    return value


async def _subscribed(gw, url: str, protocol: str, user: str, bearer: str):
    """An open socket with a live ``notificationAdded`` subscription (id ``s1``)."""
    ws = await connect(url, subprotocols=[protocol])
    legacy = protocol == "graphql-ws"
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {bearer}"}})
    )
    assert (await recv(ws))["type"] == "connection_ack"
    if legacy:
        assert (await recv(ws))["type"] == "ka"
    start = "start" if legacy else "subscribe"
    await ws.send(json.dumps({"id": "s1", "type": start, "payload": {"query": SUB}}))
    await eventually(lambda: _subscribers(gw, user_channel(user)), timeout=10)
    return ws


async def test_transport_ws_closes_when_the_token_expires(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"exp-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    ws = await _subscribed(gw, url, "graphql-transport-ws", user, expiring_token(user))
    async with ws:
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd.code == 4401
        assert info.value.rcvd.reason == "Unauthorized: token expired"
    await eventually(lambda: _no_subscribers(gw, user_channel(user)), timeout=10)


async def test_transport_ws_closes_when_the_token_is_revoked(gateway_factory, unique) -> None:
    gw = await gateway_factory(websocket_token_recheck_seconds=0.1)
    user = f"rev-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    bearer, claims = ISSUER.issue(user, ttl=timedelta(minutes=10))
    ws = await _subscribed(gw, url, "graphql-transport-ws", user, bearer)
    async with ws:
        # Several re-checks of a valid token leave the connection alone.
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}
        # Logout puts the token's jti on the deny-list.
        await gw.gateway.redis.set(revoked_key(claims["jti"]), "1", ex=60)
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd.code == 4401
        assert info.value.rcvd.reason == "Unauthorized: token revoked"
    await eventually(lambda: _no_subscribers(gw, user_channel(user)), timeout=10)


async def test_legacy_graphql_ws_reports_then_closes_on_expiry(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"legacy-exp-{unique}"
    url = gw.url.replace("http", "ws") + "/graphql"
    ws = await _subscribed(gw, url, "graphql-ws", user, expiring_token(user))
    async with ws:
        message = await recv(ws)
        assert message["type"] == "connection_error"
        assert message["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
        message = await recv(ws)
        assert message["type"] == "error" and message["id"] == "s1"
        assert message["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.rcvd.code == 4401
        assert info.value.rcvd.reason == "Unauthorized: token expired"
    await eventually(lambda: _no_subscribers(gw, user_channel(user)), timeout=10)
