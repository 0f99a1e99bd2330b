"""Reading a user's inbox (synchronous; :mod:`herald_notifications.domain` calls it via
``run_db``; changes are in :mod:`herald_notifications.inbox_store`).

Counts equal lists: the default list, ``unread_count`` and ``unseen_count`` share one
filter (:func:`inbox_filter`): not replaced, deleted, archived or snoozed.

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
from herald_common.errors import BadUserInput, NotFound
from pymongo import DESCENDING

from herald_notifications.delivery import ms
from herald_notifications.models import DeliveryRecord, Notification
from herald_notifications.reasons import reason_for


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
        "seen": bool(doc.get("seen")),
        "seen_at": iso(doc.get("seen_at")),
        "archived": bool(doc.get("archived")),
        "archived_at": iso(doc.get("archived_at")),
        "snoozed_until": iso(doc.get("snoozed_until")) if doc.get("snoozed") else None,
        "collapse_key": doc.get("collapse_key"),
        "source": doc["source"],
        "reason": reason_for(doc),
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


def inbox_filter(
    user_id: str,
    unread_only: bool = False,
    type_: str | None = None,
    *,
    archived: bool = False,
    unseen_only: bool = False,
) -> dict[str, Any]:
    """The one filter of lists and counts. The flags added with archive, snooze, seen and
    delete are matched with ``$ne: true`` so that documents stored before them count as
    not archived, snoozed, seen or deleted. The leading ``user_id`` equality selects the
    index."""
    query: dict[str, Any] = {"user_id": user_id, "replaced": False, "deleted": {"$ne": True}}
    if archived:
        query["archived"] = True
    else:
        query["archived"] = {"$ne": True}
        query["snoozed"] = {"$ne": True}
    if unread_only:
        query["read"] = False
    if unseen_only:
        query["seen"] = {"$ne": True}
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
    archived: bool = False,
) -> Page:
    """One page of the user's notifications (or of the archived ones), newest first."""
    coll = Notification._get_collection()
    base = inbox_filter(user_id, unread_only, type_, archived=archived)
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
    return int(Notification._get_collection().count_documents(inbox_filter(user_id, True)))


def unseen_count(user_id: str) -> int:
    """The badge: what the user has not seen yet (reading implies seen)."""
    query = inbox_filter(user_id, unseen_only=True)
    return int(Notification._get_collection().count_documents(query))


def counts(user_id: str) -> tuple[int, int]:
    """``(unread, unseen)`` of the default list."""
    return unread_count(user_id), unseen_count(user_id)


def owned(notification_id: str, principal: Principal) -> dict[str, Any]:
    """The caller's notification (admins: anyone's); NOT_FOUND otherwise, the same
    answer as for an id that does not exist."""
    doc = Notification._get_collection().find_one(
        {"_id": notification_id, "replaced": False}, {"outbox": 0}
    )
    if (
        doc is None
        or doc.get("deleted")
        or (doc["user_id"] != principal.user_id and not principal.is_admin)
    ):
        raise NotFound(f"no notification {notification_id!r}", field="id")
    return doc


def get_notification(notification_id: str, principal: Principal) -> dict[str, Any]:
    return owned(notification_id, principal)


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
