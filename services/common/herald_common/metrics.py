"""Prometheus metrics shared by every Herald process.

Components add their own metrics next to their code; the ones here are the common
vocabulary that the Grafana dashboards and alert rules rely on.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Histogram(
    "herald_http_request_duration_seconds",
    "HTTP request latency by route",
    ["service", "method", "route", "status"],
)
EVENTS_PUBLISHED = Counter(
    "herald_events_published_total", "Events confirmed by the broker", ["service", "type"]
)
EVENTS_CONSUMED = Counter(
    "herald_events_consumed_total",
    "Events handled, by outcome (ok, retried, dead_lettered)",
    ["service", "queue", "type", "outcome"],
)
EVENTS_FAILED = Counter(
    "herald_events_failed_total", "Handler failures (each attempt)", ["service", "queue", "type"]
)
EVENTS_DEAD_LETTERED = Counter(
    "herald_events_dead_lettered_total",
    "Messages moved to a dead-letter queue",
    ["service", "queue", "reason"],
)
HANDLER_LATENCY = Histogram(
    "herald_event_handler_duration_seconds",
    "Time spent in an event handler",
    ["service", "queue", "type"],
)
OUTBOX_PENDING = Gauge(
    "herald_outbox_pending_events",
    "Events written to the outbox but not yet published",
    ["service"],
)
OUTBOX_RELAYED = Counter(
    "herald_outbox_relayed_total", "Events relayed from the outbox", ["service", "type"]
)
