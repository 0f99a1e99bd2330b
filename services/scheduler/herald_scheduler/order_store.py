"""Order storage: the only code touching the order and order-transition collections.

A transition is inserted under its unique id (``<order id>:<sequence>``), so of two
concurrent sweeps trying the same change one insert wins; the order document is a view
brought up to date from its newest transition with idempotent ``$set`` values.
"""

from __future__ import annotations

from datetime import datetime

from mongoengine import NotUniqueError

from herald_scheduler.models import Order, OrderTransition


def insert_transition(transition: OrderTransition) -> tuple[OrderTransition, bool]:
    """Insert ``transition``; on a clash return the stored one and False."""
    try:
        transition.save(force_insert=True)
    except NotUniqueError:
        return OrderTransition.objects.get(id=transition.id), False
    return transition, True


def insert_order(order: Order) -> bool:
    """Insert the order view; False when a redelivery created it already (the
    transition is what counts)."""
    try:
        order.save(force_insert=True)
    except NotUniqueError:
        return False
    return True


def apply_transition(order: Order, transition: OrderTransition) -> None:
    """Bring the order document up to ``transition`` (idempotent: same values)."""
    history = [h for h in order.history if h["sequence"] < transition.sequence]
    history.append(
        {"status": transition.status, "sequence": transition.sequence, "at": transition.at}
    )
    Order.objects(id=order.id, sequence__lt=transition.sequence).update_one(
        set__status=transition.status,
        set__sequence=transition.sequence,
        set__updated_at=transition.at,
        set__next_transition_at=transition.next_transition_at,
        set__in_progress=transition.next_transition_at is not None,
        set__history=history,
    )


def due_orders(now: datetime, limit: int) -> list[Order]:
    """Up to ``limit`` orders in progress whose next step is due at ``now``, oldest due
    first."""
    return list(
        Order.objects(in_progress=True, next_transition_at__lte=now)
        .order_by("next_transition_at", "id")
        .limit(limit)
    )


def orders_of(user_id: str, first: int = 20) -> list[Order]:
    """A user's orders, newest first."""
    return list(Order.objects(user_id=user_id).order_by("-created_at", "-id").limit(first))
