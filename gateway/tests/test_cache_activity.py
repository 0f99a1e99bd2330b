"""Caching with event invalidation, and trackActivity publishing enriched batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from herald_common.events import UserPreferencesUpdated, make_event
from herald_common.preferences import Preferences
from herald_testing import eventually

from herald_gateway.cache import CACHE

pytestmark = pytest.mark.integration


def cache_count(entity: str, result: str) -> float:
    return CACHE.labels(entity, result)._value.get()


async def test_me_cached_and_invalidated_by_own_mutation_and_events(
    gateway_factory, broker_for, unique
) -> None:
    gw = await gateway_factory()
    user = f"cache-{unique}"
    calls = gw.recorders["users"].calls
    q = "{ me { preferences { promotions timezone } } }"
    misses, hits = cache_count("me", "miss"), cache_count("me", "hit")
    assert (await gw.gql(q, user=user)).json()["data"]["me"]["preferences"]["promotions"] is True
    await gw.gql(q, user=user)
    assert calls["GET /v1/users/me"] == 1
    assert cache_count("me", "miss") == misses + 1 and cache_count("me", "hit") == hits + 1

    r = await gw.gql(
        'mutation { updatePreferences(input: {promotions: false, timezone: "Europe/Paris"}) '
        "{ preferences { promotions timezone } } }",
        user=user,
    )
    assert r.json()["data"]["updatePreferences"]["preferences"] == {
        "promotions": False,
        "timezone": "Europe/Paris",
    }
    assert gw.recorders["users"].last["patch_body"] == {
        "promotions": False,
        "timezone": "Europe/Paris",
    }
    r = await gw.gql(q, user=user)
    assert r.json()["data"]["me"]["preferences"]["promotions"] is False
    assert calls["GET /v1/users/me"] == 2

    # An event about the user (e.g. a change made elsewhere) drops the cached profile.
    await gw.gql(q, user=user)
    assert calls["GET /v1/users/me"] == 2
    broker = await broker_for(gw.settings, source="users")
    event = make_event(
        "user.preferences_updated",
        UserPreferencesUpdated(
            user_id=user, name="x", email="x@example.com", preferences=Preferences(), revision=3
        ),
        source="users",
    )
    await broker.publish(event)

    async def refetched() -> bool:
        await gw.gql(q, user=user)
        return calls["GET /v1/users/me"] == 3

    await eventually(refetched, timeout=10, interval=0.1)


async def test_unread_count_cache_dropped_after_mark_all_read(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"unread-{unique}"
    assert (await gw.gql("{ unreadCount }", user=user)).json()["data"]["unreadCount"] == 3
    assert (await gw.gql("mutation { markAllNotificationsRead }", user=user)).json()["data"] == {
        "markAllNotificationsRead": 3
    }
    assert (await gw.gql("{ unreadCount }", user=user)).json()["data"]["unreadCount"] == 0


async def test_track_activity_publishes_enriched_batch(gateway_factory, broker_for, unique) -> None:
    gw = await gateway_factory()
    broker = await broker_for(gw.settings, source="test")
    received: list = []

    async def collect(event) -> None:
        received.append(event)

    await broker.consume(f"test.activity.{unique}", ["activity.recorded"], collect)
    when = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    r = await gw.gql(
        "mutation($e: [ActivityInput!]!) { trackActivity(events: $e) }",
        {
            "e": [
                {"kind": "VIEW", "productId": "p1", "occurredAt": when},
                {"kind": "ADD_TO_CART", "productId": "p2"},
                {"kind": "PURCHASE", "productId": "p2", "quantity": 2},
            ]
        },
        user=f"shopper-{unique}",
    )
    assert r.json() == {"data": {"trackActivity": 3}}
    # One catalog lookup for the whole request.
    assert gw.recorders["recommendations"].calls["GET /v1/products"] == 1
    await eventually(lambda: received)
    assert len(received) == 1
    activities = received[0].payload.activities
    assert [(a.kind, a.product_id, a.quantity) for a in activities] == [
        ("view", "p1", 1),
        ("add_to_cart", "p2", 1),
        ("purchase", "p2", 2),
    ]
    assert {a.user_id for a in activities} == {f"shopper-{unique}"}
    assert activities[2].product_name == "Product 2" and activities[2].price == 20.0
    assert activities[0].category == "laptops"

    r = await gw.gql(
        'mutation { trackActivity(events: [{kind: VIEW, productId: "p1"}, {kind: VIEW, productId: "nope"}]) }'
    )
    err = r.json()["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert err["extensions"]["field"] == "events[1].productId" and "nope" in err["message"]

    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    r = await gw.gql(
        'mutation($t: String) { trackActivity(events: [{kind: VIEW, productId: "p1", occurredAt: $t}]) }',
        {"t": future},
    )
    assert r.json()["errors"][0]["extensions"]["field"] == "events[0].occurredAt"
    r = await gw.gql(
        'mutation { trackActivity(events: [{kind: VIEW, productId: "p1", occurredAt: "yesterday"}]) }'
    )
    assert "ISO-8601" in r.json()["errors"][0]["message"]
    r = await gw.gql(
        'mutation { trackActivity(events: [{kind: VIEW, productId: "p1"}]) }', user=None
    )
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert len(received) == 1
    # Nothing else was published for the refused calls.
    assert json.loads(received[0].to_bytes())["source"] == "gateway"
