"""Retention: deleting what is older than the retention period, whole UTC days at a time
(synchronous storage code; the service's sweep and ``herald-notifications sweep``).

Every document carries ``day`` (the UTC date it was written or last decided); FerretDB
has no TTL indexes, so the sweep deletes one ``day`` at a time, each an indexed
equality. Each collection remembers the last day it purged (``retention``, ``_id`` = the
collection), so a sweep visits only the days that aged out since the previous one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from herald_common.db import collection, named
from pymongo.collection import Collection

from herald_notifications.metrics import PURGED
from herald_notifications.models import (
    DIGEST_ITEMS,
    DIGEST_SLOTS,
    PROMOTION_DAYS,
    RETENTION,
    VERSIONS,
    DeliveryRecord,
    Notification,
)

# The first sweep of a collection starts this long before its cutoff (an empty day
# costs two indexed queries).
FIRST_SWEEP = timedelta(days=90)


def _purge_day(coll: Collection[Any], day: str, keep: dict[str, Any]) -> tuple[int, bool]:
    """Delete one day of ``coll`` except what matches ``keep``; returns how many went and
    whether the day is now empty (kept documents hold it open for the next sweep)."""
    deleted = coll.delete_many({"day": day, "$nor": [keep]} if keep else {"day": day})
    done = not keep or coll.find_one({"day": day}, {"_id": 1}) is None
    return int(deleted.deleted_count), done


def purge_days(kind: str, coll: Collection[Any], keep: dict[str, Any], cutoff: date) -> int:
    """Delete the days of ``coll`` before ``cutoff`` not purged yet, except documents
    matching ``keep``; returns how many documents went."""
    state = named(RETENTION)
    doc = state.find_one({"_id": kind})
    day = date.fromisoformat(doc["through"]) + timedelta(days=1) if doc else cutoff - FIRST_SWEEP
    deleted = 0
    while day < cutoff:
        n, done = _purge_day(coll, day.isoformat(), keep)
        deleted += n
        if not done:
            break
        state.update_one({"_id": kind}, {"$set": {"through": day.isoformat()}}, upsert=True)
        day += timedelta(days=1)
    return deleted


def purge(now: datetime, retention_days: int) -> dict[str, int]:
    """Delete what is older than the retention period.

    Notifications whose ``notification.read`` is not relayed yet and deferred delivery
    records are kept; their day is visited again by the next sweep. Daily-cap counters
    are needed only for the current day (two days back covers every time zone).
    """
    today = now.astimezone(UTC).date()
    cutoff = today - timedelta(days=retention_days)
    plans: dict[str, tuple[Collection[Any], dict[str, Any], date]] = {
        "notifications": (collection(Notification), {"outbox_pending": True}, cutoff),
        "deliveries": (collection(DeliveryRecord), {"outcome": "deferred"}, cutoff),
        "collapse_versions": (named(VERSIONS), {}, cutoff),
        "promotion_days": (named(PROMOTION_DAYS), {}, today - timedelta(days=2)),
        # held items and their slots: the open ones wait for their digest
        "digest_items": (named(DIGEST_ITEMS), {"sent": False}, cutoff),
        "digest_slots": (named(DIGEST_SLOTS), {"state": "open"}, cutoff),
    }
    counts = {
        kind: purge_days(kind, coll, keep, before) for kind, (coll, keep, before) in plans.items()
    }
    for kind, n in counts.items():
        if n:
            PURGED.labels(kind).inc(n)
    return counts
