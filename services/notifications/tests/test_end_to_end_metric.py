"""``herald_notifications_end_to_end_seconds``: one observation per stored notification
whose request time is known, from that time to now (pure: no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from herald_notifications import metrics
from prometheus_client import REGISTRY

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NAME = "herald_notifications_end_to_end_seconds"


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "utcnow", lambda: NOW)


@pytest.fixture
def kind() -> str:
    """A notification type of this test only: the histogram is process-wide."""
    return f"type-{uuid.uuid4().hex[:8]}"


def sample(suffix: str, kind: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(f"{NAME}_{suffix}", {"type": kind, **labels})
    return value or 0.0


def doc(key: str, kind: str) -> dict[str, Any]:
    return {"idempotency_key": key, "type": kind, "user_id": "u-1"}


def test_each_stored_notification_is_observed_from_its_request_time(kind: str) -> None:
    metrics.observe_end_to_end(
        [doc("a", kind), doc("b", kind)],
        {"a": NOW - timedelta(seconds=0.2), "b": NOW - timedelta(seconds=3)},
    )
    assert sample("count", kind) == 2
    assert sample("sum", kind) == pytest.approx(3.2)
    assert sample("bucket", kind, le="0.25") == 1
    assert sample("bucket", kind, le="2.5") == 1
    assert sample("bucket", kind, le="5.0") == 2


def test_observations_are_labelled_by_each_notifications_type(kind: str) -> None:
    other = f"{kind}-other"
    metrics.observe_end_to_end(
        [doc("a", kind), doc("b", other), doc("c", other)],
        dict.fromkeys("abc", NOW - timedelta(seconds=1)),
    )
    assert (sample("count", kind), sample("count", other)) == (1, 2)
    assert sample("sum", other) == pytest.approx(2.0)


def test_a_notification_without_a_known_request_time_is_not_observed(kind: str) -> None:
    metrics.observe_end_to_end(
        [doc("known", kind), doc("unknown", kind)], {"known": NOW - timedelta(seconds=1)}
    )
    assert sample("count", kind) == 1
    metrics.observe_end_to_end([doc("unknown", kind)], {})
    assert sample("count", kind) == 1


def test_a_request_time_ahead_of_this_clock_counts_zero(kind: str) -> None:
    metrics.observe_end_to_end([doc("a", kind)], {"a": NOW + timedelta(seconds=30)})
    assert sample("count", kind) == 1
    assert sample("sum", kind) == 0
    assert sample("bucket", kind, le="0.05") == 1
