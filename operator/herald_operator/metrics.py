"""The operator's Prometheus metrics, served on ``/metrics`` beside its probes.

``herald_operator_reconciles_total{kind,outcome}``: every reconcile of a
NotificationCampaign or Schedule, by its outcome: ``success`` (children match the spec),
``failed`` (a spec or child the API refuses: status ``Failed``, nothing retried),
``retry`` (a passing error: kopf retries it) or ``error`` (anything else).
``herald_operator_reconcile_duration_seconds{kind}``: how long each one took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import kopf
from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
OUTCOMES = ("success", "failed", "retry", "error")
KINDS = ("NotificationCampaign", "Schedule")

RECONCILES = Counter(
    "herald_operator_reconciles_total",
    "Reconciles of NotificationCampaigns and Schedules, by outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "herald_operator_reconcile_duration_seconds",
    "Time one reconcile of a NotificationCampaign or Schedule took.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
# Every series exists from the start, so rates and alerts see zeros, not absences.
for _kind in KINDS:
    RECONCILE_SECONDS.labels(_kind)
    for _outcome in OUTCOMES:
        RECONCILES.labels(_kind, _outcome)


@dataclass
class Reconcile:
    """What the reconcile reports: ``failed`` when it recorded a Failed status."""

    outcome: str = "success"


@contextmanager
def reconciling(kind: str) -> Iterator[Reconcile]:
    """Count and time one reconcile of ``kind``; an exception sets its outcome."""
    result = Reconcile()
    start = time.perf_counter()
    try:
        yield result
    except kopf.TemporaryError:
        result.outcome = "retry"
        raise
    except kopf.PermanentError:
        result.outcome = "failed"
        raise
    except Exception:
        result.outcome = "error"
        raise
    finally:
        RECONCILES.labels(kind, result.outcome).inc()
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)
