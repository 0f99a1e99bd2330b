"""Prometheus metrics of the notifications service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from herald_common.clock import utcnow
from prometheus_client import Counter, Histogram

DECISIONS = Counter(
    "herald_notifications_decisions_total",
    "Delivery decisions on notification requests (re-evaluations of deferred ones included)",
    ["outcome", "reason", "type"],
)
CREATED = Counter("herald_notifications_created_total", "Notifications stored in inboxes", ["type"])
REPLACED = Counter(
    "herald_notifications_replaced_total",
    "Unread notifications hidden by a newer one with the same collapse key",
)
REALTIME_FAILED = Counter(
    "herald_notifications_realtime_publish_failed_total",
    "New notifications whose Redis pub/sub push failed (the inbox still has them)",
)
PURGED = Counter(
    "herald_notifications_purged_total", "Documents removed by the retention sweep", ["kind"]
)

END_TO_END = Histogram(
    "herald_notifications_end_to_end_seconds",
    "From a request's event (its envelope's occurred_at) to its notification stored and "
    "pushed, per stored notification of the request batches",
    ["type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)


def count_decision(outcome: str, reason: str | None, type_: str) -> None:
    DECISIONS.labels(outcome, reason or "none", type_).inc()


def observe_end_to_end(docs: Iterable[dict[str, Any]], occurred_at: Mapping[str, datetime]) -> None:
    """One observation per stored notification whose request's time is known (the wall
    clock: the events carry wall-clock times; a clock behind the producer's counts 0)."""
    now = utcnow()
    for doc in docs:
        at = occurred_at.get(doc["idempotency_key"])
        if at is not None:
            END_TO_END.labels(doc["type"]).observe(max(0.0, (now - at).total_seconds()))
