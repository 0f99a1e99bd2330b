"""Changing a user's inbox: read, seen, archive, snooze, delete, and the snooze wake-up
(synchronous; :mod:`herald_notifications.domain` calls it via ``run_db``).

Every change is one atomic single-document update that also stages its events in the
document's outbox: ``notification.inbox_changed`` (and ``notification.read`` for reads),
so state and events never drift apart. A change that changes nothing (reading a read
notification again) stages nothing. Bulk changes update one document per id
(concurrent point updates by ``_id``; the local server answers ``$in`` with a scan).

Reading implies seen. Snoozing takes a notification out of the default list and the
counts until ``snoozed_until``; :func:`wake_snoozed` brings it back on top, unread and
unseen. The sweep selects by ``snooze_hour`` (the UTC hour of ``snoozed_until``): it
keeps the last hour it has finished in ``retention`` (``_id: "snooze"``) and visits the
hours after it up to the current one, so when idle it costs one or two indexed queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.auth import Principal
from herald_common.clock import utc_day
from herald_common.db import collection, lookup_each, named
from herald_common.events import (
    InboxChangeKind,
    NotificationInboxChanged,
    NotificationRead,
    make_event,
)
from herald_common.outbox import staged_update
from pymongo import ReturnDocument

from herald_notifications.builders import ms
from herald_notifications.inbox import inbox_filter, owned
from herald_notifications.models import RETENTION, Notification

CHUNK = 500
SNOOZE_STATE = "snooze"
# Hours older than this before the current one are closed by the sweep; snoozes are
# always in the future, so a bucket this old cannot receive new ones (clock skew margin).
SNOOZE_CLOSE_LAG = timedelta(hours=1)


@dataclass
class Change:
    """What one operation changed: the ids, for the cross-device push."""

    user_id: str
    kind: InboxChangeKind
    ids: list[str] = field(default_factory=list)


def hour_bucket(value: datetime) -> str:
    """The UTC hour of ``value`` as ``YYYY-MM-DDTHH``: the snooze sweep's unit."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H")


def _changed_event(user_id: str, kind: InboxChangeKind, doc_id: str, at: datetime, source: str):
    return make_event(
        NotificationInboxChanged(user_id=user_id, kind=kind, notification_ids=[doc_id], at=at),
        source=source,
    )


def _update_one(
    doc_id: str,
    condition: dict[str, Any],
    changes: dict[str, Any],
    kind: InboxChangeKind,
    user_id: str,
    now: datetime,
    source: str,
    *,
    read: bool = False,
) -> bool:
    """One conditional update that stages its events; True when it changed the document."""
    events = [_changed_event(user_id, kind, doc_id, now, source)]
    if read:
        events.append(
            make_event(
                NotificationRead(user_id=user_id, notification_ids=[doc_id], read_at=now),
                source=source,
            )
        )
    result = collection(Notification).update_one(
        {"_id": doc_id, **condition},
        staged_update(changes, *events),
    )
    return bool(result.modified_count)


