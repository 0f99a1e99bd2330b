"""Order storage: the only code touching the order and order-transition collections.

A transition is inserted under its unique id (``<order id>:<sequence>``), so of two
concurrent sweeps trying the same change one insert wins; the order document is a view
brought up to date from its newest transition with idempotent ``$set`` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from herald_common.db import collection, insert_all_new, insert_missing, lookup_each
from mongoengine import Document

from herald_scheduler.models import Order, OrderTransition


def insert_transitions(
    transitions: Sequence[OrderTransition],
) -> list[tuple[OrderTransition, bool]]:
    """Insert ``transitions`` with one command; for each, the stored transition and
    whether this insert made it (on a clash the stored one is read back)."""
    clashed = sorted(insert_missing(collection(OrderTransition), [_mongo(t) for t in transitions]))
    stored = dict(
        zip(
            clashed,
            lookup_each(lambda i: OrderTransition.objects.get(id=transitions[i].id), clashed),
            strict=True,
        )
    )
    return [(stored[i], False) if i in stored else (t, True) for i, t in enumerate(transitions)]


def insert_transition(transition: OrderTransition) -> tuple[OrderTransition, bool]:
    """Insert ``transition``; on a clash return the stored one and False."""
    [result] = insert_transitions([transition])
    return result


def insert_orders(orders: Sequence[Order]) -> int:
    """Insert order views with one command, skipping those a redelivery created already
    (the transition is what counts); returns how many were new."""
    return insert_all_new(collection(Order), [_mongo(order) for order in orders])


def _mongo(document: Document) -> dict[str, Any]:
    document.validate()
    return document.to_mongo().to_dict()


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
