"""Delivery storage: the only code touching the ``notifications`` (as the delivery path
writes them), ``deliveries``, ``collapse_versions`` and ``promotion_days`` collections
(synchronous; see :mod:`herald_notifications.delivery` for the guarantees).

Every lookup is an equality, or an ``$in`` of strings, on the leading field of an index
(what the local server answers from an index; see ``models.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from herald_common.clock import utc_day
from herald_common.db import (
    DUPLICATE_KEY,
    bulk_write,
    collection,
    conditional_upsert,
    delete_in,
    find_in,
    insert_all_new,
    named,
)
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateMany
from pymongo.errors import BulkWriteError

from herald_notifications import digest_store
from herald_notifications.builders import key, ms
from herald_notifications.metrics import CREATED, REPLACED
from herald_notifications.models import PROMOTION_DAYS, VERSIONS, DeliveryRecord, Notification

# --- the daily cap ----------------------------------------------------------------------


def promotions_on(user_id: str, day: str) -> int:
    doc = named(PROMOTION_DAYS).find_one({"_id": key(user_id, day)}, {"n": 1})
    return int(doc.get("n", 0)) if doc else 0


def reserve_promotion(user_id: str, day: str, idempotency_key: str, cap: int) -> bool:
    """Take one of ``cap`` places of the user's day for this request; True when it has
    one (also when it got it on an earlier delivery attempt)."""
    coll = named(PROMOTION_DAYS)
    doc_id = key(user_id, day)
    if conditional_upsert(
        coll,
        {"_id": doc_id, "keys": {"$ne": idempotency_key}, "n": {"$lt": cap}},
        {
            "$push": {"keys": idempotency_key},
            "$inc": {"n": 1},
            "$setOnInsert": {"user_id": user_id, "day": day},
        },
    ):
        return True
    # The day exists and either is full or already holds this key.
    doc = coll.find_one({"_id": doc_id}, {"keys": 1})
    return bool(doc and idempotency_key in (doc.get("keys") or []))


# --- notifications ----------------------------------------------------------------------


def insert_notifications(docs: Sequence[Notification | dict[str, Any]]) -> list[dict[str, Any]]:
    """Bulk insert (documents or stored dicts); returns the documents actually inserted
    (duplicates skipped)."""
    if not docs:
        return []
    raw = [d if isinstance(d, dict) else d.to_mongo().to_dict() for d in docs]
    failed: set[int] = set()
    try:
        collection(Notification).insert_many(raw, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        failed = {int(e["index"]) for e in errors}
    inserted = [doc for i, doc in enumerate(raw) if i not in failed]
    for doc in inserted:
        CREATED.labels(doc["type"]).inc()
    return inserted


def stored_for(idempotency_key: str) -> dict[str, Any] | None:
    """The notification stored for a request (or a digest) key, if any."""
    doc: dict[str, Any] | None = collection(Notification).find_one(
        {"idempotency_key": idempotency_key}, {"outbox": 0}
    )
    return doc


def earlier_decisions(keys: Iterable[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Notifications and delivery records already stored for these idempotency keys
    (point lookups by the unique keys)."""
    records = collection(DeliveryRecord)
    stored: dict[str, dict[str, Any]] = {}
    recorded: set[str] = set()
    for k in keys:
        doc = stored_for(k)
        if doc is not None:
            stored[k] = doc
        elif records.find_one({"idempotency_key": k}, {"_id": 1}) is not None:
            recorded.add(k)
        elif digest_store.is_held(k):
            recorded.add(k)  # held for a digest: one entry, whatever comes again
    return stored, recorded


def forget_user(user_id: str) -> int:
    """Remove a deleted user's inbox. Documents whose events are not relayed yet are
    hidden instead and go with the retention sweep, so no staged event is lost."""
    notes = collection(Notification)
    removed = notes.delete_many({"user_id": user_id, "outbox_pending": {"$ne": True}})
    notes.update_many({"user_id": user_id}, {"$set": {"replaced": True}})
    named(VERSIONS).delete_many({"user_id": user_id})
    return int(removed.deleted_count)


# --- collapse groups --------------------------------------------------------------------


def _older_than(requested_at: datetime, idempotency_key: str) -> dict[str, Any]:
    """Filter: ``(requested_at, idempotency_key)`` strictly before the given pair."""
    return {
        "$or": [
            {"requested_at": {"$lt": requested_at}},
            {"requested_at": requested_at, "idempotency_key": {"$lt": idempotency_key}},
        ]
    }


def _unread_older(
    user_id: str, collapse_key: str, requested_at: datetime, k: str
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "collapse_key": collapse_key,
        "read": False,
        "replaced": False,
        **_older_than(requested_at, k),
    }


Group = tuple[str, str]  # (user_id, collapse_key)

_PLACE = {"requested_at": 1, "idempotency_key": 1}


def place(doc: dict[str, Any]) -> tuple[datetime, str]:
    """A stored version's or notification's place in its group's order."""
    return doc["requested_at"], doc["idempotency_key"]


def newest_versions(groups: Iterable[Group]) -> dict[Group, dict[str, Any]]:
    """The newest request of each group that has one (the one that stays visible):
    the groups' versions, read with one ``$in`` per chunk of groups."""
    wanted = {key(*g): g for g in groups}
    newest: dict[Group, dict[str, Any]] = {}
    for doc in find_in(named(VERSIONS), "group", wanted, projection={"group": 1, **_PLACE}):
        group = wanted[doc["group"]]
        if group not in newest or place(doc) > place(newest[group]):
            newest[group] = doc
    return newest


