"""The inbox end to end: request → stored → listed → read, events, real time, access
rules, pagination and input validation (real servers)."""

from __future__ import annotations

import asyncio
import json

import pytest
from herald_common.events import Envelope
from herald_common.redis_client import create_redis, user_channel
from herald_testing import eventually

pytestmark = pytest.mark.integration


async def test_request_is_stored_listed_pushed_and_read(harness, unique) -> None:
    h = harness
    events: list[Envelope] = []

    async def observe(event: Envelope) -> None:
        events.append(event)

    await h.publisher.consume(
        f"observer.{unique}", ["notification.created", "notification.read"], observe
    )
    await h.register("ann")
    redis = create_redis(h.settings)
    pubsub = redis.pubsub()
    await pubsub.subscribe(user_channel("ann"))
    try:
        await h.request("order-1-shipped", "ann", "order_update", content="Your order shipped")
        await h.settled("order-1-shipped")

        page = await h.inbox("ann")
        assert page["total_count"] == 1
        [edge] = page["edges"]
        node = edge["node"]
        assert node["user_id"] == "ann" and node["type"] == "order_update"
        assert node["content"] == "Your order shipped"
        assert node["read"] is False and node["read_at"] is None
        assert node["source"] == "scheduler"
        assert set(node) == {
            "id", "user_id", "type", "content", "sent_at", "read", "read_at",
            "seen", "seen_at", "archived", "archived_at", "snoozed_until",
            "collapse_key", "source", "reason",
        }  # fmt: skip
        assert await h.unread("ann") == 1
        unread = await h.inbox("ann", unread_only="true")
        assert [e["node"]["id"] for e in unread["edges"]] == [node["id"]]

        # Real time: the same JSON on the user's channel.
        async def pushed() -> dict | None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            return json.loads(message["data"]) if message else None

        assert await eventually(pushed) == node

        # notification.created went out through the outbox.
        await eventually(lambda: any(e.type == "notification.created" for e in events))
        created = next(e for e in events if e.type == "notification.created")
        assert created.payload.notification_id == node["id"]
        assert created.payload.idempotency_key == "order-1-shipped"
        await h.relayed()  # see test_mark_all_read_returns_how_many_changed

        response = await h.client.post(
            f"/v1/notifications/{node['id']}/read", headers=h.auth("ann")
        )
        assert response.status_code == 200, response.text
        assert response.json()["read"] is True and response.json()["read_at"]
        assert await h.unread("ann") == 1 - 1
        assert (await h.inbox("ann", unread_only="true"))["total_count"] == 0
        assert (await h.inbox("ann"))["total_count"] == 1  # still listed, as read

        await eventually(lambda: any(e.type == "notification.read" for e in events))
        read = next(e for e in events if e.type == "notification.read")
        assert read.payload.notification_ids == [node["id"]]
        # Reading again changes nothing and publishes nothing new.
        again = await h.client.post(f"/v1/notifications/{node['id']}/read", headers=h.auth("ann"))
        assert again.json()["read_at"] == response.json()["read_at"]
        await asyncio.sleep(0.3)
        assert sum(e.type == "notification.read" for e in events) == 1
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def test_mark_all_read_returns_how_many_changed(harness, unique) -> None:
    h = harness
    reads: list[Envelope] = []

    async def observe(event: Envelope) -> None:
        reads.append(event)

    await h.publisher.consume(f"observer.{unique}", ["notification.read"], observe)
    await h.register("bo")
    await h.register("cy")
    keys = [f"promo-{i}" for i in range(4)]
    for key in keys:
        await h.request(key, "bo")
    await h.request("cy-1", "cy")
    await h.settled(*keys, "cy-1")
    first = (await h.inbox("bo"))["edges"][0]["node"]["id"]
    # FerretDB 1.x applies an update as read-modify-write without isolation, so the
    # relay clearing a fresh document's outbox can undo a concurrent change of it
    # (MongoDB does not). Let the relay finish first: this test is about mark-all.
    await h.relayed()
    marked = await h.client.post(f"/v1/notifications/{first}/read", headers=h.auth("bo"))
    assert marked.status_code == 200, marked.text

    response = await h.client.post("/v1/notifications/read-all", headers=h.auth("bo"))
    assert response.status_code == 200
    assert response.json() == {"changed": 3}
    assert await h.unread("bo") == 0
    assert await h.unread("cy") == 1  # nobody else's
    again = await h.client.post("/v1/notifications/read-all", headers=h.auth("bo"))
    assert again.json() == {"changed": 0}
    await eventually(lambda: len(reads) == 4)
    assert sorted(i for e in reads for i in e.payload.notification_ids) == sorted(
        e["node"]["id"] for e in (await h.inbox("bo"))["edges"]
    )


