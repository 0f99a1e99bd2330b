"""Per-notification email state (collection ``emails``, one document per notification,
``_id`` = notification id): ``queued`` → ``sent``, or ``retrying`` (a temporary failure,
tried again with back-off) → ``sent`` | ``failed`` (refused, or out of attempts).

Every read and write is by ``_id``; retention deletes whole UTC days (``day``, the day
the email was queued), like the rest of the service.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from herald_common.db import named
from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection

from herald_notifications.retention import purge_days
from herald_notifications.views import iso

EMAILS = "emails"
STATES = ("queued", "retrying", "sent", "failed")
FINAL = ("sent", "failed")


def emails() -> Collection[Any]:
    return named(EMAILS)


def ensure_indexes() -> None:
    emails().create_index([("day", ASCENDING)])


def queue(
    notification_id: str, *, user_id: str, type_: str, to: str, now: datetime, day: str
) -> dict[str, Any]:
    """The email's state, created ``queued`` on first sight (a redelivery finds the
    existing one)."""
    doc = emails().find_one_and_update(
        {"_id": notification_id},
        {
            "$setOnInsert": {
                "user_id": user_id,
                "type": type_,
                "to": to,
                "state": "queued",
                "attempts": 0,
                "queued_at": now,
                "day": day,
            }
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None
    return dict(doc)


def attempted(notification_id: str, state: str, now: datetime, error: str | None = None) -> None:
    """Record one sending attempt and where it left the email."""
    assert state in STATES
    fields: dict[str, Any] = {"state": state, "updated_at": now, "error": error}
    if state == "sent":
        fields["sent_at"] = now
    emails().update_one({"_id": notification_id}, {"$set": fields, "$inc": {"attempts": 1}})


def get(notification_id: str) -> dict[str, Any] | None:
    doc = emails().find_one({"_id": notification_id})
    return dict(doc) if doc else None


def purge(cutoff: date) -> int:
    """Email states of the days before ``cutoff`` (retention, whole days)."""
    return purge_days(EMAILS, emails(), {}, cutoff)


def to_api(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "notification_id": doc["_id"],
        "user_id": doc["user_id"],
        "type": doc["type"],
        "to": doc["to"],
        "state": doc["state"],
        "attempts": int(doc.get("attempts", 0)),
        "error": doc.get("error"),
        "queued_at": iso(doc.get("queued_at")),
        "sent_at": iso(doc.get("sent_at")),
        "updated_at": iso(doc.get("updated_at")),
    }
