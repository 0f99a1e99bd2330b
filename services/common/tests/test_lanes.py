"""Order updates travel in a lane of their own: ``notification.requested.urgent``, so a
queue bound to it never waits behind a campaign's promotions (real RabbitMQ)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from herald_common.events import (
    ALL_NOTIFICATION_REQUESTS,
    NOTIFICATION_REQUESTS,
    URGENT_NOTIFICATION_REQUESTS,
    Envelope,
    NotificationRequested,
    make_event,
)
from herald_common.outbox import OutboxRelay, outbox_entry
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _request(key: str, type_: str) -> Envelope[Any]:
    return make_event(
        NotificationRequested(
            idempotency_key=key,
            user_id="u1",
            type=type_,  # type: ignore[arg-type]
            content={"title": key, "body": "x"},
            source="test",
            requested_at=datetime.now(UTC),
        ),
        source="test",
    )


def test_only_order_updates_take_the_urgent_routing_key() -> None:
    assert _request("o", "order_update").routing_key == URGENT_NOTIFICATION_REQUESTS
    for type_ in ("promotion", "recommendation"):
        assert _request(type_, type_).routing_key == NOTIFICATION_REQUESTS
    # the type on the wire stays the event type
    assert _request("o", "order_update").type == NOTIFICATION_REQUESTS


async def test_each_lane_gets_its_requests_however_they_are_published(broker_for, unique) -> None:
    broker = await broker_for()
    got: dict[str, list[str]] = {"normal": [], "urgent": [], "both": []}

    def collect(lane: str) -> Any:
        async def handle(event: Envelope[Any]) -> None:
            got[lane].append(event.payload.idempotency_key)

        return handle

    await broker.consume(f"normal.{unique}", [NOTIFICATION_REQUESTS], collect("normal"))
    await broker.consume(f"urgent.{unique}", [URGENT_NOTIFICATION_REQUESTS], collect("urgent"))
    await broker.consume(f"both.{unique}", [ALL_NOTIFICATION_REQUESTS], collect("both"))

    await broker.publish(_request("order-1", "order_update"))
    await broker.publish_many(
        [_request("promo-1", "promotion"), _request("order-2", "order_update")]
    )
    # Staged in an outbox, and an entry staged before lanes existed (no routing key).
    relay = OutboxRelay(broker=broker, documents=[])
    legacy = outbox_entry(_request("order-3", "order_update"))
    del legacy["routing_key"]
    await relay._publish_entries(
        {"outbox": [outbox_entry(_request("order-4", "order_update")), legacy]}
    )

    # Three queues, three consumers: every copy is waited for, not only the widest lane's.
    await eventually(lambda: len(got["both"]) == 5 == len(got["urgent"]) + len(got["normal"]))
    assert sorted(got["urgent"]) == ["order-1", "order-2", "order-4"]
    assert sorted(got["normal"]) == ["order-3", "promo-1"]
