"""The caller's delivery log: a sentence per held or dropped request in the user's time
zone, keyset pages, typed errors; and the reasons of delivered notifications."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from herald_testing import eventually

pytestmark = pytest.mark.integration


async def log_page(h, user: str, **params) -> dict:
    r = await h.client.get("/v1/deliveries/log", params=params, headers=h.auth(user))
    assert r.status_code == 200, r.text
    return r.json()


async def test_log_explains_each_decision_and_pages(harness) -> None:
    h = harness
    h.clock.set(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    await h.register(
        "lena",
        promotions=True,
        recommendations=False,
        timezone="Europe/Paris",
        max_promotions_per_day=1,
        quiet_hours={"start": "12:00", "end": "14:00"},  # 11:00-13:00 UTC
    )
    await h.request("held", "lena", "promotion")
    await h.request("off", "lena", "recommendation")
    await h.settled("held", "off")

    # Wait until the deferral is settled at the window's end (the user.registered
    # handler may re-evaluate it after the request was decided).
    async def held() -> bool:
        records = await h.deliveries("lena", outcome="deferred")
        return [r["deliver_at"] for r in records] == ["2026-03-10T13:00:00Z"]

    await eventually(held)
    h.clock.set(datetime(2026, 3, 10, 13, 30, tzinfo=UTC))
    # Released after the window; it takes the day's one promotion, so the next is capped.
    await h.service.release_due(now=h.clock())
    await h.request("capped", "lena", "promotion")
    await h.settled("capped")

    page = await log_page(h, "lena", first=10)
    by_reason = {e["node"]["reason_code"]: e["node"] for e in page["edges"]}
    assert by_reason["OPTED_OUT"]["reason"] == "Not sent: you turned off recommendations."
    assert by_reason["OPTED_OUT"]["decision"] == "SUPPRESSED"
    assert by_reason["DAILY_CAP"]["reason"] == (
        "Not sent: your limit of 1 promotions a day was reached."
    )
    released = by_reason["QUIET_HOURS"]
    assert released["type"] == "promotion" and released["decision"] == "RELEASED"
    assert released["reason"] == "Held during your quiet hours, delivered at 14:30."
    assert released["until"] is None
    nodes = [e["node"] for e in page["edges"]]
    assert len(nodes) == 3 and page["page_info"]["has_next_page"] is False
    assert [n["at"] for n in nodes] == sorted((n["at"] for n in nodes), reverse=True)

    # One at a time: every record once, in the same order.
    seen, after = [], None
    while True:
        params = {"first": 1, **({"after": after} if after else {})}
        one = await log_page(h, "lena", **params)
        seen += [e["node"]["id"] for e in one["edges"]]
        if not one["page_info"]["has_next_page"]:
            break
        after = one["page_info"]["end_cursor"]
    assert seen == [n["id"] for n in nodes]

    # Someone else's log is their own (empty here).
    assert (await log_page(h, "nobody"))["edges"] == []


async def test_deferred_entry_says_until_when_in_local_time(harness) -> None:
    h = harness
    h.clock.set(datetime(2026, 3, 10, 3, 30, tzinfo=UTC))
    await h.register(
        "nyx", timezone="America/New_York", quiet_hours={"start": "22:00", "end": "07:30"}
    )
    await h.request("night", "nyx", "promotion")
    await h.settled("night")

    # The user.registered handler may re-evaluate the deferral after it was first
    # decided (events race): wait for the settled one.
    async def settled() -> list | None:
        edges = (await log_page(h, "nyx"))["edges"]
        return edges if edges and edges[0]["node"]["until"] == "2026-03-10T11:30:00Z" else None

    [entry] = await eventually(settled)
    assert entry["node"]["reason"] == "Held during your quiet hours until 07:30."
    assert entry["node"]["decision"] == "DEFERRED"
    assert entry["node"]["until"] == "2026-03-10T11:30:00Z"


async def test_bad_log_requests_are_typed_errors(harness) -> None:
    h = harness
    for params, field in (
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"after": "x!"}, "after"),
    ):
        r = await h.client.get("/v1/deliveries/log", params=params, headers=h.auth("ann"))
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"]["code"] == "BAD_USER_INPUT"
        assert r.json()["error"].get("field") in (field, f"query.{field}"), r.json()
    anonymous = await h.client.get("/v1/deliveries/log")
    assert anonymous.status_code == 401


async def test_notifications_carry_their_reason(harness) -> None:
    h = harness
    await h.register("rui", promotions=True, recommendations=True)
    await h.request(
        "o1",
        "rui",
        "order_update",
        content={
            "title": "Paid",
            "body": "...",
            "data": {"order_id": "ord-9f8e7d6c5b", "status": "paid"},
        },
    )
    await h.request(
        "p1",
        "rui",
        "promotion",
        content={"title": "Sale", "body": "...", "data": {"campaign": "spring"}},
    )
    await h.request("r1", "rui", "recommendation")
    await h.settled("o1", "p1", "r1")
    reasons = {e["node"]["type"]: e["node"]["reason"] for e in (await h.inbox("rui"))["edges"]}
    assert reasons == {
        "order_update": {
            "code": "ORDER_STATUS_CHANGED",
            "text": "Your order #9f8e7d6c is now paid; order updates are always sent.",
        },
        "promotion": {"code": "CAMPAIGN", "text": "You opted into promotions — campaign spring."},
        "recommendation": {
            "code": "RECOMMENDED_FROM_ACTIVITY",
            "text": "You opted into recommendations; these picks come from what you viewed "
            "and bought recently.",
        },
    }
