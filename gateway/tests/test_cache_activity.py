"""Caching with event invalidation, and trackActivity publishing enriched batches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from herald_common.events import NotificationRead, UserPreferencesUpdated, make_event
from herald_common.preferences import Preferences
from herald_testing import eventually

from herald_gateway.cache import CACHE, OPERATION, operation_entities
from herald_gateway.engine import get_engine, parse
from herald_gateway.limits import root_field_names

pytestmark = pytest.mark.integration


def cache_count(entity: str, result: str) -> float:
    return CACHE.labels(entity, result)._value.get()


async def _stale_after(
    gw, broker_for, event_type: str, payload, source: str, query: str, user: str
) -> None:
    """Publish an event about ``user`` as ``source``, then re-send ``query`` until the
    gateway asks its service again (the cached answer was dropped)."""
    service = gw.recorders[source]
    broker = await broker_for(gw.settings, source=source)
    before = service.total()
    await broker.publish(make_event(event_type, payload, source=source))

    async def refetched() -> bool:
        await gw.gql(query, user=user)
        return service.total() > before

    await eventually(refetched, timeout=10, interval=0.1)


async def test_me_cached_and_invalidated_by_own_mutation_and_events(
    gateway_factory, broker_for, unique
) -> None:
    gw = await gateway_factory()
    user = f"cache-{unique}"
    calls = gw.recorders["users"].calls
    q = "{ me { preferences { promotions timezone } } }"
    misses, hits = cache_count("me", "miss"), cache_count(OPERATION, "hit")
    assert (await gw.gql(q, user=user)).json()["data"]["me"]["preferences"]["promotions"] is True
    await gw.gql(q, user=user)
    assert calls["GET /v1/users/me"] == 1
    # The second answer is the whole cached operation: no resolver ran.
    assert cache_count("me", "miss") == misses + 1 and cache_count(OPERATION, "hit") == hits + 1

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
    payload = UserPreferencesUpdated(
        user_id=user, name="x", email="x@example.com", preferences=Preferences(), revision=3
    )
    await _stale_after(gw, broker_for, "user.preferences_updated", payload, "users", q, user)
    assert calls["GET /v1/users/me"] == 3


async def test_unread_count_cache_dropped_after_mark_all_read(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"unread-{unique}"
    assert (await gw.gql("{ unreadCount }", user=user)).json()["data"]["unreadCount"] == 3
    assert (await gw.gql("mutation { markAllNotificationsRead }", user=user)).json()["data"] == {
        "markAllNotificationsRead": 3
    }
    assert (await gw.gql("{ unreadCount }", user=user)).json()["data"]["unreadCount"] == 0


INBOX_QUERY = "{ unreadCount notifications(first: 20) { edges { node { id type read } } } }"


async def test_a_whole_query_is_cached_and_dropped_by_an_inbox_event(
    gateway_factory, broker_for, unique
) -> None:
    gw = await gateway_factory()
    user = f"whole-{unique}"
    calls = gw.recorders["notifications"].calls
    hits, misses = cache_count(OPERATION, "hit"), cache_count(OPERATION, "miss")
    first = await gw.gql(INBOX_QUERY, user=user)
    again = await gw.gql(INBOX_QUERY, user=user)
    assert again.status_code == 200 and again.headers["content-type"] == "application/json"
    assert again.json() == first.json() and first.json()["data"]["unreadCount"] == 3
    assert calls["GET /v1/notifications"] == 1 and calls["GET /v1/notifications/unread-count"] == 1
    assert cache_count(OPERATION, "miss") == misses + 1
    assert cache_count(OPERATION, "hit") == hits + 1
    # Another user, other variables or another operation name are entries of their own.
    await gw.gql(INBOX_QUERY, user=f"{user}-b")
    await gw.gql(
        "query($n: Int) { notifications(first: $n) { edges { node { id } } } }", {"n": 5}, user=user
    )
    await gw.gql(
        "query($n: Int) { notifications(first: $n) { edges { node { id } } } }", {"n": 6}, user=user
    )
    assert cache_count(OPERATION, "miss") == misses + 4

    # A notification event about the user makes the cached answer stale at once.
    payload = NotificationRead(notification_ids=["n1"], user_id=user, read_at=datetime.now(UTC))
    await _stale_after(
        gw, broker_for, "notification.read", payload, "notifications", INBOX_QUERY, user
    )
    assert calls["GET /v1/notifications/unread-count"] == 3


async def test_queries_that_are_not_cached_whole(gateway_factory, unique) -> None:
    gw = await gateway_factory()
    user = f"partial-{unique}"
    calls = gw.recorders["scheduler"].calls
    misses = cache_count(OPERATION, "miss")
    # A field outside the cached entities (orders) keeps the operation out of the cache.
    mixed = "{ me { name } orders(first: 2) { id } }"
    for _ in range(2):
        assert "errors" not in (await gw.gql(mixed, user=user)).json()
    assert calls["GET /v1/orders/me"] == 2
    # An answer with errors is never cached; anonymous callers are not cached per user.
    bad_page = "{ notifications(first: 0) { edges { node { id } } } }"
    for _ in range(2):
        assert (await gw.gql(bad_page, user=user)).json()["errors"]
        assert (await gw.gql(INBOX_QUERY, user=None)).json()["errors"]
    assert cache_count(OPERATION, "miss") == misses + 2
    assert (await gw.gql(bad_page, user=user)).json()["errors"]


async def test_operation_entities_from_the_document() -> None:
    engine = await get_engine()

    def entities(query: str, name: str | None = None):
        document, errors = parse(engine, query)
        assert not errors
        return operation_entities(root_field_names(document, name))

    assert entities(INBOX_QUERY) == ("inbox", "unread")
    assert entities("{ me { name } recommendations { productId } }") == ("me", "recommendations")
    assert entities("query A { me { name } } query B { orders { id } }", "A") == ("me",)
    assert entities("query A { me { name } } query B { orders { id } }", "B") is None
    assert entities("{ ...F } fragment F on Query { unseenCount }") == ("unseen",)
    assert entities('{ me { name } products(ids: ["p1"]) { id } }') is None
    assert entities("{ __typename }") == ()


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
