"""The inbox as a shopper uses it: the real gateway (GraphQL over HTTP and WebSocket) in
front of the real notifications app, on the real servers, with an injected clock.

Seen vs read, bulk read, archive, snooze expiry, delete by a stranger, two tabs on
``inboxChanged``, and the counts staying equal to what the lists show.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from herald_common.redis_client import inbox_version_key, user_channel
from herald_testing import eventually, serve_app
from herald_testing.ports import free_port
from websockets.asyncio.client import connect

from herald_gateway.config import GatewaySettings
from herald_gateway.main import create_app as create_gateway

pytestmark = pytest.mark.integration

NODE = "id type read readAt seen seenAt archived archivedAt snoozedUntil sentAt"
INBOX = f"""query($archived: Boolean) {{
  unreadCount unseenCount
  notifications(first: 100, archived: $archived) {{ totalCount edges {{ node {{ {NODE} }} }} }}
}}"""


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
    """The gateway on a free port; its notifications client reaches the harness's app,
    served on a port of its own (its lifespan is the harness's)."""
    service_port = free_port()
    service, serving = await serve_app(harness.apps[0], service_port, lifespan=False)
    port = free_port()
    settings = make_settings(
        GatewaySettings,
        component="gateway",
        jwt_public_key_pem=issuer.public_pem,
        cache_queue=f"gateway.cache.t{unique}",
        redis_prefix=f"herald:gw:t{unique}",
        port=port,
        notifications_url=f"http://127.0.0.1:{service_port}",
    )
    app = create_gateway(settings)
    server, task = await serve_app(app, port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        try:
            yield Gateway(harness, url, client, app)
        finally:
            server.should_exit = True
            await task
            service.should_exit = True
            await serving


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


async def test_a_push_is_never_ahead_of_the_cached_inbox(gw) -> None:
    """The gateway caches inbox pages and counts; a shopper who re-reads on every push
    still sees each new notification at once (the service bumps the inbox version before
    it pushes), and a list without ``totalCount`` does not ask the service for it."""
    h = gw.harness
    await h.register("noa")
    await _deliver(h, "noa", "n1")
    noa = gw.shopper("noa")
    light = "{ unreadCount notifications(first: 20) { edges { node { id } } } }"
    first = await noa.ok(light)
    assert first["unreadCount"] == 1 and len(first["notifications"]["edges"]) == 1
    # A list without totalCount is served without counting the whole list.
    assert (await h.inbox("noa", total="false"))["total_count"] is None
    assert (await h.inbox("noa"))["total_count"] == 1
    version = await gw.app.state.gateway.redis.get(inbox_version_key("noa"))

    url = gw.url.replace("http", "ws") + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"authorization": noa.token}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": "subscription { notificationAdded { id } }"}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        await eventually(lambda: _subscribed(gw, "noa"))
        for n, key in enumerate(("n2", "n3", "n4"), start=2):
            await h.request(key, "noa", "order_update", content={"title": key, "body": "b"})
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            pushed = message["payload"]["data"]["notificationAdded"]["id"]
            data = await noa.ok(light)  # at once, through the cache
            ids = [e["node"]["id"] for e in data["notifications"]["edges"]]
            # (the harness's clock stands still: equal times, so no order to check)
            assert pushed in ids and len(ids) == n, (key, data)
            assert data["unreadCount"] == n
    assert await gw.app.state.gateway.redis.get(inbox_version_key("noa")) != version
    data = await noa.consistent()
    assert data["notifications"]["totalCount"] == 4


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
    """``n`` subscriptions of the user are open in the gateway, and its channel is
    subscribed in Redis (once: the gateway's tabs share one channel subscription)."""
    channel = user_channel(user_id)
    counts = await gw.app.state.gateway.redis.pubsub_numsub(channel)
    in_redis = bool(counts and counts[0][1] >= 1)
    return in_redis and gw.app.state.gateway.realtime.subscribers(channel) >= n


# --- digests ----------------------------------------------------------------------------

DIGESTS = """{ notifications(first: 100, type: null) {
  edges { node { id type content read seen } } } unreadCount }"""


def _digests(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["node"] for e in data["notifications"]["edges"] if e["node"]["type"] == "DIGEST"]


def _item_keys(digest: dict[str, Any]) -> list[str]:
    return [i["key"] for i in digest["content"]["data"]["items"]]


async def _request(h: Any, key: str, user_id: str, type_: str) -> None:
    await h.request(key, user_id, type_, content={"title": key, "body": "b", "data": {"k": key}})


async def _held(user_id: str, *keys: str) -> None:
    """Wait until the requests are held for a digest (stored before their ack)."""
    from herald_common.db import run_db
    from herald_notifications import digest_store

    await eventually(lambda: run_db(lambda: all(digest_store.is_held(k) for k in keys)))


async def test_daily_digest_follows_the_paris_clock_across_the_dst_change(gw) -> None:
    """08:00 in Paris is 07:00 UTC on Saturday 28 March 2026 and 06:00 UTC on Sunday 29
    (summer time starts at 02:00 that night): the digest comes at 08:00 local."""
    from herald_common.db import run_db
    from herald_common.events import NotificationRequested
    from herald_notifications import delivery
    from herald_notifications.service import policy_from

    h = gw.harness
    h.clock.set(datetime(2026, 3, 28, 10, 0, tzinfo=UTC))
    digest = {"frequency": "daily", "at": "08:00", "types": ["promotion", "recommendation"]}
    await h.register("ann", timezone="Europe/Paris", digest=digest)
    ann = gw.shopper("ann")
    await _request(h, "promo-1", "ann", "promotion")
    await _request(h, "rec-1", "ann", "recommendation")
    await _request(h, "order-1", "ann", "order_update")  # never held
    await h.settled("order-1")
    await _held("ann", "promo-1", "rec-1")
    # The same request sent again, and redelivered by the broker: still one entry.
    await _request(h, "promo-1", "ann", "promotion")
    await h.request("promo-2", "ann", "promotion", content="Text only")
    await _held("ann", "promo-2")
    again = NotificationRequested.model_validate(
        h.request_event("promo-1", "ann", "promotion").payload.model_dump()
    )
    await run_db(
        delivery.process_requests,
        [again],
        h.clock(),
        policy_from(h.settings),
        source="test",
        maybe_seen={"promo-1"},
    )
    data = await ann.ok(DIGESTS)
    assert [e["node"]["type"] for e in data["notifications"]["edges"]] == ["ORDER_UPDATE"]

    # 07:00 UTC on Sunday is 09:00 summer time: an hour late. 05:59 UTC is 07:59 local.
    assert (await h.service.send_digests(datetime(2026, 3, 29, 5, 59, tzinfo=UTC))).slots == 0
    run = await h.service.send_digests(datetime(2026, 3, 29, 6, 1, tzinfo=UTC))
    assert run.summary() == {"slots": 1, "sent": 1, "empty": 0, "moved_by_quiet_hours": 0}
    data = await ann.ok(DIGESTS)
    [digest_node] = _digests(data)
    # In request order (requested at the same instant here: then by key).
    assert _item_keys(digest_node) == ["promo-1", "promo-2", "rec-1"]
    first = digest_node["content"]["data"]["items"][0]
    assert first == {
        "key": "promo-1",
        "type": "promotion",
        "title": "promo-1",
        "body": "b",
        "data": {"k": "promo-1"},
    }
    assert digest_node["content"]["data"]["items"][1]["body"] == "Text only"
    assert digest_node["content"]["data"]["slot"].startswith("2026-03-29T06:00:00")
    assert digest_node["read"] is False and data["unreadCount"] == 2
    only = await ann.ok("{ notifications(type: DIGEST) { totalCount edges { node { id } } } }")
    assert only["notifications"]["totalCount"] == 1
    assert only["notifications"]["edges"][0]["node"]["id"] == digest_node["id"]
    # A retry, a second runner or a late redelivery never makes a second digest or entry.
    assert (await h.service.send_digests(datetime(2026, 3, 29, 6, 5, tzinfo=UTC))).slots == 0
    await _request(h, "promo-1", "ann", "promotion")
    h.clock.set(datetime(2026, 3, 29, 7, 0, tzinfo=UTC))
    await _request(h, "rec-2", "ann", "recommendation")
    await _held("ann", "rec-2")
    run = await h.service.send_digests(datetime(2026, 3, 30, 6, 1, tzinfo=UTC))
    assert run.summary()["sent"] == 1
    digests = _digests(await ann.ok(DIGESTS))
    assert [_item_keys(d) for d in digests] == [["rec-2"], ["promo-1", "promo-2", "rec-1"]]
    await ann.consistent()


async def test_quiet_hours_move_the_whole_digest_and_the_cap_counts_it_once(gw) -> None:
    h = gw.harness
    h.clock.set(datetime(2026, 3, 10, 21, 10, tzinfo=UTC))
    await h.register(
        "ann",
        digest={"frequency": "hourly"},
        quiet_hours={"start": "22:00", "end": "07:00"},
        max_promotions_per_day=1,
    )
    ann = gw.shopper("ann")
    for key, type_ in (("p1", "promotion"), ("p2", "promotion"), ("r1", "recommendation")):
        await _request(h, key, "ann", type_)
    await _held("ann", "p1", "p2", "r1")

    # The 22:00 slot falls in quiet hours: the whole digest waits until 07:00.
    run = await h.service.send_digests(datetime(2026, 3, 10, 22, 1, tzinfo=UTC))
    assert run.summary() == {"slots": 1, "sent": 0, "empty": 0, "moved_by_quiet_hours": 1}
    assert _digests(await ann.ok(DIGESTS)) == []
    assert (await h.service.send_digests(datetime(2026, 3, 11, 6, 59, tzinfo=UTC))).slots == 0
    run = await h.service.send_digests(datetime(2026, 3, 11, 7, 1, tzinfo=UTC))
    assert run.summary()["sent"] == 1
    [digest_node] = _digests(await ann.ok(DIGESTS))
    # Two promotions in one digest take one place of a cap of one.
    assert _item_keys(digest_node) == ["p1", "p2", "r1"]

    # The day's place is taken: the next slot's promotions are left out, and a slot left
    # with nothing sends nothing.
    h.clock.set(datetime(2026, 3, 11, 7, 10, tzinfo=UTC))
    await _request(h, "p3", "ann", "promotion")
    await _held("ann", "p3")
    run = await h.service.send_digests(datetime(2026, 3, 11, 8, 1, tzinfo=UTC))
    assert run.summary() == {"slots": 1, "sent": 0, "empty": 1, "moved_by_quiet_hours": 0}
    assert len(_digests(await ann.ok(DIGESTS))) == 1


async def test_an_empty_slot_sends_nothing(gw) -> None:
    h = gw.harness
    h.clock.set(datetime(2026, 3, 10, 9, 10, tzinfo=UTC))
    await h.register("ann", digest={"frequency": "hourly", "types": ["recommendation"]})
    ann = gw.shopper("ann")
    await _request(h, "p1", "ann", "promotion")  # not held: delivered at once
    await h.settled("p1")
    assert (await h.service.send_digests(datetime(2026, 3, 10, 10, 1, tzinfo=UTC))).slots == 0
    # Held, then the user opts out of recommendations: the slot has nothing to send.
    await _request(h, "r1", "ann", "recommendation")
    await _held("ann", "r1")
    await h.update_preferences(
        "ann", recommendations=False, digest={"frequency": "hourly", "types": ["recommendation"]}
    )
    from herald_common.db import run_db
    from herald_common.replica import get_users

    await eventually(
        lambda: run_db(lambda: get_users(["ann"])["ann"]["preferences"]["recommendations"] is False)
    )
    run = await h.service.send_digests(datetime(2026, 3, 10, 10, 1, tzinfo=UTC))
    assert run.summary() == {"slots": 1, "sent": 0, "empty": 1, "moved_by_quiet_hours": 0}
    data = await ann.ok(DIGESTS)
    assert [e["node"]["type"] for e in data["notifications"]["edges"]] == ["PROMOTION"]


@pytest.mark.slow
async def test_the_digest_command_sends_due_digests_as_a_process(gw, unique) -> None:
    """``herald-notifications digest`` (what the Schedule's CronJob and the local runner
    run) against the same servers; its slots are due by the wall clock."""
    import os
    import sys
    from pathlib import Path

    h = gw.harness
    h.clock.set(datetime(2026, 3, 10, 9, 10, tzinfo=UTC))
    await h.register("ann", digest={"frequency": "hourly"})
    ann = gw.shopper("ann")
    await _request(h, "p1", "ann", "promotion")
    await _request(h, "r1", "ann", "recommendation")
    await _held("ann", "p1", "r1")
    s = h.settings
    env = {
        **os.environ,
        "HERALD_NOTIFICATIONS_MONGODB_URI": s.mongodb_uri,
        "HERALD_NOTIFICATIONS_MONGODB_DB": s.mongodb_db,
        "HERALD_NOTIFICATIONS_AMQP_URL": s.amqp_url.get_secret_value(),
        "HERALD_NOTIFICATIONS_REDIS_URL": s.redis_url,
        "HERALD_NOTIFICATIONS_EVENTS_EXCHANGE": s.events_exchange,
        "HERALD_NOTIFICATIONS_DEAD_LETTER_EXCHANGE": s.dead_letter_exchange,
        "HERALD_NOTIFICATIONS_LOG_JSON": "false",
    }
    command = str(Path(sys.executable).parent / "herald-notifications")

    async def run() -> dict[str, int]:
        proc = await asyncio.create_subprocess_exec(
            command, "digest", env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    assert await run() == {"slots": 1, "sent": 1, "empty": 0, "moved_by_quiet_hours": 0}
    [digest_node] = _digests(await ann.ok(DIGESTS))
    assert sorted(_item_keys(digest_node)) == ["p1", "r1"]
    assert (await run())["slots"] == 0  # the next run finds nothing to send again
