"""Prometheus metrics of the notifications service."""

from __future__ import annotations

from prometheus_client import Counter

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


def count_decision(outcome: str, reason: str | None, type_: str) -> None:
    DECISIONS.labels(outcome, reason or "none", type_).inc()