def _read_changes(now: datetime, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {"read": True, "read_at": now}
    if doc is None or not doc.get("seen"):
        changes.update(seen=True, seen_at=now)
    return changes


# --- one notification -------------------------------------------------------------------


def mark_read(
    notification_id: str, principal: Principal, now: datetime, *, source: str
) -> tuple[dict[str, Any], Change]:
    """Mark one notification read (and seen); reading it again changes nothing."""
    doc = owned(notification_id, principal)
    now = ms(now)
    change = Change(doc["user_id"], "read")
    if _update_one(
        notification_id,
        {"read": False},
        _read_changes(now, doc),
        "read",
        doc["user_id"],
        now,
        source,
        read=True,
    ):
        change.ids.append(notification_id)
    return owned(notification_id, principal), change


def archive(
    notification_id: str, principal: Principal, now: datetime, *, source: str, archived: bool
) -> tuple[dict[str, Any], Change]:
    """Archive (or bring back) one notification. Archiving ends a snooze."""
    doc = owned(notification_id, principal)
    now = ms(now)
    kind: InboxChangeKind = "archived" if archived else "unarchived"
    change = Change(doc["user_id"], kind)
    if archived:
        changes: dict[str, Any] = {
            "archived": True,
            "archived_at": now,
            "snoozed": False,
            "snoozed_until": None,
            "snooze_hour": None,
        }
        condition: dict[str, Any] = {"archived": {"$ne": True}}
    else:
        changes, condition = {"archived": False, "archived_at": None}, {"archived": True}
    if _update_one(notification_id, condition, changes, kind, doc["user_id"], now, source):
        change.ids.append(notification_id)
    return owned(notification_id, principal), change


def snooze(
    notification_id: str, principal: Principal, until: datetime, now: datetime, *, source: str
) -> tuple[dict[str, Any], Change]:
    """Hide one notification until ``until`` (validated by the caller: in the future).
    Snoozing an archived notification brings it back from the archive first."""
    doc = owned(notification_id, principal)
    now, until = ms(now), ms(until)
    # Open the sweep's window before the first snooze lands in it (see module doc).
    named(RETENTION).update_one(
        {"_id": SNOOZE_STATE},
        {"$setOnInsert": {"through": hour_bucket(now - SNOOZE_CLOSE_LAG)}},
        upsert=True,
    )
    changes = {
        "snoozed": True,
        "snoozed_until": until,
        "snooze_hour": hour_bucket(until),
        "archived": False,
        "archived_at": None,
    }
    change = Change(doc["user_id"], "snoozed")
    if _update_one(notification_id, {}, changes, "snoozed", doc["user_id"], now, source):
        change.ids.append(notification_id)
    return owned(notification_id, principal), change


def delete(notification_id: str, principal: Principal, now: datetime, *, source: str) -> Change:
    """Delete one notification (hidden at once; the document goes with retention)."""
    doc = owned(notification_id, principal)
    now = ms(now)
    change = Change(doc["user_id"], "deleted")
    changes = {"deleted": True, "deleted_at": now, "snoozed": False, "snooze_hour": None}
    if _update_one(
        notification_id, {"deleted": {"$ne": True}}, changes, "deleted", doc["user_id"], now, source
    ):
        change.ids.append(notification_id)
    return change


# --- several notifications --------------------------------------------------------------


def _each(
    user_id: str,
    ids: Iterable[str],
    condition: dict[str, Any],
    changes: dict[str, Any],
    kind: InboxChangeKind,
    now: datetime,
    source: str,
    *,
    read: bool = False,
) -> list[str]:
    """Apply one change to each of the user's notifications in ``ids``; others' and
    unknown ids are skipped. Returns the ids that changed."""
    unique = list(dict.fromkeys(ids))
    base = {"user_id": user_id, "replaced": False, "deleted": {"$ne": True}, **condition}

    def one(doc_id: str) -> bool:
        return _update_one(doc_id, base, changes, kind, user_id, now, source, read=read)

    return [i for i, ok in zip(unique, lookup_each(one, unique), strict=True) if ok]


def _all(
    user_id: str,
    query: dict[str, Any],
    condition: dict[str, Any],
    changes: dict[str, Any],
    kind: InboxChangeKind,
    now: datetime,
    source: str,
    *,
    read: bool = False,
) -> list[str]:
    """Apply one change to every notification matching ``query``, in chunks by id."""
    coll = collection(Notification)
    changed: list[str] = []
    last_id: str | None = None
    while True:
        page = dict(query)
        if last_id is not None:
            page["_id"] = {"$gt": last_id}
        ids = [d["_id"] for d in coll.find(page, {"_id": 1}).sort("_id", 1).limit(CHUNK)]
        if not ids:
            return changed
        changed += _each(user_id, ids, condition, changes, kind, now, source, read=read)
        last_id = ids[-1]


def mark_read_many(user_id: str, ids: list[str], now: datetime, *, source: str) -> Change:
    now = ms(now)
    changed = _each(
        user_id, ids, {"read": False}, _read_changes(now), "read", now, source, read=True
    )
    return Change(user_id, "read", changed)


def mark_all_read(user_id: str, now: datetime, *, source: str) -> Change:
    """Every unread notification of the default list read (and seen)."""
    now = ms(now)
    query = inbox_filter(user_id, unread_only=True)
    changes = _read_changes(now)
    changed = _all(user_id, query, {"read": False}, changes, "read", now, source, read=True)
    return Change(user_id, "read", changed)


def mark_seen(user_id: str, ids: list[str] | None, now: datetime, *, source: str) -> Change:
    """The given notifications (None: every unseen one of the default list) seen."""
    now = ms(now)
    condition = {"seen": {"$ne": True}}
    changes = {"seen": True, "seen_at": now}
    if ids is None:
        query = inbox_filter(user_id, unseen_only=True)
        changed = _all(user_id, query, condition, changes, "seen", now, source)
    else:
        changed = _each(user_id, ids, condition, changes, "seen", now, source)
    return Change(user_id, "seen", changed)


def archive_all_read(user_id: str, now: datetime, *, source: str) -> Change:
    """Every read notification of the default list archived."""
    now = ms(now)
    query = {**inbox_filter(user_id), "read": True}
    changes = {"archived": True, "archived_at": now}
    changed = _all(user_id, query, {"archived": {"$ne": True}}, changes, "archived", now, source)
    return Change(user_id, "archived", changed)


# --- the snooze wake-up -----------------------------------------------------------------


def wake_snoozed(now: datetime, *, source: str, limit: int = 500) -> list[dict[str, Any]]:
    """Bring back every notification whose snooze has ended: on top (``sent_at`` now),
    unread and unseen, with ``notification.inbox_changed`` (unsnoozed) staged. Returns
    the woken documents (for the real-time push). Safe with several sweeps at once: each
    document is claimed with one conditional update."""
    now = ms(now)
    state = named(RETENTION)
    doc = state.find_one({"_id": SNOOZE_STATE})
    if doc is None:
        return []  # nothing was ever snoozed
    current = datetime.strptime(hour_bucket(now), "%Y-%m-%dT%H").replace(tzinfo=UTC)
    close_before = hour_bucket(now - SNOOZE_CLOSE_LAG)
    hour = datetime.strptime(doc["through"], "%Y-%m-%dT%H").replace(tzinfo=UTC)
    hour += timedelta(hours=1)
    notes = collection(Notification)
    woken: list[dict[str, Any]] = []
    while hour <= current and len(woken) < limit:
        bucket = hour_bucket(hour)
        while len(woken) < limit:
            due = notes.find_one(
                {"snooze_hour": bucket, "snoozed_until": {"$lte": now}}, {"_id": 1, "user_id": 1}
            )
            if due is None:
                break
            event = _changed_event(due["user_id"], "unsnoozed", due["_id"], now, source)
            claimed = notes.find_one_and_update(
                {"_id": due["_id"], "snoozed": True, "snooze_hour": bucket},
                staged_update(
                    {
                        "snoozed": False,
                        "snoozed_until": None,
                        "snooze_hour": None,
                        "read": False,
                        "read_at": None,
                        "seen": False,
                        "seen_at": None,
                        "sent_at": now,
                        "day": utc_day(now),
                    },
                    event,
                ),
                return_document=ReturnDocument.AFTER,
            )
            if claimed is None:
                # Lost the race to another sweep, or unsnoozed meanwhile: clear the stale
                # bucket so the loop moves on.
                notes.update_one(
                    {"_id": due["_id"], "snooze_hour": bucket, "snoozed": {"$ne": True}},
                    {"$set": {"snooze_hour": None}},
                )
                continue
            claimed.pop("outbox", None)
            woken.append(claimed)
        if bucket <= close_before and len(woken) < limit:
            state.update_one({"_id": SNOOZE_STATE}, {"$max": {"through": bucket}})
        hour += timedelta(hours=1)
    return woken
