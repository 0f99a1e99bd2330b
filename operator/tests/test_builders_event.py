"""The Event builder."""

from __future__ import annotations

from datetime import UTC, datetime

from herald_operator.builders.event import build_event


def test_event_about_a_resource() -> None:
    involved = {
        "apiVersion": "herald.io/v1alpha1",
        "kind": "Schedule",
        "name": "order-sweep",
        "namespace": "shop",
        "uid": "uid-2",
    }
    event = build_event(
        involved,
        type_="Warning",
        reason="ImageNotSet",
        message="x" * 5000,
        now=datetime(2030, 1, 1, 9, 0, 5, tzinfo=UTC),
        suffix="abc123",
        instance="herald-operator-0",
    )
    assert event["metadata"]["name"] == "order-sweep.abc123"
    assert event["metadata"]["namespace"] == "shop"
    assert event["involvedObject"] == involved
    assert (event["type"], event["reason"]) == ("Warning", "ImageNotSet")
    assert len(event["message"]) == 1024
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2030-01-01T09:00:05Z"
    assert event["reportingComponent"] == "herald-operator"
    assert event["reportingInstance"] == "herald-operator-0"
