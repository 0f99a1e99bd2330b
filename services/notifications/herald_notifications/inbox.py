"""Reading and changing a user's inbox (synchronous; routes call it via ``run_db``).

Access rule: a notification that is not the caller's (and the caller is no admin)
answers 404 NOT_FOUND, exactly like one that does not exist, so ids of other users'
notifications cannot be probed. Replaced (collapsed) notifications are gone for every
read.

Pagination is keyset-based on ``(sent_at, id)``, newest first. The cursor is an opaque
URL-safe base64 of that pair; new notifications are newer than every cursor, so paging
never skips or repeats an item while new ones arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from herald_common.auth import Principal
from herald_common.db import bulk_write
from herald_common.errors import BadUserInput, NotFound
from herald_common.events import NotificationRead, make_event
from herald_common.outbox import outbox_entry
from pymongo import DESCENDING, UpdateOne

from herald_notifications.delivery import ms
from herald_notifications.models import DeliveryRecord, Notification

MARK_ALL_CHUNK = 500


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_api(doc: dict[str, Any]) -> dict[str, Any]:
    """The API (and real-time push) shape of a stored notification."""
    return {
        "id": doc["_id"],
        "user_id": doc["user_id"],
        "type": doc["type"],
        "content": doc["content"],
        "sent_at": iso(doc["sent_at"]),
        "read": bool(doc.get("read")),
        "read_at": iso(doc.get("read_at")),
        "collapse_key": doc.get("collapse_key"),
        "source": doc["source"],
    }


def encode_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps([ms(doc["sent_at"]).isoformat(), doc["_id"]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sent_at, doc_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(sent_at)
        if when.tzinfo is None or not isinstance(doc_id, str):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput("not a cursor returned by this API", field="after") from exc
    return when, doc_id


@dataclass
class Page:
    items: list[dict[str, Any]]
    has_next_page: bool
    total_count: int

    def to_api(self) -> dict[str, Any]:
        edges = [{"cursor": encode_cursor(d), "node": to_api(d)} for d in self.items]
        return {
            "edges": edges,
            "page_info": {
                "has_next_page": self.has_next_page,
                "end_cursor": edges[-1]["cursor"] if edges else None,
            },
            "total_count": self.total_count,
        }


def _visible(user_id: str, unread_only: bool = False, type_: str | None = None) -> dict[str, Any]:
    query: dict[str, Any] = {"user_id": user_id, "replaced": False}
    if unread_only:
        query["read"] = False
    if type_:
        query["type"] = type_
    return query


def list_notifications(
    user_id: str,
    *,
    first: int = 20,
    after: str | None = None,
    unread_only: bool = False,
    type_: str | None = None,
) -> Page:
    """One page of the user's notifications, newest first."""
    coll = Notification._get_collection()
    base = _visible(user_id, unread_only, type_)
    query = dict(base)
    if after:
        sent_at, doc_id = decode_cursor(after)
        query["$or"] = [
            {"sent_at": {"$lt": sent_at}},
            {"sent_at": sent_at, "_id": {"$lt": doc_id}},
        ]
    docs = list(
        coll.find(query, {"outbox": 0})
        .sort([("sent_at", DESCENDING), ("_id", DESCENDING)])
        .limit(first + 1)
    )
    return Page(docs[:first], len(docs) > first, coll.count_documents(base))


def unread_count(user_id: str) -> int:
    return int(Notification._get_collection().count_documents(_visible(user_id, True)))


def _owned(notification_id: str, principal: Principal) -> dict[str, Any]:
    doc = Notification._get_collection().find_one(
        {"_id": notification_id, "replaced": False}, {"outbox": 0}
    )
    if doc is None or (doc["user_id"] != principal.user_id and not principal.is_admin):
        raise NotFound(f"no notification {notification_id!r}", field="id")
    return doc


def get_notification(notification_id: str, principal: Principal) -> dict[str, Any]:
    return _owned(notification_id, principal)


def _read_event(user_id: str, ids: list[str], read_at: datetime, source: str) -> Any:
    return make_event(
        "notification.read",
        NotificationRead(user_id=user_id, notification_ids=ids, read_at=read_at),
        source=source,
    )


def mark_read(
    notification_id: str, principal: Principal, now: datetime, *, source: str
) -> tuple[dict[str, Any], bool]:
    """Mark one notification read; returns it and whether it changed. Stages
    ``notification.read`` in the same atomic update; reading it again changes nothing."""
    doc = _owned(notification_id, principal)
    read_at = ms(now)
    event = _read_event(doc["user_id"], [notification_id], read_at, source)
    result = Notification._get_collection().update_one(
        {"_id": notification_id, "read": False},
        {
            "$set": {"read": True, "read_at": read_at, "outbox_pending": True},
            "$push": {"outbox": outbox_entry(event)},
        },
    )
    return _owned(notification_id, principal), bool(result.modified_count)


def mark_all_read(user_id: str, now: datetime, *, source: str) -> int:
    """Mark every unread notification of the user read; returns how many changed.

    Each changed document gets its own ``notification.read`` event in the same atomic
    update (one bulk write per chunk), so state and events cannot drift apart.
    """
    coll = Notification._get_collection()
    read_at = ms(now)
    changed = 0
    last_id: str | None = None
    while True:
        query = _visible(user_id, unread_only=True)
        if last_id is not None:
            query["_id"] = {"$gt": last_id}
        ids = [d["_id"] for d in coll.find(query, {"_id": 1}).sort("_id", 1).limit(MARK_ALL_CHUNK)]
        if not ids:
            return changed
        ops = [
            UpdateOne(
                {"_id": doc_id, "read": False},
                {
                    "$set": {"read": True, "read_at": read_at, "outbox_pending": True},
                    "$push": {
                        "outbox": outbox_entry(_read_event(user_id, [doc_id], read_at, source))
                    },
                },
            )
            for doc_id in ids
        ]
        changed += bulk_write(coll, ops, ordered=False)
        last_id = ids[-1]


# --- delivery records -------------------------------------------------------------------


def record_to_api(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "idempotency_key": doc["idempotency_key"],
        "user_id": doc["user_id"],
        "type": doc["type"],
        "source": doc.get("source"),
        "outcome": doc["outcome"],
        "reason": doc["reason"],
        "at": iso(doc["at"]),
        "deliver_at": iso(doc.get("deliver_at")),
        "notification_id": doc.get("notification_id"),
        "history": [
            {
                "outcome": h.get("outcome"),
                "reason": h.get("reason"),
                "at": iso(h.get("at")),
                "deliver_at": iso(h.get("deliver_at")),
            }
            for h in doc.get("history") or []
        ],
    }


def list_deliveries(
    user_id: str | None, *, outcome: str | None = None, type_: str | None = None, first: int = 50
) -> list[dict[str, Any]]:
    """Suppression and deferral records, newest decision first."""
    query: dict[str, Any] = {}
    if user_id is not None:
        query["user_id"] = user_id
    if outcome:
        query["outcome"] = outcome
    if type_:
        query["type"] = type_
    docs = (
        DeliveryRecord._get_collection()
        .find(query, {"request": 0})
        .sort([("at", DESCENDING), ("_id", DESCENDING)])
        .limit(first)
    )
    return [record_to_api(d) for d in docs]
