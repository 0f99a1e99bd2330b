"""``trackActivity``: validate, enrich from the catalog, publish ``activity.recorded``.

The caller's user id comes from the token. Each event is enriched with the product's
name, category and price (from the gateway's product cache, herald_gateway.catalog) so
consumers need no catalog of their own. Up to 1000 activities travel in one message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.events import Activity, ActivityRecorded, make_event
from prometheus_client import Counter

from herald_gateway.context import RequestContext
from herald_gateway.errors import bad_input

ACTIVITIES = Counter("herald_gateway_activities_total", "Activities accepted", ["kind"])
EVENT_BATCH = 1000


def parse_time(value: Any, index: int, now: datetime, future_allowance: timedelta) -> datetime:
    """An ISO-8601 instant with a time zone, not in the future beyond a clock skew."""
    field = f"events[{index}].occurredAt"
    if value is None:
        return now
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise bad_input(
            f"{field}: not an ISO-8601 date-time (e.g. 2024-05-01T12:00:00Z)", field=field
        ) from None
    if parsed.tzinfo is None:
        raise bad_input(f"{field}: give a time zone (e.g. Z or +02:00)", field=field)
    if parsed > now + future_allowance:
        raise bad_input(f"{field}: lies in the future", field=field)
    return parsed.astimezone(UTC)


async def track_activity(
    ctx: RequestContext,
    events: list[dict[str, Any]],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Publish the caller's activities; returns how many were accepted."""
    user = ctx.user()
    settings = ctx.gateway.settings
    if not events:
        return 0
    if len(events) > settings.max_activity_batch:
        raise bad_input(f"events: at most {settings.max_activity_batch} per call", field="events")
    now = clock()
    allowance = timedelta(seconds=settings.max_activity_future_seconds)
    parsed: list[tuple[dict[str, Any], datetime, int]] = []
    for i, event in enumerate(events):
        product_id = str(event.get("productId") or "").strip()
        if not product_id:
            raise bad_input(
                f"events[{i}].productId: must not be empty", field=f"events[{i}].productId"
            )
        quantity = event.get("quantity")
        quantity = 1 if quantity is None else quantity
        if not 1 <= quantity <= 1000:
            raise bad_input(
                f"events[{i}].quantity: must be between 1 and 1000", field=f"events[{i}].quantity"
            )
        event = {**event, "productId": product_id}
        parsed.append((event, parse_time(event.get("occurredAt"), i, now, allowance), quantity))

    catalog = await ctx.gateway.products((e["productId"] for e, _, _ in parsed), ctx.call)

    activities = []
    for i, (event, occurred_at, quantity) in enumerate(parsed):
        product = catalog.get(event["productId"])
        if product is None:
            field = f"events[{i}].productId"
            raise bad_input(f"{field}: unknown product {event['productId']!r}", field=field)
        activities.append(
            Activity(
                user_id=user.user_id,
                kind=str(event["kind"]).lower(),
                product_id=event["productId"],
                occurred_at=occurred_at,
                quantity=quantity,
                product_name=product.get("name"),
                category=product.get("category"),
                price=product.get("price"),
            )
        )
    for i in range(0, len(activities), EVENT_BATCH):
        batch = activities[i : i + EVENT_BATCH]
        await ctx.gateway.publish(make_event(ActivityRecorded(activities=batch), source="gateway"))
    for activity in activities:
        ACTIVITIES.labels(activity.kind).inc()
    return len(activities)
