"""Event consumers: activity ingestion and the user replica.

``recommendations.activity`` ← ``activity.recorded``: each message is a batch of up to
1000 activities, written with one unordered bulk insert. Activity ``_id`` is
``<event id>:<index>``, so a redelivered (or replayed) message inserts nothing new.
Activities that can never be stored — an unknown product, a time too far in the future
— are reported with a :class:`PermanentError` naming them (the message goes to the DLQ
with that reason) *after* the valid ones of the batch were stored; replaying the
message once the catalog knows the product stores the rest without duplicating.

``recommendations.users`` ← ``user.*``: the shared user replica (opt-in checks for
notifications); a deleted user's activity and recommendations are dropped.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.db import run_db
from herald_common.events import (
    ACTIVITY_EVENTS,
    USER_EVENTS,
    Activity,
    ActivityRecorded,
    Envelope,
    UserDeleted,
)
from herald_common.messaging import Broker, PermanentError
from herald_common.replica import apply_user_event

from herald_recommendations import storage
from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.engine import RecommendationEngine
from herald_recommendations.incremental import IncrementalRefresher


def activity_doc(activity: Activity, doc_id: str, ingested_at: datetime) -> dict[str, Any]:
    return {
        "_id": doc_id,
        "user_id": activity.user_id,
        "kind": activity.kind,
        "product_id": activity.product_id,
        "occurred_at": activity.occurred_at.astimezone(UTC),
        "session_id": activity.session_id,
        "quantity": activity.quantity,
        "ingested_at": ingested_at,
    }


def ingest_batch(
    engine: RecommendationEngine, event_id: str, activities: list[Activity]
) -> tuple[int, list[str], list[Activity]]:
    """Store a batch. Returns (new rows, problems naming each bad activity, stored ones)."""
    catalog = engine.catalog()
    now = engine.clock()
    horizon = now + timedelta(seconds=engine.settings.activity_future_tolerance_seconds)
    docs: list[dict[str, Any]] = []
    good: list[Activity] = []
    problems: list[str] = []
    for index, activity in enumerate(activities):
        if activity.product_id not in catalog:
            problems.append(
                f"activities[{index}].product_id: unknown product {activity.product_id!r}"
            )
            continue
        if activity.occurred_at > horizon:
            problems.append(f"activities[{index}].occurred_at: in the future")
            continue
        docs.append(activity_doc(activity, f"{event_id}:{index}", now))
        good.append(activity)
    inserted = storage.insert_activities(docs)
    # Then the per-user copy the model reads (idempotent too: identical entries).
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        by_user[doc["user_id"]].append(storage.activity_entry(doc))
    storage.record_activity(by_user, now, engine.settings.max_user_activities)
    return inserted, problems, good


def make_activity_handler(engine: RecommendationEngine, refresher: IncrementalRefresher | None):
    """Handler for ``activity.recorded``."""

    async def handle_activity(event: Envelope[Any]) -> None:
        """Store the batch, then schedule refreshes for users with fresh signals."""
        payload: ActivityRecorded = event.payload
        _, problems, good = await run_db(ingest_batch, engine, str(event.id), payload.activities)
        if refresher is not None and engine.settings.incremental_enabled and good:
            refresher.schedule(await run_db(refresher.triggered_users, good))
        if problems:
            shown = "; ".join(problems[:20])
            more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
            raise PermanentError(f"{len(problems)} invalid activit(y/ies): {shown}{more}")

    return handle_activity


async def handle_user(event: Envelope[Any]) -> None:
    """Keep the user replica; forget the activity of deleted users."""
    applied = await run_db(apply_user_event, event.payload)
    if applied and isinstance(event.payload, UserDeleted):
        await run_db(storage.forget_user, event.payload.user_id)


def queue_names(settings: RecommendationsSettings) -> list[str]:
    return [settings.activity_queue, settings.users_queue]


async def start_consumers(
    settings: RecommendationsSettings,
    broker: Broker,
    engine: RecommendationEngine,
    refresher: IncrementalRefresher | None,
) -> list[str]:
    """Declare and consume the service's queues; returns their names."""
    await broker.consume(
        settings.activity_queue, [ACTIVITY_EVENTS], make_activity_handler(engine, refresher)
    )
    await broker.consume(settings.users_queue, [USER_EVENTS], handle_user)
    return queue_names(settings)
