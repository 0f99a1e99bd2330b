"""Reading a user's inbox (synchronous; :mod:`herald_notifications.domain` calls it via
``run_db``; changes are in :mod:`herald_notifications.inbox_store`).

Counts equal lists: the default list, ``unread_count`` and ``unseen_count`` share one
filter (:func:`inbox_filter`): not replaced, deleted, archived or snoozed.

Access rule: a notification that is not the caller's (and the caller is no admin)
answers 404 NOT_FOUND, exactly like one that does not exist, so ids of other users'
notifications cannot be probed. Replaced (collapsed) notifications are gone for every
read.

Pagination is keyset-based on ``(sent_at, id)``, newest first (the cursor:
:func:`herald_notifications.views.encode_cursor`); new notifications are newer than
every cursor, so paging never skips or repeats an item while new ones arrive.
"""

from __future__ import annotations

from typing import Any

from herald_common.auth import Principal
from herald_common.db import collection
from herald_common.errors import NotFound
from pymongo import DESCENDING

from herald_notifications.models import Notification
from herald_notifications.views import Page, decode_cursor


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
    total: bool = True,
) -> Page:
    """One page of the user's notifications (or of the archived ones), newest first.
    ``total=False`` leaves out the count of the whole list (``total_count`` is None): a
    reader that does not show it saves a query."""
    coll = collection(Notification)
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
    total_count = coll.count_documents(base) if total else None
    return Page(docs[:first], len(docs) > first, total_count)


def unread_count(user_id: str) -> int:
    return int(collection(Notification).count_documents(inbox_filter(user_id, True)))


def unseen_count(user_id: str) -> int:
    """The badge: what the user has not seen yet (reading implies seen)."""
    query = inbox_filter(user_id, unseen_only=True)
    return int(collection(Notification).count_documents(query))


def counts(user_id: str) -> tuple[int, int]:
    """``(unread, unseen)`` of the default list."""
    return unread_count(user_id), unseen_count(user_id)


def owned(notification_id: str, principal: Principal) -> dict[str, Any]:
    """The caller's notification (admins: anyone's); NOT_FOUND otherwise, the same
    answer as for an id that does not exist."""
    doc = collection(Notification).find_one(
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
