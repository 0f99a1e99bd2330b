"""The README walkthrough through GraphQL against all of Herald, as a new user would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from herald_testing import eventually
from websockets.asyncio.client import connect

from .conftest import ADMIN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INBOX = """query Inbox($first: Int) {
  unreadCount
  notifications(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id userId type content sentAt read readAt } }
  }
}"""
PREFS = """mutation Prefs($input: PreferencesInput!) {
  updatePreferences(input: $input) {
    id
    preferences { promotions orderUpdates recommendations channels timezone maxPromotionsPerDay
                  quietHours { start end } }
  }
}"""


class Subscription:
    """A graphql-transport-ws subscription to notificationAdded, collecting messages."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.received: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.acked = asyncio.Event()

    async def _run(self) -> None:
        async with connect(self.url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "connection_init",
                        "payload": {"authorization": f"Bearer {self.token}"},
                    }
                )
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = "subscription { notificationAdded { id userId type content sentAt read } }"
            await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": query}}))
            self.acked.set()
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "next":
                    self.received.append(message["payload"]["data"]["notificationAdded"])
                elif message["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                else:
                    self.received.append({"unexpected": message})

    async def __aenter__(self) -> Subscription:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.acked.wait(), 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_walkthrough(herald, gql) -> None:
    # 1. Register (with some preferences) and log in.
    ann = await gql.register("Ann", {"promotions": True, "timezone": "UTC"})
    assert ann["expiresIn"] > 0 and ann["refreshToken"]
    token = await gql.login(ann["email"], ann["password"])
    me = (
        await gql(
            "{ me { id name email createdAt preferences { promotions timezone } } }", token=token
        )
    )["me"]
    assert me["id"] == ann["user"]["id"] and me["name"] == "Ann"

    # 2. Preferences: everything on, no quiet hours so delivery is immediate.
    prefs = await gql(
        PREFS,
        {
            "input": {
                "promotions": True,
                "orderUpdates": True,
                "recommendations": True,
                "channels": ["in_app", "email"],
                "quietHours": None,
                "maxPromotionsPerDay": 10,
            }
        },
        token=token,
    )
    assert prefs["updatePreferences"]["preferences"]["channels"] == ["in_app", "email"]
    assert prefs["updatePreferences"]["preferences"]["quietHours"] is None

    async with Subscription(herald.ws_url, token) as live:
        # 3. Recommendations for a new user (popular items) give product ids to use.
        recs = (
            await gql(
                "{ recommendations(first: 5) { productId name category score explanation } }",
                token=token,
            )
        )["recommendations"]
        assert recs and all(r["explanation"] for r in recs)
        viewed, bought = recs[0]["productId"], recs[1]["productId"]

        # 4. Track activity, including a purchase (which places an order).
        accepted = await gql(
            """mutation Track($events: [ActivityInput!]!) { trackActivity(events: $events) }""",
            {
                "events": [
                    {"kind": "VIEW", "productId": viewed},
                    {"kind": "VIEW", "productId": bought},
                    {"kind": "ADD_TO_CART", "productId": bought},
                    {"kind": "PURCHASE", "productId": bought},
                ]
            },
            token=token,
        )
        assert accepted == {"trackActivity": 4}

        # 5. A promotion campaign (the local runner also fires it every few seconds).
        admin = await gql.login(*ADMIN)
        run = (
            await gql(
                'mutation { fireCampaign(name: "flash-sale") { runId campaign type dryRun status } }',
                token=admin,
            )
        )["fireCampaign"]
        assert run["campaign"] == "flash-sale" and run["type"] == "PROMOTION"

        # 6. Recommendation, order and promotion notifications arrive in the inbox...
        async def inbox_types() -> Any:
            data = await gql(INBOX, {"first": 50}, token=token)
            types = {e["node"]["type"] for e in data["notifications"]["edges"]}
            return data if {"RECOMMENDATION", "ORDER_UPDATE", "PROMOTION"} <= types else None

        inbox = await eventually(inbox_types, timeout=90, interval=1)
        nodes = [e["node"] for e in inbox["notifications"]["edges"]]
        assert {n["userId"] for n in nodes} == {ann["user"]["id"]}
        # Nothing was read yet (the count is resolved separately and may include newer ones).
        assert all(not n["read"] for n in nodes)
        assert inbox["unreadCount"] >= 1

        # ...and on the subscription, as they are created.
        await eventually(
            lambda: {n.get("type") for n in live.received} >= {"ORDER_UPDATE", "PROMOTION"},
            timeout=60,
        )
        assert all("unexpected" not in n for n in live.received), live.received
        inbox_ids = {n["id"] for n in nodes}
        assert {n["id"] for n in live.received} & inbox_ids

    # 7. The order is there.
    orders = (
        await gql(
            "{ orders { id status total items { productId name quantity price } } }", token=token
        )
    )["orders"]
    assert any(i["productId"] == bought for o in orders for i in o["items"])

    # 8. Mark one read: it leaves the unread list and the count drops by one; then mark all
    #    read. The local runner keeps delivering meanwhile, so compare sets of ids, not
    #    bare counts.
    unread_query = (
        "{ unreadCount notifications(first: 100, unreadOnly: true) { edges { node { id } } } }"
    )

    async def unread_ids() -> tuple[int, set[str]]:
        data = await gql(unread_query, token=token)
        return data["unreadCount"], {e["node"]["id"] for e in data["notifications"]["edges"]}

    _, before_ids = await unread_ids()
    unread = next(n for n in nodes if not n["read"])
    marked = (
        await gql(
            "mutation($id: ID!) { markNotificationRead(id: $id) { id read readAt } }",
            {"id": unread["id"]},
            token=token,
        )
    )["markNotificationRead"]
    assert marked["read"] is True and marked["readAt"]
    count_after, after_ids = await unread_ids()
    assert unread["id"] not in after_ids
    # Of what was unread before, only the marked one was read. Others may have left the
    # inbox meanwhile: a newer update of the same order replaces an unread older one
    # (collapse), and a replaced notification is listed nowhere, read or not.
    vanished = before_ids - after_ids - {unread["id"]}
    if vanished:
        listed = await gql(
            "{ notifications(first: 100) { edges { node { id read } } } }", token=token
        )
        read_now = {e["node"]["id"] for e in listed["notifications"]["edges"] if e["node"]["read"]}
        assert not vanished & read_now, "only the marked notification was read"
    assert count_after == len(after_ids)
    changed = (await gql("mutation { markAllNotificationsRead }", token=token))[
        "markAllNotificationsRead"
    ]
    assert changed >= len(after_ids)
    _, remaining = await unread_ids()
    assert not remaining & (before_ids | after_ids), "everything unread before is now read"


async def test_subscription_delivers_a_new_notification(herald, gql) -> None:
    """A purchase's order_update reaches an open subscription (arrival, not timing)."""
    bob = await gql.register("Bob")
    token = bob["accessToken"]
    product = (await gql("{ recommendations(first: 1) { productId } }", token=token))[
        "recommendations"
    ][0]
    async with Subscription(herald.ws_url, token) as live:
        await gql(
            "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }",
            {"p": product["productId"]},
            token=token,
        )
        await eventually(
            lambda: any(n.get("type") == "ORDER_UPDATE" for n in live.received), timeout=60
        )
    pushed = next(n for n in live.received if n["type"] == "ORDER_UPDATE")
    assert pushed["userId"] == bob["user"]["id"] and pushed["read"] is False
    fetched = (
        await gql(
            "query($id: ID!) { notification(id: $id) { id type } }",
            {"id": pushed["id"]},
            token=token,
        )
    )["notification"]
    assert fetched == {"id": pushed["id"], "type": "ORDER_UPDATE"}


async def test_cache_invalidated_after_preference_update(herald, gql) -> None:
    cat = await gql.register("Cat")
    token = cat["accessToken"]
    query = "{ me { preferences { promotions timezone maxPromotionsPerDay } } }"
    first = (await gql(query, token=token))["me"]["preferences"]
    assert (await gql(query, token=token))["me"]["preferences"] == first  # served from cache
    await gql(
        PREFS,
        {"input": {"promotions": False, "timezone": "Asia/Tokyo", "maxPromotionsPerDay": 2}},
        token=token,
    )
    assert (await gql(query, token=token))["me"]["preferences"] == {
        "promotions": False,
        "timezone": "Asia/Tokyo",
        "maxPromotionsPerDay": 2,
    }
    metrics = (await gql.client.get(f"{herald.url}/metrics")).text
    # The repeated query was answered whole from the cache; its first run filled it.
    assert 'herald_gateway_cache_total{entity="operation",result="hit"}' in metrics
    assert 'herald_gateway_cache_total{entity="me",result="miss"}' in metrics


async def test_refresh_and_logout(herald, gql) -> None:
    dan = await gql.register("Dan")
    renewed = (
        await gql(
            "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken refreshToken user { id } } }",
            {"r": dan["refreshToken"]},
        )
    )["refreshToken"]
    assert renewed["user"]["id"] == dan["user"]["id"]
    token = renewed["accessToken"]
    assert (await gql("mutation { logout }", token=token)) == {"logout": True}
    r = await gql.raw("{ me { id } }", token=token)
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
