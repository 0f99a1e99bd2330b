"""The mock order lifecycle: placing orders, and the sweep that advances them.

    placed → paid → shipped → out_for_delivery → delivered
       └──────┴→ cancelled (small probability at placed and paid)

Every status change, including the placement itself, is one atomic single-document
write that also stages two events in the order's outbox: ``order.status_changed`` and
``notification.requested`` (type ``order_update``, collapse key ``order:<id>``,
idempotency key ``order:<id>:<sequence>``). The change's filter names the status and
sequence the sweep read, so of two concurrent sweeps exactly one wins; the loser's
update matches nothing and stages nothing. Hence exactly one notification per change,
and a sweep run again never re-sends a status that did not change.

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
from herald_common.outbox import outbox_update
from mongoengine import NotUniqueError

from herald_scheduler.config import SchedulerSettings
from herald_scheduler.models import TERMINAL_STATUSES, Order

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
        "order.status_changed",
        OrderStatusChanged(
            order_id=order.id,
            user_id=order.user_id,
            status=status,  # type: ignore[arg-type]
            previous_status=previous,  # type: ignore[arg-type]
            items=[OrderItem(**i) for i in order.items],
            total=order.total,
            sequence=sequence,
            changed_at=now,
        ),
        source=source,
    )
    requested = make_event(
        "notification.requested",
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
    """Insert a placed order with its two events; False when it exists already.
    ``next_at`` overrides when a sweep may first advance it."""
    clean = [OrderItem(**i).model_dump() for i in items]
    total = round(sum(i["price"] * i["quantity"] for i in clean), 2)
    order = Order(
        id=order_id,
        user_id=user_id,
        items=clean,
        total=total,
        status="placed",
        history=[{"status": "placed", "sequence": 1, "at": now}],
        sequence=1,
        created_at=now,
        updated_at=now,
        next_transition_at=next_at or now + _delay(settings, "placed"),
        origin=origin,
    )
    order.stage(*_events(order, "placed", None, 1, now, settings.service_name))
    try:
        order.save(force_insert=True)
    except NotUniqueError:
        return False  # the same activity was handled before
    return True


def orders_from_activity(event_id: str, activities: Sequence[Activity]) -> list[dict[str, Any]]:
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
        {
            "order_id": order_id_for(event_id, user_id, session),
            "user_id": user_id,
            "items": list(items.values()),
        }
        for (user_id, session), items in groups.items()
    ]


def place_orders_from_activity(
    event_id: str, activities: Sequence[Activity], now: datetime, settings: SchedulerSettings
) -> int:
    """Place the orders of one activity message; returns how many were new."""
    placed = 0
    for spec in orders_from_activity(event_id, activities):
        placed += place_order(now=now, settings=settings, origin=f"activity:{event_id}", **spec)
    return placed


def next_status(order: Order, settings: SchedulerSettings) -> str:
    """Where ``order`` goes next (deterministic per order and sequence)."""
    if order.status in CANCELLABLE and settings.order_cancel_probability > 0:
        draw = random.Random(f"{order.id}:{order.sequence}").random()
        if draw < settings.order_cancel_probability:
            return "cancelled"
    return NEXT_STATUS[order.status]


def advance(order: Order, now: datetime, settings: SchedulerSettings) -> str | None:
    """Move ``order`` (as read) one status on; returns the new status, or None when a
    concurrent sweep changed it first (the update then matches nothing)."""
    status = next_status(order, settings)
    sequence = order.sequence + 1
    terminal = status in TERMINAL_STATUSES
    events = _events(order, status, order.status, sequence, now, settings.service_name)
    updated = Order.objects(id=order.id, status=order.status, sequence=order.sequence).update_one(
        set__status=status,
        set__sequence=sequence,
        set__updated_at=now,
        set__next_transition_at=None if terminal else now + _delay(settings, status),
        push__history={"status": status, "sequence": sequence, "at": now},
        **outbox_update(*events),
    )
    return status if updated else None


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

    Safe to run concurrently and repeatedly: each change is conditional on what was read.
    A new ``next_transition_at`` is always after ``now`` (delays are positive), so an
    order moves at most one step per sweep.
    """
    size = batch_size or settings.sweep_batch_size
    result = SweepResult(by_status=defaultdict(int))
    while limit is None or result.advanced + result.conflicts < limit:
        take = size if limit is None else min(size, limit - result.advanced - result.conflicts)
        due = list(
            Order.objects(next_transition_at__lte=now, status__nin=list(TERMINAL_STATUSES))
            .order_by("next_transition_at", "id")
            .limit(take)
        )
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


def orders_of(user_id: str, first: int = 20) -> list[Order]:
    """A user's orders, newest first."""
    return list(Order.objects(user_id=user_id).order_by("-created_at", "-id").limit(first))


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
    placed = 0
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
            placed += place_order(
                order_id=order_id_for("seed", str(seed), user_id, str(n)),
                user_id=user_id,
                items=items,
                now=now,
                settings=settings,
                origin=f"seed:{seed}",
                next_at=now + step * (1 + rng.random() * 5),
            )
    return placed
