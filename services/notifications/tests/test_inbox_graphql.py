"""The inbox as a shopper uses it: the real gateway (GraphQL over HTTP and WebSocket) in
front of the real notifications app, on the real servers, with an injected clock.

Seen vs read, bulk read, archive, snooze expiry, delete by a stranger, two tabs on
``inboxChanged``, and the counts staying equal to what the lists show.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from herald_common.redis_client import user_channel
from herald_testing import eventually
from websockets.asyncio.client import connect

from herald_gateway.config import GatewaySettings
from herald_gateway.main import create_app as create_gateway

pytestmark = pytest.mark.integration

NODE = "id type read readAt seen seenAt archived archivedAt snoozedUntil sentAt"
INBOX = f"""query($archived: Boolean) {{
  unreadCount unseenCount
  notifications(first: 100, archived: $archived) {{ totalCount edges {{ node {{ {NODE} }} }} }}
}}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Shopper:
    """GraphQL calls of one user through the gateway."""

    def __init__(self, gw: Gateway, user_id: str) -> None:
        self.gw, self.user_id = gw, user_id

    @property
    def token(self) -> str:
        return self.gw.harness.auth(self.user_id)["authorization"]

    async def call(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.gw.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"authorization": self.token},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, query: str, **variables: Any) -> dict[str, Any]:
        body = await self.call(query, **variables)
        assert "errors" not in body, body
        return body["data"]

    async def error_code(self, query: str, **variables: Any) -> str:
        body = await self.call(query, **variables)
        assert body.get("errors"), body
        return str(body["errors"][0]["extensions"]["code"])

    async def inbox(self, archived: bool = False) -> dict[str, Any]:
        return await self.ok(INBOX, archived=archived)

    async def ids(self, archived: bool = False) -> list[str]:
        data = await self.inbox(archived)
        return [e["node"]["id"] for e in data["notifications"]["edges"]]

    async def consistent(self) -> dict[str, Any]:
        """The counts equal what the default list shows."""
        data = await self.inbox()
        nodes = [e["node"] for e in data["notifications"]["edges"]]
        assert data["notifications"]["totalCount"] == len(nodes)
        assert data["unreadCount"] == sum(not n["read"] for n in nodes), data
        assert data["unseenCount"] == sum(not n["seen"] for n in nodes), data
        return data


class Gateway:
    def __init__(self, harness: Any, url: str, client: httpx.AsyncClient, app: Any) -> None:
        self.harness, self.url, self.client, self.app = harness, url, client, app

    def shopper(self, user_id: str) -> Shopper:
        return Shopper(self, user_id)


@pytest.fixture
async def gw(harness, make_settings, issuer, unique) -> AsyncIterator[Gateway]:
    """The gateway on a free port; its notifications client reaches the harness's app."""
    port = _free_port()
    settings = make_settings(
        GatewaySettings,
        component="gateway",
        jwt_public_key_pem=issuer.public_pem,
        cache_queue=f"gateway.cache.t{unique}",
        redis_prefix=f"herald:gw:t{unique}",
        port=port,
    )
    app = create_gateway(
        settings, transports={"notifications": httpx.ASGITransport(app=harness.apps[0])}
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), timeout=60)
    if task.done():
        task.result()
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        try:
            yield Gateway(harness, url, client, app)
        finally:
            server.should_exit = True
            await task


async def _deliver(h: Any, user_id: str, *keys: str) -> None:
    for key in keys:
        await h.request(key, user_id, "order_update", content={"title": key, "body": "b"})
    await h.settled(*keys)


async def test_seen_is_not_read_and_bulk_read_skips_what_is_not_yours(gw) -> None:
    h = gw.harness
    await h.register("ann")
    await h.register("bob")
    await _deliver(h, "ann", "a1", "a2", "a3")
    await _deliver(h, "bob", "b1")
    ann, bob = gw.shopper("ann"), gw.shopper("bob")
    data = await ann.consistent()
    assert (data["unreadCount"], data["unseenCount"]) == (3, 3)
    a3, a2, a1 = await ann.ids()  # newest first
    [b1] = await bob.ids()

    assert await ann.ok("mutation($ids: [ID!]) { markNotificationsSeen(ids: $ids) }", ids=[a1]) == {
        "markNotificationsSeen": 1
    }
    data = await ann.consistent()
    assert (data["unreadCount"], data["unseenCount"]) == (3, 2)
    # No ids: everything unseen; what was already seen is not counted again.
    assert (await ann.ok("mutation { markNotificationsSeen }"))["markNotificationsSeen"] == 2
    data = await ann.consistent()
    assert (data["unreadCount"], data["unseenCount"]) == (3, 0)
    assert all(e["node"]["seenAt"] for e in data["notifications"]["edges"])

    # Bulk read: others' and unknown ids are skipped and not counted.
    many = "mutation($ids: [ID!]!) { markNotificationsRead(ids: $ids) }"
    assert (await ann.ok(many, ids=[a1, a2, b1, "no-such-id"]))["markNotificationsRead"] == 2
    assert (await ann.ok(many, ids=[a1, a2]))["markNotificationsRead"] == 0
    assert (await bob.inbox())["unreadCount"] == 1  # bob's stays unread
    data = await ann.consistent()
    assert data["unreadCount"] == 1
    assert await ann.error_code(many, ids=[f"x{i}" for i in range(101)]) == "BAD_USER_INPUT"

    # Reading implies seen.
    await _deliver(h, "ann", "a4")
    [a4] = [i for i in await ann.ids() if i not in {a1, a2, a3}]
    node = (await ann.ok(f'mutation {{ markNotificationRead(id: "{a4}") {{ {NODE} }} }}'))[
        "markNotificationRead"
    ]
    assert node["read"] and node["seen"] and node["seenAt"] == node["readAt"]
    await ann.consistent()