def unread_of(groups: Iterable[Group]) -> dict[Group, list[dict[str, Any]]]:
    """The unread, not replaced notifications of each group (``_id`` and place): one
    ``$in`` of the groups' users per collapse key (a fan-out batch has one)."""
    users: dict[str, list[str]] = {}
    for user_id, collapse_key in groups:
        users.setdefault(collapse_key, []).append(user_id)
    found: dict[Group, list[dict[str, Any]]] = {}
    projection = {"user_id": 1, **_PLACE}
    for collapse_key, user_ids in users.items():
        where = {"collapse_key": collapse_key, "read": False, "replaced": False}
        for doc in find_in(
            collection(Notification), "user_id", user_ids, where=where, projection=projection
        ):
            found.setdefault((doc["user_id"], collapse_key), []).append(doc)
    return found


def version(
    user_id: str, collapse_key: str, requested_at: datetime, idempotency_key: str, now: datetime
) -> dict[str, Any]:
    """The version document of one request of a group (unique per idempotency key)."""
    return {
        "_id": key(user_id, collapse_key, idempotency_key),
        "group": key(user_id, collapse_key),
        "user_id": user_id,
        "collapse_key": collapse_key,
        "requested_at": requested_at,
        "idempotency_key": idempotency_key,
        "created_at": ms(now),
        "day": utc_day(now),
    }


def prune_versions(groups: Iterable[Group], before: datetime) -> int:
    """Delete the versions of ``groups`` requested before ``before``, which must not be
    after any of these groups' newest version (the caller just stored a newer one in
    each). Only a group's newest version decides anything (whether a late request of the
    group lost, what a settle keeps), so a group keeps a handful of versions instead of
    one per firing until retention."""
    return delete_in(
        named(VERSIONS),
        "group",
        (key(*g) for g in groups),
        where={"requested_at": {"$lt": ms(before)}},
    )


def add_versions(versions: Sequence[dict[str, Any]]) -> int:
    """Record requests of their groups in one write (a redelivery that got this far
    before adds nothing: the version is unique per idempotency key)."""
    return insert_all_new(named(VERSIONS), versions)


def settle_collapse(groups: Iterable[Group]) -> int:
    """Hide unread notifications of each group older than its newest request. Reads
    the groups' unread notifications together; only groups with two or more (a single
    one older than the newest request is left to that request, which settles the group
    after storing its own) read their newest version and are written, in one bulk
    write."""
    unique = list(dict.fromkeys(groups))
    unread = unread_of(unique)
    crowded = [g for g in unique if len(unread.get(g, ())) >= 2]
    newest = newest_versions(crowded)
    ops = [
        UpdateMany(
            _unread_older(*g, *place(newest[g])),
            {"$set": {"replaced": True, "replaced_by": str(newest[g]["idempotency_key"])}},
        )
        for g in crowded
        if g in newest
    ]
    modified = bulk_write(collection(Notification), ops, ordered=False) if ops else 0
    if modified:
        REPLACED.inc(modified)
    return modified


# --- delivery records -------------------------------------------------------------------


def insert_records(records: list[dict[str, Any]]) -> int:
    """Bulk insert delivery records; duplicates (redeliveries) are no-ops."""
    return insert_all_new(collection(DeliveryRecord), records)


def lease_due_record(
    now: datetime, lease: timedelta, user_id: str | None = None
) -> dict[str, Any] | None:
    """Lease the deferred record due first (``deliver_at <= now``, not leased by a
    running sweep), with one atomic update; None when none is due."""
    query: dict[str, Any] = {
        "outcome": "deferred",
        "deliver_at": {"$lte": now},
        "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
    }
    if user_id is not None:
        query["user_id"] = user_id
    doc: dict[str, Any] | None = collection(DeliveryRecord).find_one_and_update(
        query,
        {"$set": {"lease_until": now + lease}},
        sort=[("deliver_at", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    return doc


def decided_again(record_id: Any, changes: dict[str, Any], history: dict[str, Any] | None) -> None:
    """Store a new decision on a delivery record (its lease ends with it), adding
    ``history`` to its history unless None."""
    update: dict[str, Any] = {"$set": changes}
    if history is not None:
        update["$push"] = {"history": history}
    collection(DeliveryRecord).update_one({"_id": record_id}, update)


def make_due(user_id: str, now: datetime) -> None:
    """Every deferred record of the user due at ``now``."""
    collection(DeliveryRecord).update_many(
        {"user_id": user_id, "outcome": "deferred"}, {"$set": {"deliver_at": now}}
    )


def list_records(
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
        collection(DeliveryRecord)
        .find(query, {"request": 0})
        .sort([("at", DESCENDING), ("_id", DESCENDING)])
        .limit(first)
    )
    return list(docs)


def log_records(user_id: str, *, first: int, after: tuple[datetime, Any] | None) -> list[Any]:
    """Up to ``first + 1`` of the user's records, newest first, after the keyset
    ``(at, _id)`` (the delivery log's pages)."""
    query: dict[str, Any] = {"user_id": user_id}
    if after is not None:
        at, doc_id = after
        query["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": doc_id}}]
    return list(
        collection(DeliveryRecord)
        .find(query, {"request": 0, "history": 0})
        .sort([("at", DESCENDING), ("_id", DESCENDING)])
        .limit(first + 1)
    )