async def test_users_cannot_see_or_change_each_others_notifications(harness) -> None:
    h = harness
    await h.register("ann")
    await h.register("bob")
    await h.request("bob-secret", "bob", "order_update", content="Bob's parcel")
    await h.settled("bob-secret")
    await h.relayed()  # see test_mark_all_read_returns_how_many_changed
    bob_id = (await h.inbox("bob"))["edges"][0]["node"]["id"]

    # Ann: 404 for Bob's notification (indistinguishable from a missing one).
    for method, path in (("GET", ""), ("POST", "/read")):
        response = await h.client.request(
            method, f"/v1/notifications/{bob_id}{path}", headers=h.auth("ann")
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert (await h.inbox("ann"))["total_count"] == 0
    assert await h.unread("bob") == 1  # untouched
    # Ann's mark-all does not touch Bob's.
    await h.client.post("/v1/notifications/read-all", headers=h.auth("ann"))
    assert await h.unread("bob") == 1
    # Ann cannot read Bob's delivery records either.
    response = await h.client.get(
        "/v1/deliveries", params={"user_id": "bob"}, headers=h.auth("ann")
    )
    assert response.status_code == 403

    # An admin can read and mark it.
    admin = h.auth("root", "admin")
    response = await h.client.get(f"/v1/notifications/{bob_id}", headers=admin)
    assert response.status_code == 200 and response.json()["user_id"] == "bob"
    response = await h.client.post(f"/v1/notifications/{bob_id}/read", headers=admin)
    assert response.status_code == 200 and response.json()["read"] is True
    assert await h.unread("bob") == 0

    # No token, no inbox.
    assert (await h.client.get("/v1/notifications")).status_code == 401
    bad = await h.client.get("/v1/notifications", headers={"authorization": "Bearer x.y.z"})
    assert bad.status_code == 401


async def test_pagination_has_no_duplicates_or_gaps_and_is_stable(harness) -> None:
    h = harness
    await h.register("pam")
    keys = [f"n{i:02d}" for i in range(25)]
    for i, key in enumerate(keys):
        await h.request(key, "pam", "recommendation" if i % 5 == 0 else "promotion")
        if i % 10 == 9:
            h.clock.shift(seconds=1)  # several share one sent_at: the id breaks the tie
    await h.settled(*keys)

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params = {"first": 10, **({"after": after} if after else {})}
        page = await h.inbox("pam", **params)
        pages += 1
        assert page["total_count"] == 25 + (pages > 1) * 2
        seen += [e["node"]["id"] for e in page["edges"]]
        if pages == 1:
            # New notifications arriving while paging appear on top, not in later pages.
            h.clock.shift(seconds=5)
            await h.request("late-1", "pam")
            await h.request("late-2", "pam")
            await h.settled("late-1", "late-2")
        if not page["page_info"]["has_next_page"]:
            break
        after = page["page_info"]["end_cursor"]
        assert after == page["edges"][-1]["cursor"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    sent = [n["node"]["sent_at"] for n in (await h.inbox("pam", first=100))["edges"]]
    assert sent == sorted(sent, reverse=True)  # newest first

    recs = await h.inbox("pam", type="recommendation", first=100)
    assert recs["total_count"] == 5
    assert {e["node"]["type"] for e in recs["edges"]} == {"recommendation"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"type": "carrier_pigeon"}, "type"),
        ({"after": "not-a-cursor"}, "after"),
        ({"unread_only": "maybe"}, "unread_only"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(harness, params, field) -> None:
    response = await harness.client.get(
        "/v1/notifications", params=params, headers=harness.auth("ann")
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    assert response.json()["error"]["field"] == field


async def test_unknown_notification_is_404(harness) -> None:
    response = await harness.client.get("/v1/notifications/nope", headers=harness.auth("ann"))
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "id"
