"""Event consumers: activity ingestion and the user replica.

``recommendations.activity`` ← ``activity.recorded``: each message holds up to 1000
activities; the consumer takes several messages at once (``activity_batch_max``) and
writes all their activities with one unordered bulk insert and one merge into the
per-user copies. Activity ``_id`` is
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.db import run_db
from herald_common.events import (
    ACTIVITY_EVENTS,
    USER_EVENTS,
    Activity,
    Envelope,
    UserDeleted,
)
from herald_common.messaging import Broker, PermanentError
from herald_common.replica import apply_user_event
from prometheus_client import Counter

from herald_recommendations import activity_store, storage
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


ActivityMessage = tuple[str, Sequence[Activity]]  # (event id, its activities)

ACTIVITIES = Counter(
    "herald_recommendations_activities_total",
    "Activities of activity.recorded messages, by outcome (stored: new rows; duplicate: "
    "stored before, a redelivery; rejected: invalid, dead-lettered)",
    ["outcome"],
)


@dataclass
class Ingested:
    """What :func:`ingest` stored."""

    inserted: int  # new rows
    problems: dict[str, list[str]]  # by event id, for each message with bad activities
    good: list[Activity]  # the activities stored
    merged: activity_store.Merged  # the per-user copies after the merge


def ingest(engine: RecommendationEngine, messages: Sequence[ActivityMessage]) -> Ingested:
    """Store the activities of several messages together: one bulk insert, one merge
    into the per-user copies."""
    catalog = engine.catalog()
    now = engine.clock()
    horizon = now + timedelta(seconds=engine.settings.activity_future_tolerance_seconds)
    docs: list[dict[str, Any]] = []
    good: list[Activity] = []
    problems: dict[str, list[str]] = {}
    for event_id, activities in messages:
        for index, activity in enumerate(activities):
            if activity.product_id not in catalog:
                problem = f"activities[{index}].product_id: unknown product {activity.product_id!r}"
            elif activity.occurred_at > horizon:
                problem = f"activities[{index}].occurred_at: in the future"
            else:
                docs.append(activity_doc(activity, f"{event_id}:{index}", now))
                good.append(activity)
                continue
            problems.setdefault(event_id, []).append(problem)
    inserted = activity_store.insert_activities(docs)
    ACTIVITIES.labels("stored").inc(inserted)
    ACTIVITIES.labels("duplicate").inc(len(docs) - inserted)
    ACTIVITIES.labels("rejected").inc(sum(map(len, problems.values())))
    # Then the per-user copy the model reads (idempotent too: identical entries).
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        by_user[doc["user_id"]].append(activity_store.activity_entry(doc))
    merged = activity_store.record_activity(by_user, now, engine.settings.max_user_activities)
    return Ingested(inserted, problems, good, merged)


def make_activity_handler(engine: RecommendationEngine, refresher: IncrementalRefresher | None):
    """Batch handler for ``activity.recorded``."""

    async def handle_activity(events: list[Envelope[Any]]) -> None:
        """Store the batch, then schedule refreshes for users with fresh signals. A
        message with invalid activities fails the batch after the valid ones are
        stored; handled again alone, it is dead-lettered naming them."""
        messages = [(str(event.id), event.payload.activities) for event in events]
        done = await run_db(ingest, engine, messages)
        if refresher is not None and engine.settings.incremental_enabled and done.good:
            refresher.schedule(refresher.triggered_users(done.good, done.merged))
        if done.problems:
            found = [p for event_problems in done.problems.values() for p in event_problems]
            shown = "; ".join(found[:20])
            more = f" (+{len(found) - 20} more)" if len(found) > 20 else ""
            raise PermanentError(f"{len(found)} invalid activit(y/ies): {shown}{more}")

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
    await broker.consume_batch(
        settings.activity_queue,
        [ACTIVITY_EVENTS],
        make_activity_handler(engine, refresher),
        max_batch=settings.activity_batch_max,
        max_wait_ms=settings.activity_batch_wait_ms,
    )
    await broker.consume(settings.users_queue, [USER_EVENTS], handle_user)
    return queue_names(settings)
