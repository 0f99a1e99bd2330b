"""The service against the real servers: ingestion, incremental refresh, API, DLQ."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from herald_common.db import run_db
from herald_common.events import Activity, ActivityRecorded, Envelope, make_event
from herald_recommendations.models import ActiveUser, ActivityDoc, RecommendationDoc
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _activities(user_id: str, *items: tuple[str, str], minutes_ago: float = 1) -> Envelope:
    start = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return make_event(
        "activity.recorded",
        ActivityRecorded(
            activities=[
                Activity(
                    user_id=user_id,
                    kind=kind,
                    product_id=pid,  # type: ignore[arg-type]
                    occurred_at=start + timedelta(seconds=n),
                )
                for n, (kind, pid) in enumerate(items)
            ]
        ),
        source="test",
    )


async def _one_category(service) -> list[dict]:
    catalog = (
        await service.client.get(
            "/v1/products", params={"first": 300}, headers=service.token(service.issuer, "x")
        )
    ).json()
    category = catalog[0]["category"]
    return [p for p in catalog if p["category"] == category]


@pytest.fixture
async def svc(service, issuer):
    service.issuer = issuer
    return service


async def test_ingest_refresh_store_explain_and_exclude_purchases(
    svc, broker_for, unique, registered
):
    broker = await broker_for(svc.settings)
    requests: list[Envelope] = []

    async def capture(event: Envelope) -> None:
        requests.append(event)

    await broker.consume(f"capture.{unique}", ["notification.requested"], capture)
    await broker.publish(registered("u-ann"))
    products = await _one_category(svc)
    viewed = [p["id"] for p in products[:3]]
    bought = viewed[0]
    event = _activities(
        "u-ann", *[("view", pid) for pid in viewed], ("add_to_cart", bought), ("purchase", bought)
    )
    await broker.publish(event)

    async def refreshed():
        return await run_db(
            lambda: RecommendationDoc.objects(id="u-ann", trigger="incremental").first()
        )

    doc = await eventually(refreshed)
    assert doc.items and all(item["explanation"] for item in doc.items)

    response = await svc.client.get(
        "/v1/recommendations/me", params={"first": 5}, headers=svc.token(svc.issuer, "u-ann")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "u-ann" and body["model_version"] and body["generated_at"]
    assert len(body["items"]) == 5
    ids = [item["product_id"] for item in body["items"]]
    assert bought not in ids
    assert all(item["explanation"] and item["name"] and item["category"] for item in body["items"])
    assert any("you viewed" in item["explanation"] for item in body["items"])

    # The refresh announced the new recommendations once (opted in, first top items).
    await eventually(lambda: len(requests) == 1)
    request = requests[0].payload
    assert request.type == "recommendation" and request.user_id == "u-ann"
    assert request.idempotency_key.startswith("rec:u-ann:live-")
    assert request.content["data"]["product_ids"][0] == ids[0]

    # Redelivery of the same batch stores nothing twice.
    await broker.publish(event)
    await broker.publish(_activities("u-ann", ("view", viewed[1])))

    async def second_batch_in():
        return await run_db(ActivityDoc.objects(user_id="u-ann").count) == 6

    await eventually(second_batch_in)

    async def merged_into_profile():
        # The raw log is written first, the per-user profile right after it.
        user = await run_db(lambda: ActiveUser.objects(id="u-ann").first())
        return len(user.recent) == 6

    await eventually(merged_into_profile)
    await asyncio.sleep(0.2)  # a duplicate merge, if any, would land now
    user = await run_db(lambda: ActiveUser.objects(id="u-ann").first())
    assert len(user.recent) == 6


async def test_admin_reads_other_users_and_users_cannot(svc):
    me = await svc.client.get("/v1/recommendations/me", headers=svc.token(svc.issuer, "cold"))
    assert me.status_code == 200
    assert all(i["explanation"].startswith("popular in ") for i in me.json()["items"])
    denied = await svc.client.get("/v1/recommendations/cold", headers=svc.token(svc.issuer, "u"))
    assert denied.status_code == 403
    allowed = await svc.client.get(
        "/v1/recommendations/cold", headers=svc.token(svc.issuer, "boss", admin=True)
    )
    assert allowed.status_code == 200 and allowed.json()["user_id"] == "cold"
    assert (await svc.client.get("/v1/recommendations/me")).status_code == 401


async def test_products_api(svc):
    headers = svc.token(svc.issuer, "u")
    one = await svc.client.get("/v1/products/p-00001", headers=headers)
    assert one.status_code == 200
    assert set(one.json()) == {"id", "name", "category", "price", "popularity"}
    missing = await svc.client.get("/v1/products/p-99999", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    some = await svc.client.get(
        "/v1/products", params={"ids": "p-00002,nope,p-00001"}, headers=headers
    )
    assert [p["id"] for p in some.json()] == ["p-00002", "p-00001"]
    bad = await svc.client.get("/v1/products", params={"first": 0}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "first"


async def test_malformed_activity_is_dead_lettered_with_its_reason(svc, broker_for):
    broker = await broker_for(svc.settings)
    queue = svc.settings.activity_queue
    # Not a valid event at all: an unknown activity kind.
    bad = json.loads(_activities("u-bob", ("view", "p-00001")).to_bytes())
    bad["payload"]["activities"][0]["kind"] = "teleport"
    await broker.publish_raw(
        json.dumps(bad).encode(),
        routing_key="activity.recorded",
        message_id=bad["id"],
        type_="activity.recorded",
    )
    # A valid event with one activity for a product the catalog does not know.
    await broker.publish(_activities("u-bob", ("view", "p-00002"), ("view", "p-99999")))
    admin = svc.token(svc.issuer, "boss", admin=True)

    async def dead_letters():
        response = await svc.client.get(
            "/v1/admin/dead-letters", params={"queue": queue}, headers=admin
        )
        body = response.json()
        # The depth and the peeked messages are read one after the other: wait for both.
        return body if body[0]["count"] == 2 and len(body[0]["messages"]) == 2 else None

    [listing] = await eventually(dead_letters)
    reasons = " | ".join(m["error"] for m in listing["messages"])
    assert "activities.0.kind" in reasons
    assert "activities[1].product_id: unknown product 'p-99999'" in reasons
    # The valid activity of the partly bad batch was stored.
    assert await run_db(ActivityDoc.objects(user_id="u-bob", product_id="p-00002").count) == 1


async def test_a_burst_of_messages_is_stored_together_each_activity_once(svc, broker_for):
    broker = await broker_for(svc.settings)
    users = [f"u-burst-{n}" for n in range(8)]
    events = [
        _activities(users[n % 8], ("view", f"p-{n % 250 + 1:05d}"), ("view", "p-00260"))
        for n in range(40)
    ]
    bad = _activities("u-burst-0", ("view", "p-00261"), ("view", "p-99999"))
    # Published at once, so the consumer takes them in batches; one message twice.
    await broker.publish_many([*events[:20], bad, *events[20:], events[5]])

    async def all_stored():
        stored = await run_db(ActivityDoc.objects(user_id__in=users).count)
        return stored == 2 * 40 + 1

    await eventually(all_stored)
    admin = svc.token(svc.issuer, "boss", admin=True)

    async def dead_lettered():
        response = await svc.client.get(
            "/v1/admin/dead-letters",
            params={"queue": svc.settings.activity_queue},
            headers=admin,
        )
        [listing] = response.json()
        return listing if listing["count"] == 1 and listing["messages"] else None

    listing = await eventually(dead_lettered)
    assert "activities[1].product_id: unknown product 'p-99999'" in listing["messages"][0]["error"]
    await asyncio.sleep(0.3)  # a duplicate, if any, would land now
    assert await run_db(ActivityDoc.objects(user_id__in=users).count) == 81
    for user_id in users:
        user = await run_db(lambda u=user_id: ActiveUser.objects(id=u).first())
        assert len(user.recent) == 10 + (1 if user_id == "u-burst-0" else 0)
        assert len({e["i"] for e in user.recent}) == len(user.recent)


async def test_concurrent_merges_of_the_same_users_lose_no_entry(svc):
    from herald_recommendations import activity_store

    now = datetime.now(UTC)
    users = [f"u-race-{n}" for n in range(12)]

    def entries(writer: str, round_: int) -> dict[str, list[dict]]:
        at = now - timedelta(minutes=10 - round_)
        return {
            u: [
                activity_store.activity_entry(
                    {
                        "_id": f"{writer}-{round_}-{u}",
                        "product_id": "p-00001",
                        "kind": "view",
                        "occurred_at": at,
                    }
                )
            ]
            for u in users
        }

    for round_ in range(4):
        # Three consumers merging into the same documents at once: revisions collide.
        new = await asyncio.gather(
            *(
                run_db(activity_store.record_activity, entries(w, round_), now, 1000)
                for w in ("a", "b", "c")
            )
        )
        assert sum(merged.new for merged in new) == 3 * len(users)
    for user_id in users:
        user = await run_db(lambda u=user_id: ActiveUser.objects(id=u).first())
        assert sorted(e["i"] for e in user.recent) == sorted(
            f"{w}-{r}-{user_id}" for w in "abc" for r in range(4)
        )
