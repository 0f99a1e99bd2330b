"""Order lifecycle against the real servers: one notification per status change, never
two, whatever sweeps run again or at the same time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from herald_common.db import run_db
from herald_common.events import Activity
from herald_common.outbox import OutboxRelay
from herald_scheduler.models import Order, OrderTransition
from herald_scheduler.orders import (
    orders_from_activity,
    place_order,
    place_orders_from_activity,
    seed_orders,
    sweep,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ITEMS = [{"product_id": "p1", "name": "Lamp", "quantity": 2, "price": 19.5}]


async def _relay(broker) -> int:
    relay = OutboxRelay(broker, [OrderTransition])
    return await relay.relay_once()


async def test_lifecycle_sends_exactly_one_notification_per_change(db, broker_for, make_sink):
    settings = db
    broker = await broker_for(settings)
    sink = await make_sink(broker, ["notification.requested.#", "order.status_changed"])
    assert await run_db(
        place_order,
        order_id="ord-1",
        user_id="ann",
        items=ITEMS,
        now=T0,
        settings=settings,
        origin="test",
    )
    assert not await run_db(  # the same order again: nothing new
        place_order,
        order_id="ord-1",
        user_id="ann",
        items=ITEMS,
        now=T0,
        settings=settings,
        origin="test",
    )
    now = T0
    for _ in range(6):  # one more sweep than there are steps
        now += timedelta(seconds=settings.order_step_seconds["placed"])
        await run_db(sweep, now, settings)
        # Sweeping again at the same instant changes nothing and stages nothing.
        again = await run_db(sweep, now, settings)
        assert again.advanced == 0
    await _relay(broker)
    assert await _relay(broker) == 0
    await sink.drain()

    # The relay publishes a batch concurrently: order by the change's sequence.
    requests = sorted(sink.requests, key=lambda r: int(r.idempotency_key.rsplit(":", 1)[1]))
    assert [r.content["data"]["status"] for r in requests] == [
        "placed",
        "paid",
        "shipped",
        "out_for_delivery",
        "delivered",
    ]
    assert [r.idempotency_key for r in requests] == [f"order:ord-1:{n}" for n in range(1, 6)]
    assert {r.collapse_key for r in requests} == {"order:ord-1"}
    assert {(r.type, r.user_id) for r in requests} == {("order_update", "ann")}
    assert requests[0].content["body"] == "We received your order #1 (2 items, $39.00)."
    changes = sorted(sink.of("order.status_changed"), key=lambda c: c.sequence)
    assert [(c.previous_status, c.status, c.sequence) for c in changes] == [
        (None, "placed", 1),
        ("placed", "paid", 2),
        ("paid", "shipped", 3),
        ("shipped", "out_for_delivery", 4),
        ("out_for_delivery", "delivered", 5),
    ]
    order = await run_db(Order.objects.get, id="ord-1")
    assert order.status == "delivered" and order.next_transition_at is None
    assert [h["status"] for h in order.history] == [c.status for c in changes]
    assert order.total == 39.0


async def test_an_order_is_not_advanced_before_its_time(db):
    await run_db(
        place_order, order_id="ord-2", user_id="bo", items=ITEMS, now=T0, settings=db, origin="t"
    )
    assert (await run_db(sweep, T0 + timedelta(seconds=5), db)).advanced == 0
    assert (await run_db(sweep, T0 + timedelta(seconds=10), db)).advanced == 1


async def test_cancellation_is_a_change_like_any_other(scheduler_settings, broker_for, make_sink):
    from herald_common.db import connect_db, disconnect_db
    from herald_scheduler.models import ensure_indexes

    settings = scheduler_settings(order_cancel_probability=1.0)
    connect_db(settings)
    ensure_indexes()
    try:
        broker = await broker_for(settings)
        sink = await make_sink(broker, ["notification.requested.#"])
        await run_db(
            place_order,
            order_id="ord-3",
            user_id="cy",
            items=ITEMS,
            now=T0,
            settings=settings,
            origin="t",
        )
        assert (await run_db(sweep, T0 + timedelta(minutes=1), settings)).by_status == {
            "cancelled": 1
        }
        # Cancelled is terminal: later sweeps leave it alone.
        assert (await run_db(sweep, T0 + timedelta(hours=1), settings)).advanced == 0
        await _relay(broker)
        await sink.drain()
        assert [r.content["data"]["status"] for r in sink.requests] == ["placed", "cancelled"]
        assert "not been charged" in sink.requests[-1].content["body"]
    finally:
        disconnect_db()


async def test_concurrent_sweeps_change_each_order_once(db, broker_for, make_sink):
    settings = db
    broker = await broker_for(settings)
    sink = await make_sink(broker, ["notification.requested.#"])
    count = 30
    for i in range(count):
        await run_db(
            place_order,
            order_id=f"ord-c{i:03d}",
            user_id=f"user{i % 7}",
            items=ITEMS,
            now=T0,
            settings=settings,
            origin="t",
        )
    due = T0 + timedelta(seconds=11)
    # Four sweeps at once, in four threads, with small batches so they overlap a lot.
    results = await asyncio.gather(*(run_db(sweep, due, settings, batch_size=7) for _ in range(4)))
    assert sum(r.advanced for r in results) == count
    assert all(
        await run_db(lambda: [o.status == "paid" and o.sequence == 2 for o in Order.objects])
    )
    await _relay(broker)
    await sink.drain()
    keys = [r.idempotency_key for r in sink.requests]
    assert len(keys) == 2 * count  # placed + paid for each order
    assert len(set(keys)) == len(keys)  # and no change was sent twice


def _activity(user: str, kind: str, product: str, session: str | None, **extra) -> Activity:
    return Activity(
        user_id=user,
        kind=kind,
        product_id=product,
        occurred_at=T0,
        session_id=session,
        **extra,
    )


def test_purchases_group_into_one_order_per_user_and_session() -> None:
    activities = [
        _activity("ann", "view", "p1", "s1", category="lamps"),
        _activity("ann", "purchase", "p1", "s1", product_name="Lamp", price=20.0),
        _activity("ann", "purchase", "p1", "s1", product_name="Lamp", price=20.0, quantity=2),
        _activity("ann", "purchase", "p2", "s1"),
        _activity("ann", "purchase", "p3", "s2", product_name="Rug", price=99.0),
        _activity("bo", "purchase", "p1", None, product_name="Lamp", price=20.0),
    ]
    orders = orders_from_activity("evt-1", activities)
    by_key = {(o.user_id, len(o.items)): o for o in orders}
    assert len(orders) == 3
    ann_s1 = by_key[("ann", 2)].items
    assert ann_s1 == [
        {"product_id": "p1", "name": "Lamp", "quantity": 3, "price": 20.0},
        {"product_id": "p2", "name": "Product p2", "quantity": 1, "price": 0.0},
    ]
    # Deterministic ids: the same message always places the same orders.
    assert [o.order_id for o in orders_from_activity("evt-1", activities)] == [
        o.order_id for o in orders
    ]
    assert orders_from_activity("evt-2", activities)[0].order_id != orders[0].order_id


async def test_a_redelivered_purchase_places_one_order(db):
    activities = [_activity("ann", "purchase", "p1", "s1", product_name="Lamp", price=20.0)]
    event_id = str(uuid.uuid4())
    assert await run_db(place_orders_from_activity, [(event_id, activities)], T0, db) == 1
    assert await run_db(place_orders_from_activity, [(event_id, activities)], T0, db) == 0
    assert await run_db(Order.objects.count) == 1


async def test_messages_placed_together_each_place_their_orders_once(db):
    messages = [
        (str(uuid.uuid4()), [_activity(user, "purchase", "p1", "s1", price=5.0)])
        for user in ("ann", "bo", "cy")
    ]
    # The first message again in the same batch (a redelivery), and a batch
    # overlapping one placed before.
    assert await run_db(place_orders_from_activity, [*messages, messages[0]], T0, db) == 3
    later = (str(uuid.uuid4()), [_activity("ann", "purchase", "p2", "s1", price=7.0)])
    assert await run_db(place_orders_from_activity, [messages[1], later], T0, db) == 1
    orders = await run_db(lambda: list(Order.objects.order_by("user_id", "total")))
    assert [(o.user_id, o.total) for o in orders] == [
        ("ann", 5.0),
        ("ann", 7.0),
        ("bo", 5.0),
        ("cy", 5.0),
    ]
    # Each placement staged its two events once.
    transitions = await run_db(lambda: list(OrderTransition.objects.order_by("id")))
    assert len(transitions) == 4 and all(len(t.outbox) == 2 for t in transitions)


async def test_seeded_orders_are_deterministic(db):
    users = ["ann", "bo"]
    placed = await run_db(lambda: seed_orders(users, per_user=3, seed=42, now=T0, settings=db))
    assert placed == 6
    again = await run_db(lambda: seed_orders(users, per_user=3, seed=42, now=T0, settings=db))
    assert again == 0
    orders = await run_db(lambda: list(Order.objects.order_by("id")))
    assert {o.user_id for o in orders} == set(users)
    assert all(o.status == "placed" and 1 <= len(o.items) <= 3 for o in orders)
    # Staggered first steps: not every order moves on the first sweep.
    assert len({o.next_transition_at for o in orders}) > 1