async def test_archive_takes_notifications_out_of_the_list_and_the_counts(gw) -> None:
    h = gw.harness
    await h.register("ann")
    await _deliver(h, "ann", "a1", "a2", "a3")
    ann = gw.shopper("ann")
    a3, a2, a1 = await ann.ids()
    archived = (await ann.ok(f'mutation {{ archiveNotification(id: "{a1}") {{ {NODE} }} }}'))[
        "archiveNotification"
    ]
    assert archived["archived"] and archived["archivedAt"]
    assert await ann.ids() == [a3, a2]
    assert await ann.ids(archived=True) == [a1]
    data = await ann.consistent()
    assert (data["unreadCount"], data["unseenCount"]) == (2, 2)  # archived never count

    await ann.ok(f'mutation {{ markNotificationRead(id: "{a2}") {{ id }} }}')
    assert (await ann.ok("mutation { archiveAllRead }"))["archiveAllRead"] == 1
    assert await ann.ids() == [a3]
    assert set(await ann.ids(archived=True)) == {a1, a2}

    back = (await ann.ok(f'mutation {{ unarchiveNotification(id: "{a1}") {{ {NODE} }} }}'))[
        "unarchiveNotification"
    ]
    assert back["archived"] is False and back["archivedAt"] is None
    assert await ann.ids() == [a3, a1]
    data = await ann.consistent()
    assert data["unreadCount"] == 2


async def test_snooze_hides_until_the_time_then_brings_it_back_on_top(gw) -> None:
    h = gw.harness
    await h.register("ann")
    await _deliver(h, "ann", "a1")
    h.clock.shift(minutes=1)
    await _deliver(h, "ann", "a2")
    ann = gw.shopper("ann")
    a2, a1 = await ann.ids()
    await ann.ok(f'mutation {{ markNotificationRead(id: "{a1}") {{ id }} }}')
    snooze = (
        "mutation($id: ID!, $until: String!) { snoozeNotification(id: $id, until: $until) { %s } }"
    )
    now = h.clock()
    for bad in (
        (now + timedelta(hours=2)).replace(tzinfo=None).isoformat(),  # no zone
        (now - timedelta(minutes=1)).isoformat(),  # past
        (now + timedelta(days=31)).isoformat(),  # too far
        "tomorrow",
    ):
        assert await ann.error_code(snooze % "id", id=a1, until=bad) == "BAD_USER_INPUT", bad

    # Until 13:31 in Paris (12:31 UTC on this winter day), given with its offset.
    until = "2026-03-10T13:31:00+01:00"
    node = (await ann.ok(snooze % NODE, id=a1, until=until))["snoozeNotification"]
    assert node["snoozedUntil"] == "2026-03-10T12:31:00Z"
    assert await ann.ids() == [a2]
    data = await ann.consistent()
    assert (data["unreadCount"], data["unseenCount"]) == (1, 1)

    url = gw.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": ann.token}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": "subscription { notificationAdded { id read seen } }"},
                }
            )
        )
        await eventually(lambda: _subscribed(gw, "ann"))

        # Not due yet: the sweep leaves it.
        h.clock.set(now + timedelta(minutes=29))
        assert await h.service.wake_snoozed() == 0
        assert await ann.ids() == [a2]
        # Due: back on top, unread and unseen, pushed again as new.
        h.clock.set(now + timedelta(minutes=31))
        assert await h.service.wake_snoozed() == 1
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert message["type"] == "next"
        assert message["payload"]["data"]["notificationAdded"] == {
            "id": a1,
            "read": False,
            "seen": False,
        }
    assert await ann.ids() == [a1, a2]
    # The gateway's cached counts were invalidated by the sweep's inbox_changed event.
    await eventually(lambda: _counts(ann, (2, 2)))
    assert await h.service.wake_snoozed() == 0  # a second sweep brings nothing twice
    await ann.consistent()


