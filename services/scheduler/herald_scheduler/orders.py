"""The mock order lifecycle: placing orders, and the sweep that advances them.

    placed → paid → shipped → out_for_delivery → delivered
       └──────┴→ cancelled (small probability at placed and paid)

Every status change, including the placement itself, is one
:class:`~herald_scheduler.models.OrderTransition` inserted under the unique id
``<order id>:<sequence>`` with two events staged in it: ``order.status_changed`` and
``notification.requested`` (type ``order_update``, collapse key ``order:<id>``,
idempotency key ``order:<id>:<sequence>``). Of two concurrent sweeps trying the same
change, exactly one insert succeeds; the other stages nothing. Hence exactly one
notification per change, and a sweep run again never re-sends a status that did not
change. The :class:`~herald_scheduler.models.Order` document is then brought up to date
from the transition with idempotent ``$set`` values; a crash in between is repaired by
the next sweep, whose insert of the same change fails and which applies the stored one.

(A unique insert, not a conditional update, because FerretDB 1.x — the local and test
server — does not make a conditional update an atomic compare-and-set.)

Whether an order is cancelled is decided by a random draw seeded with the order id and
sequence, so concurrent sweeps draw the same outcome and tests can choose it with the
cancel probability (0 or 1).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from herald_common.events import (
    Activity,
    Envelope,
    NotificationRequested,
    OrderItem,
    OrderStatusChanged,
    make_event,
)

from herald_scheduler import order_store as store
from herald_scheduler.config import SchedulerSettings
from herald_scheduler.models import TERMINAL_STATUSES, Order, OrderTransition

NEXT_STATUS = {
    "placed": "paid",
    "paid": "shipped",
    "shipped": "out_for_delivery",
    "out_for_delivery": "delivered",
}
CANCELLABLE = ("placed", "paid")
_MESSAGES = {
    "placed": ("Order placed", "We received your order {ref} ({count}, {total})."),
    "paid": ("Payment confirmed", "Payment for your order {ref} ({total}) is confirmed."),
    "shipped": ("Order shipped", "Your order {ref} is on its way."),
    "out_for_delivery": ("Out for delivery", "Your order {ref} arrives today."),
    "delivered": ("Order delivered", "Your order {ref} was delivered. Enjoy!"),
    "cancelled": ("Order cancelled", "Your order {ref} was cancelled; {refund}."),
}


def order_id_for(*parts: str) -> str:
    """A deterministic order id: the same activity always yields the same order."""
    return "ord-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def notification_content(order: Order, status: str, previous: str | None) -> dict[str, Any]:
    """What the user reads about one status change."""
    count = sum(int(i.get("quantity", 1)) for i in order.items)
    title, body = _MESSAGES[status]
    refund = "you have been refunded" if previous == "paid" else "you have not been charged"
    values = {
        "ref": f"#{order.id.removeprefix('ord-')[:8]}",
        "count": f"{count} item{'s' if count != 1 else ''}",
        "total": _money(order.total),
        "refund": refund,
    }
    return {
        "title": title,
        "body": body.format(**values),
        "data": {"order_id": order.id, "status": status, "total": order.total, "items": count},
    }


def _events(
    order: Order, status: str, previous: str | None, sequence: int, now: datetime, source: str
) -> tuple[Envelope[Any], Envelope[Any]]:
    changed = make_event(
        OrderStatusChanged(
            order_id=order.id,
            user_id=order.user_id,
            status=status,
            previous_status=previous,
            items=[OrderItem(**i) for i in order.items],
            total=order.total,
            sequence=sequence,
            changed_at=now,
        ),
        source=source,
    )
    requested = make_event(
        NotificationRequested(
            idempotency_key=f"order:{order.id}:{sequence}",
            user_id=order.user_id,
            type="order_update",
            content=notification_content(order, status, previous),
            collapse_key=f"order:{order.id}",
            source=source,
            requested_at=now,
        ),
        source=source,
    )
    return changed, requested


def _delay(settings: SchedulerSettings, status: str) -> timedelta:
    return timedelta(seconds=settings.order_step_seconds[status])


def _transition(
    order: Order,
    *,
    status: str,
    previous: str | None,
    sequence: int,
    now: datetime,
    next_at: datetime | None,
    settings: SchedulerSettings,
    origin: str,
) -> OrderTransition:
    transition = OrderTransition(
        id=f"{order.id}:{sequence}",
        order_id=order.id,
        user_id=order.user_id,
        sequence=sequence,
        status=status,
        previous_status=previous,
        items=order.items,
        total=order.total,
        at=now,
        next_transition_at=next_at,
        origin=origin,
    )
    transition.stage(*_events(order, status, previous, sequence, now, settings.service_name))
    return transition


def place_order(
    *,
    order_id: str,
    user_id: str,
    items: Sequence[dict[str, Any]],
    now: datetime,
    settings: SchedulerSettings,
    origin: str,
    next_at: datetime | None = None,
) -> bool:
    """Place an order with its two events; False when it was placed before.
    ``next_at`` overrides when a sweep may first advance it."""
    spec = OrderSpec(order_id, user_id, items, origin, next_at)
    return place_orders([spec], now, settings) == 1


@dataclass(frozen=True)
class OrderSpec:
    """An order to place (``next_at``: see :func:`place_order`)."""

    order_id: str
    user_id: str
    items: Sequence[dict[str, Any]]
    origin: str
    next_at: datetime | None = None


def place_orders(specs: Sequence[OrderSpec], now: datetime, settings: SchedulerSettings) -> int:
    """Place orders with their events: one insert of their placement transitions, one
    of the order documents. Returns how many were new; an order placed before (a
    redelivery) stages nothing again, and its document is rebuilt from the stored
    transition in case the attempt that placed it crashed right after that insert."""
    orders = [_new_order(spec, now, settings) for spec in specs]
    transitions = [
        _transition(
            order,
            status="placed",
            previous=None,
            sequence=1,
            now=now,
            next_at=order.next_transition_at,
            settings=settings,
            origin=order.origin,
        )
        for order in orders
    ]
    placed = 0
    for order, (transition, new) in zip(orders, store.insert_transitions(transitions), strict=True):
        placed += new
        if not new:
            order.items, order.total = transition.items, transition.total
            order.created_at = order.updated_at = transition.at
            order.history = [{"status": "placed", "sequence": 1, "at": transition.at}]
            order.next_transition_at = transition.next_transition_at
        order.in_progress = order.next_transition_at is not None
    store.insert_orders(orders)
    return placed


def _new_order(spec: OrderSpec, now: datetime, settings: SchedulerSettings) -> Order:
    clean = [OrderItem(**i).model_dump() for i in spec.items]
    return Order(
        id=spec.order_id,
        user_id=spec.user_id,
        items=clean,
        total=round(sum(i["price"] * i["quantity"] for i in clean), 2),
        status="placed",
        history=[{"status": "placed", "sequence": 1, "at": now}],
        sequence=1,
        created_at=now,
        updated_at=now,
        next_transition_at=spec.next_at or now + _delay(settings, "placed"),
        origin=spec.origin,
    )


ActivityMessage = tuple[str, Sequence[Activity]]  # (event id, its activities)


def orders_from_activity(event_id: str, activities: Sequence[Activity]) -> list[OrderSpec]:
    """The orders one ``activity.recorded`` message places: one per user and session,
    with repeated products merged. Product name and price come with the activity;
    without them the order says "Product <id>" at 0."""
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for a in activities:
        if a.kind != "purchase":
            continue
        items = groups[(a.user_id, a.session_id or "")]
        item = items.get(a.product_id)
        if item is None:
            items[a.product_id] = {
                "product_id": a.product_id,
                "name": a.product_name or f"Product {a.product_id}",
                "quantity": a.quantity,
                "price": float(a.price) if a.price is not None else 0.0,
            }
        else:
            item["quantity"] += a.quantity
    return [
        OrderSpec(
            order_id=order_id_for(event_id, user_id, session),
            user_id=user_id,
            items=list(items.values()),
            origin=f"activity:{event_id}",
        )
        for (user_id, session), items in groups.items()
    ]


def place_orders_from_activity(
    messages: Sequence[ActivityMessage], now: datetime, settings: SchedulerSettings
) -> int:
    """Place the orders of several activity messages together; returns how many were
    new."""
    specs = [spec for event_id, acts in messages for spec in orders_from_activity(event_id, acts)]
    return place_orders(specs, now, settings) if specs else 0


def next_status(order: Order, settings: SchedulerSettings) -> str:
    """Where ``order`` goes next (deterministic per order and sequence)."""
    if order.status in CANCELLABLE and settings.order_cancel_probability > 0:
        draw = random.Random(f"{order.id}:{order.sequence}").random()
        if draw < settings.order_cancel_probability:
            return "cancelled"
    return NEXT_STATUS[order.status]


def advance(order: Order, now: datetime, settings: SchedulerSettings) -> str | None:
    """Move ``order`` (as read) one status on; returns the new status, or None when a
    concurrent sweep made this change first (then only the order document is fixed up)."""
    status = next_status(order, settings)
    terminal = status in TERMINAL_STATUSES
    transition, won = store.insert_transition(
        _transition(
            order,
            status=status,
            previous=order.status,
            sequence=order.sequence + 1,
            now=now,
            next_at=None if terminal else now + _delay(settings, status),
            settings=settings,
            origin="sweep",
        )
    )
    store.apply_transition(order, transition)
    return status if won else None


@dataclass
class SweepResult:
    """What one sweep did."""

    advanced: int = 0
    conflicts: int = 0
    by_status: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "advanced": self.advanced,
            "conflicts": self.conflicts,
            "by_status": dict(self.by_status or {}),
        }


def sweep(
    now: datetime,
    settings: SchedulerSettings,
    *,
    batch_size: int | None = None,
    limit: int | None = None,
) -> SweepResult:
    """Advance every order whose ``next_transition_at`` is due (≤ ``now``) by one step.

    Safe to run concurrently and repeatedly: each change is a unique insert.
    A new ``next_transition_at`` is always after ``now`` (delays are positive), so an
    order moves at most one step per sweep.
    """
    size = batch_size or settings.sweep_batch_size
    result = SweepResult(by_status=defaultdict(int))
    while limit is None or result.advanced + result.conflicts < limit:
        take = size if limit is None else min(size, limit - result.advanced - result.conflicts)
        due = store.due_orders(now, take)
        if not due:
            break
        for order in due:
            status = advance(order, now, settings)
            if status is None:
                result.conflicts += 1
            else:
                result.advanced += 1
                result.by_status[status] += 1  # type: ignore[index]
    result.by_status = dict(result.by_status or {})
    return result


FALLBACK_PRODUCTS = [
    {"product_id": f"p-{i:03d}", "name": f"Product p-{i:03d}", "price": float(5 + (i * 7) % 95)}
    for i in range(1, 41)
]


def seed_orders(
    user_ids: Sequence[str],
    *,
    per_user: int,
    seed: int,
    now: datetime,
    settings: SchedulerSettings,
    products: Sequence[dict[str, Any]] = (),
) -> int:
    """Mock orders for ``user_ids`` (products from ``products``, e.g. those seen in
    activity, else a generated list). Deterministic for a seed; seeding again with the
    same seed places nothing new. Each seeded order starts at ``placed``; their first
    steps are staggered so sweeps advance them gradually, not all at once."""
    rng = random.Random(seed)
    catalog = list(products) or FALLBACK_PRODUCTS
    step = _delay(settings, "placed")
    specs = []
    for user_id in user_ids:
        for n in range(per_user):
            picks = rng.sample(catalog, k=min(len(catalog), rng.randint(1, 3)))
            items = [
                {
                    "product_id": p["product_id"],
                    "name": p["name"],
                    "quantity": rng.randint(1, 2),
                    "price": float(p.get("price") or 0.0),
                }
                for p in picks
            ]
            specs.append(
                OrderSpec(
                    order_id=order_id_for("seed", str(seed), user_id, str(n)),
                    user_id=user_id,
                    items=items,
                    origin=f"seed:{seed}",
                    next_at=now + step * (1 + rng.random() * 5),
                )
            )
    return sum(
        place_orders(specs[start : start + SEED_CHUNK], now, settings)
        for start in range(0, len(specs), SEED_CHUNK)
    )


SEED_CHUNK = 500  # orders placed per insert when seeding
