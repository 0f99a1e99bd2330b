"""Preference-aware delivery against the real servers: suppression, quiet hours, the
daily cap, unknown users, idempotency, collapse, dead letters and retention."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from herald_common.db import run_db
from herald_notifications.models import Notification
from herald_testing import eventually

pytestmark = pytest.mark.integration


def decisions_metric(text: str, outcome: str, reason: str, type_: str) -> float:
    needle = (
        f'herald_notifications_decisions_total{{outcome="{outcome}",reason="{reason}",'
        f'type="{type_}"}} '
    )
    for line in text.splitlines():
        if line.startswith(needle):
            return float(line.split()[-1])
    return 0.0


async def metric(h, outcome: str, reason: str, type_: str) -> float:
    text = (await h.client.get("/metrics")).text
    return decisions_metric(text, outcome, reason, type_)


async def test_opted_out_type_is_suppressed_with_its_reason(harness) -> None:
    h = harness
    await h.register("olga", promotions=False, order_updates=False)
    before = await metric(h, "suppress", "opted_out", "promotion")
    await h.request("promo-1", "olga", "promotion")
    await h.request("order-1", "olga", "order_update")  # transactional: always delivered
    await h.settled("promo-1", "order-1")

    page = await h.inbox("olga")
    assert [e["node"]["type"] for e in page["edges"]] == ["order_update"]
    [record] = await h.deliveries("olga")
    assert record["idempotency_key"] == "promo-1"
    assert (record["outcome"], record["reason"], record["type"]) == (
        "suppressed",
        "opted_out",
        "promotion",
    )
    assert record["deliver_at"] is None and record["at"]
    assert await metric(h, "suppress", "opted_out", "promotion") == before + 1
    # Filters and admin access.
    assert await h.deliveries("olga", outcome="deferred") == []
    admin = await h.client.get(
        "/v1/deliveries", params={"user_id": "olga"}, headers=h.auth("root", "admin")
    )
    assert [r["idempotency_key"] for r in admin.json()] == ["promo-1"]


async def test_quiet_hours_defer_until_the_sweep_releases_them(harness) -> None:
    h = harness
    # 03:30 UTC on 10 March 2026 is 23:30 on the 9th in New York (EDT, UTC-4).
    h.clock.set(datetime(2026, 3, 10, 3, 30, tzinfo=UTC))
    await h.register(
        "nyla",
        timezone="America/New_York",
        quiet_hours={"start": "22:00", "end": "07:30"},
    )
    await h.request("night-promo", "nyla", "promotion", collapse_key="spring-sale")
    await h.request("night-order", "nyla", "order_update")  # not held back
    await h.settled("night-promo", "night-order")

    assert [e["node"]["type"] for e in (await h.inbox("nyla"))["edges"]] == ["order_update"]
    [record] = await h.deliveries("nyla", outcome="deferred")
    assert record["reason"] == "quiet_hours"
    assert record["deliver_at"] == "2026-03-10T11:30:00Z"  # 07:30 local
    assert await metric(h, "defer", "quiet_hours", "promotion") >= 1

    # One minute early: still held.
    early = await h.service.release_due(now=datetime(2026, 3, 10, 11, 29, tzinfo=UTC))
    assert early.created == []
    assert (await h.inbox("nyla"))["total_count"] == 1

    # The window is over: released into the inbox, sent at release time.
    h.clock.set(datetime(2026, 3, 10, 11, 30, 5, tzinfo=UTC))
    released = await h.service.release_due(now=h.clock())
    assert len(released.created) == 1
    page = await h.inbox("nyla")
    assert [e["node"]["type"] for e in page["edges"]] == ["promotion", "order_update"]
    assert page["edges"][0]["node"]["sent_at"] == "2026-03-10T11:30:05Z"
    [record] = await h.deliveries("nyla")
    assert record["outcome"] == "released" and record["reason"] == "quiet_hours"
    assert record["notification_id"] == page["edges"][0]["node"]["id"]
    assert [x["outcome"] for x in record["history"]] == ["defer", "deliver"]
    # Released once only.
    assert (await h.service.release_due(now=h.clock() + timedelta(hours=1))).handled == 0


async def test_preference_change_re_evaluates_deferred_requests(harness) -> None:
    h = harness
    h.clock.set(datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    await h.register("quinn", quiet_hours={"start": "22:00", "end": "06:00"})
    await h.request("held", "quinn", "recommendation")
    await h.settled("held")
    assert (await h.inbox("quinn"))["total_count"] == 0
    # Quinn drops quiet hours: the held recommendation goes out without waiting.
    await h.update_preferences("quinn", quiet_hours=None)
    await eventually(lambda: _total(h, "quinn"))
    # The record is decided again right after the notification is stored: wait for it.
    await eventually(lambda: _outcomes(h, "quinn"))
    [record] = await h.deliveries("quinn")
    assert record["outcome"] == "released"


async def _outcomes(h, user_id: str) -> bool:
    return [r["outcome"] for r in await h.deliveries(user_id)] == ["released"]


async def _total(h, user_id: str) -> int:
    return (await h.inbox(user_id))["total_count"]


async def test_daily_cap_counts_per_local_day(harness) -> None:
    h = harness
    await h.register("cap", max_promotions_per_day=2, timezone="Asia/Tokyo")
    for key in ("p1", "p2", "p3"):
        await h.request(key, "cap", "promotion")
    await h.request("r1", "cap", "recommendation")  # the cap is for promotions only
    await h.settled("p1", "p2", "p3", "r1")

    page = await h.inbox("cap", first=10)
    assert sorted(e["node"]["type"] for e in page["edges"]) == [
        "promotion",
        "promotion",
        "recommendation",
    ]
    [record] = await h.deliveries("cap")
    assert (record["outcome"], record["reason"]) == ("suppressed", "daily_cap")
    assert await metric(h, "suppress", "daily_cap", "promotion") >= 1

    # Redelivering a delivered promotion reuses its place; it does not consume another.
    await h.request("p1", "cap", "promotion")
    # 12:00 UTC is 21:00 in Tokyo; at 15:00 UTC it is the next local day.
    h.clock.set(datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    await h.request("p4", "cap", "promotion")
    await h.settled("p4")
    assert (await h.inbox("cap"))["total_count"] == 4


async def test_unknown_user_waits_for_registration(harness) -> None:
    h = harness
    # The request overtakes user.registered (different producers, different queues).
    await h.request("welcome", "late", "order_update")
    await h.settled("welcome")
    [record] = await h.deliveries("late")
    assert (record["outcome"], record["reason"]) == ("deferred", "unknown_user")

    await h.register("late")  # the users event re-evaluates it at once
    await eventually(lambda: _total(h, "late"))
    [record] = await h.deliveries("late")
    assert record["outcome"] == "released"


async def test_unknown_user_is_given_up_after_the_grace_period(harness) -> None:
    h = harness
    await h.request("ghost-1", "ghost", "promotion")
    await h.settled("ghost-1")
    grace = timedelta(seconds=h.settings.unknown_user_grace_seconds)
    # Rechecks before the end of the grace period keep it deferred.
    await h.service.release_due(now=h.clock() + timedelta(minutes=5))
    [record] = await h.deliveries("ghost")
    assert record["outcome"] == "deferred"
    await h.service.release_due(now=h.clock() + grace)
    [record] = await h.deliveries("ghost")
    assert (record["outcome"], record["reason"]) == ("suppressed", "unknown_user")
    assert await metric(h, "suppress", "unknown_user", "promotion") >= 1


async def test_duplicate_delivery_gives_one_notification(harness) -> None:
    h = harness
    await h.register("dup", promotions=False)
    event = h.request_event("order-9-paid", "dup", "order_update")
    for _ in range(3):
        await h.publisher.publish(event)  # the same message, redelivered
    await h.request("order-9-paid", "dup", "order_update")  # re-sent: new event, same key
    suppressed = h.request_event("promo-x", "dup", "promotion")
    await h.publisher.publish(suppressed)
    await h.publisher.publish(suppressed)
    await h.request("sentinel", "dup", "order_update")
    await h.settled("order-9-paid", "promo-x", "sentinel")
    await asyncio.sleep(0.3)  # let any straggling duplicate be handled too

    keys = [e["node"]["content"]["title"] for e in (await h.inbox("dup"))["edges"]]
    assert sorted(keys) == ["order-9-paid", "sentinel"]
    assert [r["idempotency_key"] for r in await h.deliveries("dup")] == ["promo-x"]


async def test_replicas_never_create_two_notifications_for_one_key(replicas) -> None:
    h = replicas
    await h.register("rita")
    keys = [f"k{i}" for i in range(40)]
    events = [h.request_event(k, "rita", "recommendation") for k in keys]
    # Every key twice (different event ids), interleaved so replicas race on them.
    for event in events:
        await h.publisher.publish(event)
    for key in keys:
        await h.request(key, "rita", "recommendation")
    await h.settled(*keys)
    await asyncio.sleep(0.5)
    count = await run_db(lambda: Notification.objects(user_id="rita").count())
    assert count == 40
    assert (await h.inbox("rita", first=100))["total_count"] == 40


async def test_collapse_newest_unread_wins_and_read_ones_stay(harness) -> None:
    h = harness
    await h.register("cole")
    t0 = h.clock()

    async def update(status: str, minutes: int) -> None:
        await h.request(
            f"order-7-{status}",
            "cole",
            "order_update",
            content={"title": f"Order 7 {status}"},
            collapse_key="order:7",
            requested_at=t0 + timedelta(minutes=minutes),
        )

    await update("placed", 0)
    await update("paid", 1)
    await update("shipped", 2)
    await h.request("other", "cole", "order_update", collapse_key="order:8")
    await h.settled("order-7-placed", "order-7-paid", "order-7-shipped", "other")

    async def titles() -> list:
        page = await h.inbox("cole")
        return sorted(
            (e["node"]["content"]["title"] if isinstance(e["node"]["content"], dict) else "-")
            + ("/read" if e["node"]["read"] else "")
            for e in page["edges"]
        )

    assert await titles() == ["Order 7 shipped", "other"]
    assert await h.unread("cole") == 2

    # An update that arrives late (older than the newest) never shows up.
    await update("paid-late", 1)
    await h.settled("order-7-paid-late")
    assert await titles() == ["Order 7 shipped", "other"]
    late = [r for r in await h.deliveries("cole") if r["idempotency_key"] == "order-7-paid-late"]
    assert late[0]["reason"] == "superseded"

    # Read ones stay; the next update shows next to it.
    await h.relayed()
    shipped = next(
        e["node"]["id"]
        for e in (await h.inbox("cole"))["edges"]
        if e["node"]["content"].get("title") == "Order 7 shipped"
    )
    await h.client.post(f"/v1/notifications/{shipped}/read", headers=h.auth("cole"))
    await update("delivered", 3)
    await h.settled("order-7-delivered")
    assert await titles() == ["Order 7 delivered", "Order 7 shipped/read", "other"]
    # An older update was either stored and then hidden, which makes it gone for direct
    # reads too, or (in the same batch as a newer one) superseded and never stored.
    reasons = {r["idempotency_key"]: r["reason"] for r in await h.deliveries("cole")}
    for older in ("order-7-placed", "order-7-paid"):
        stored = await run_db(lambda k=older: Notification.objects(idempotency_key=k).first())
        if stored is None:
            assert reasons[older] == "superseded"
        else:
            response = await h.client.get(f"/v1/notifications/{stored.id}", headers=h.auth("cole"))
            assert response.status_code == 404


async def test_malformed_event_is_dead_lettered_and_neighbours_are_processed(harness) -> None:
    h = harness
    await h.register("mal")
    await h.request("before", "mal", "order_update")
    bad = json.loads(h.request_event("bad", "mal", "order_update").to_bytes())
    bad["payload"]["type"] = "carrier_pigeon"
    await h.publisher.publish_raw(json.dumps(bad).encode(), routing_key="notification.requested")
    await h.publisher.publish_raw(b"{not json", routing_key="notification.requested")
    await h.request("after", "mal", "order_update")
    await h.settled("before", "after")
    assert (await h.inbox("mal"))["total_count"] == 2

    admin = h.auth("root", "admin")
    queue = h.settings.requests_queue

    async def dead_letters() -> list:
        response = await h.client.get(
            "/v1/admin/dead-letters", params={"queue": queue}, headers=admin
        )
        assert response.status_code == 200, response.text
        [entry] = response.json()
        return entry["messages"] if entry["count"] == 2 else []

    letters = await eventually(dead_letters)
    errors = [m["error"] for m in letters]
    assert all(e.startswith("invalid event") for e in errors)
    assert any("payload.type" in e for e in errors)
    assert any("body: not JSON" in e for e in errors)
    # Users cannot see dead letters.
    forbidden = await h.client.get("/v1/admin/dead-letters", headers=h.auth("mal"))
    assert forbidden.status_code == 403


async def test_retention_sweep_purges_old_notifications(harness) -> None:
    h = harness
    await h.register("rex")
    await h.request("old", "rex", "order_update")
    await h.settled("old")
    h.clock.shift(days=30)
    await h.request("new", "rex", "order_update")
    await h.settled("new")
    await h.relayed()

    purged = await h.service.purge(now=h.clock() + timedelta(days=h.settings.retention_days - 10))
    assert purged["notifications"] == 1
    page = await h.inbox("rex")
    assert [e["node"]["content"]["title"] for e in page["edges"]] == ["new"]


async def test_deleted_user_loses_inbox_and_gets_nothing_new(harness) -> None:
    h = harness
    await h.register("del")
    await h.request("first", "del", "order_update")
    await h.settled("first")
    await h.relayed()
    await h.delete_user("del")
    await eventually(lambda: _empty(h, "del"))
    await h.request("after-delete", "del", "order_update")
    await h.settled("after-delete")
    [record] = await h.deliveries("del")
    assert (record["outcome"], record["reason"]) == ("suppressed", "user_deleted")


async def _empty(h, user_id: str) -> bool:
    return (await h.inbox(user_id))["total_count"] == 0


async def test_service_reports_ready(harness) -> None:
    response = await harness.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"mongodb": True, "redis": True, "rabbitmq": True}


async def test_collapse_with_racing_replicas_leaves_the_newest(replicas) -> None:
    h = replicas
    await h.register("race")
    t0 = h.clock()
    order = [3, 7, 0, 5, 1, 6, 2, 4]  # shuffled: replicas see them out of order
    for i in order:
        await h.request(
            f"o-{i}",
            "race",
            "order_update",
            content={"title": f"step {i}"},
            collapse_key="order:race",
            requested_at=t0 + timedelta(seconds=i),
        )
    await h.settled(*(f"o-{i}" for i in order))
    await h.relayed()
    # The sweep re-settles recent groups (needed on FerretDB only, harmless elsewhere).
    await h.service.release_due()

    async def shown() -> list[str]:
        page = await h.inbox("race")
        return [e["node"]["content"]["title"] for e in page["edges"]]

    await eventually(lambda: _equals(shown(), ["step 7"]))
    hidden = await run_db(lambda: list(Notification.objects(user_id="race", replaced=True)))
    assert "o-7" not in {n.idempotency_key for n in hidden}  # the newest is never hidden


async def _equals(value, expected) -> bool:
    return await value == expected