async def _subscribed(gw: Gateway, user_id: str) -> bool:
    counts = await gw.app.state.gateway.redis.pubsub_numsub(user_channel(user_id))
    return bool(counts and counts[0][1] > 0)


async def _counts(shopper: Shopper, expected: tuple[int, int]) -> bool:
    data = await shopper.inbox()
    return (data["unreadCount"], data["unseenCount"]) == expected


async def test_delete_is_for_the_owner_only(gw) -> None:
    h = gw.harness
    await h.register("ann")
    await h.register("eve")
    await _deliver(h, "ann", "a1", "a2")
    ann, eve = gw.shopper("ann"), gw.shopper("eve")
    a2, a1 = await ann.ids()
    delete = "mutation($id: ID!) { deleteNotification(id: $id) }"
    # A stranger learns nothing: the same answer as for an id that does not exist.
    assert await eve.error_code(delete, id=a1) == "NOT_FOUND"
    assert await eve.error_code(delete, id="no-such-id") == "NOT_FOUND"
    assert await eve.error_code(f'mutation {{ archiveNotification(id: "{a1}") {{ id }} }}') == (
        "NOT_FOUND"
    )
    assert await ann.ids() == [a2, a1]

    assert await ann.ok(delete, id=a1) == {"deleteNotification": True}
    assert await ann.ids() == [a2]
    assert (await ann.ok(f'{{ notification(id: "{a1}") {{ id }} }}'))["notification"] is None
    assert await ann.error_code(delete, id=a1) == "NOT_FOUND"
    data = await ann.consistent()
    assert data["unreadCount"] == 1


async def _tab(url: str, token: str, query: str) -> Any:
    ws = await connect(url, subprotocols=["graphql-transport-ws"]).__aenter__()
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": token}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def test_two_tabs_follow_each_others_changes_on_inbox_changed(gw) -> None:
    h = gw.harness
    await h.register("ann")
    await _deliver(h, "ann", "a1", "a2", "a3")
    ann = gw.shopper("ann")
    a3, a2, a1 = await ann.ids()
    url = gw.url.replace("http", "ws") + "/graphql"
    query = "subscription { inboxChanged { kind ids unreadCount unseenCount } }"
    tabs = [await _tab(url, ann.token, query) for _ in range(2)]
    try:
        await eventually(lambda: _subscribers(gw, "ann", 2))

        async def next_change(ws: Any) -> dict[str, Any]:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert message["type"] == "next", message
            return dict(message["payload"]["data"]["inboxChanged"])

        # Tab 1 opens the list (seen), reads one, archives one, snoozes one, deletes one.
        await ann.ok("mutation { markNotificationsSeen }")
        await ann.ok(f'mutation {{ markNotificationRead(id: "{a1}") {{ id }} }}')
        await ann.ok(f'mutation {{ archiveNotification(id: "{a1}") {{ id }} }}')
        until = (h.clock() + timedelta(hours=1)).isoformat()
        await ann.ok(f'mutation {{ snoozeNotification(id: "{a2}", until: "{until}") {{ id }} }}')
        await ann.ok(f'mutation {{ deleteNotification(id: "{a3}") }}')
        expected = [
            {"kind": "SEEN", "ids": sorted([a1, a2, a3]), "unreadCount": 3, "unseenCount": 0},
            {"kind": "READ", "ids": [a1], "unreadCount": 2, "unseenCount": 0},
            {"kind": "ARCHIVED", "ids": [a1], "unreadCount": 2, "unseenCount": 0},
            {"kind": "SNOOZED", "ids": [a2], "unreadCount": 1, "unseenCount": 0},
            {"kind": "DELETED", "ids": [a3], "unreadCount": 0, "unseenCount": 0},
        ]
        for ws in tabs:
            got = [await next_change(ws) for _ in expected]
            got[0]["ids"] = sorted(got[0]["ids"])
            assert got == expected
        # Waking from the snooze reaches every tab too, with the counts after it.
        h.clock.shift(hours=2)
        assert await h.service.wake_snoozed() == 1
        for ws in tabs:
            assert await next_change(ws) == {
                "kind": "UNSNOOZED",
                "ids": [a2],
                "unreadCount": 1,
                "unseenCount": 1,
            }
    finally:
        for ws in tabs:
            await ws.close()
    await ann.consistent()


async def _subscribers(gw: Gateway, user_id: str, n: int) -> bool:
    counts = await gw.app.state.gateway.redis.pubsub_numsub(user_channel(user_id))
    return bool(counts and counts[0][1] >= n)
