"""Delivery: turning ``notification.requested`` into inbox entries (synchronous storage
code; the async service calls it through ``run_db``).

Guarantees, with any number of consumer replicas and with redelivery:

* **Idempotency.** ``notifications.idempotency_key`` and ``deliveries.idempotency_key``
  are unique: a second insert with a key is a no-op. A request whose key already has a
  notification or a delivery record is not decided again.
* **Collapse.** Every request of a ``(user, collapse_key)`` group inserts a version
  document (unique per idempotency key); the group's order is
  ``(requested_at, idempotency_key)``. A request older than the group's newest is
  recorded as suppressed ``superseded`` and never shown. After inserting its
  notification, every request *settles* the group: unread notifications older than the
  newest version are marked ``replaced``. Whichever request finishes last sees every
  version, so one unread notification per group stays visible (the newest: it is never
  hidden); read ones are never touched. No read-modify-write decides the winner, so this
  holds with racing replicas.
* **Daily cap.** Promotions reserve a place in a per-``(user, local day)`` document
  with one conditional update (``n < cap`` and key not yet in it), so concurrent
  replicas cannot exceed the cap and a redelivered request reuses its own place.
* **Bulk writes.** Plain notifications and delivery records of a batch are written with
  ``insert_many(ordered=False)``; duplicate-key errors of redelivered ones are ignored.
* **Events derived from state.** ``notification.created`` is not staged in an outbox: the
  consumer publishes it (confirmed) after the insert and before it acknowledges the
  request, with an id derived from the notification (:func:`created_event`). A crash in
  between redelivers the request; the redelivery finds the stored notification and
  publishes the same event again, which consumers recognise by its id. This saves two
  writes per notification on the hot path.
* **Index-served lookups only.** The MongoDB-compatible server used locally (FerretDB)
  pushes only top-level equality filters down to its indexes, not ``$in``: a batch reads
  its users with one point lookup each (run concurrently, :func:`replica.get_users`),
  and looks up earlier decisions only for requests the broker may have delivered before
  (``maybe_seen``); for a first delivery the unique indexes are the guard.
"""

from __future__ import annotations

import copy
import functools
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from herald_common import replica
from herald_common.events import NotificationCreated, NotificationRequested, make_event
from herald_common.preferences import Preferences
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from herald_notifications import digest_store
from herald_notifications.decisions import Decision, DeliveryPolicy, decide
from herald_notifications.metrics import CREATED, PURGED, REPLACED, count_decision
from herald_notifications.models import (
    PROMOTION_DAYS,
    RETENTION,
    VERSIONS,
    DeliveryRecord,
    Notification,
    collection,
)

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
# How long a sweep holds a deferred record while re-evaluating it; a crashed sweep's
# records are picked up again after this.
RELEASE_LEASE = timedelta(seconds=60)


def ms(value: datetime) -> datetime:
    """``value`` in UTC with millisecond precision: what MongoDB stores, so values
    compare equal after a round trip (cursors, collapse ordering)."""
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def utc_day(value: datetime) -> str:
    """The UTC calendar date of ``value``: the unit of the retention sweep."""
    return value.astimezone(UTC).date().isoformat()


def _key(*parts: str) -> str:
    # Length-prefixed so that ("a:b", "c") and ("a", "b:c") never collide.
    return "|".join(f"{len(p)}:{p}" for p in parts)


@dataclass
class Outcome:
    """What happened to the requests of one call: notifications created (raw documents,
    for the real-time push) and how many requests were handled."""

    created: list[dict[str, Any]] = field(default_factory=list)
    handled: int = 0
    # stored by an earlier attempt whose notification.created may not have gone out
    existing: list[dict[str, Any]] = field(default_factory=list)

    def events(self, *, source: str) -> list[Any]:
        """``notification.created`` for everything this call stored or found stored."""
        return [created_event(d, source=source) for d in (*self.created, *self.existing)]


# --- users and the daily cap ------------------------------------------------------------


def _user_state(user: dict[str, Any] | None) -> tuple[Preferences | None, bool]:
    if user is None:
        return None, False
    if user.get("deleted"):
        return None, True
    return Preferences.model_validate(user.get("preferences") or {}), False


def local_day(preferences: Preferences, now: datetime) -> str:
    """The user's calendar day at ``now`` (the daily cap resets at local midnight)."""
    return now.astimezone(ZoneInfo(preferences.timezone)).date().isoformat()


def promotions_on(user_id: str, day: str) -> int:
    doc = collection(PROMOTION_DAYS).find_one({"_id": _key(user_id, day)}, {"n": 1})
    return int(doc.get("n", 0)) if doc else 0


def reserve_promotion(user_id: str, day: str, idempotency_key: str, cap: int) -> bool:
    """Take one of ``cap`` places of the user's day for this request; True when it has
    one (also when it got it on an earlier delivery attempt)."""
    coll = collection(PROMOTION_DAYS)
    doc_id = _key(user_id, day)
    try:
        coll.update_one(
            {"_id": doc_id, "keys": {"$ne": idempotency_key}, "n": {"$lt": cap}},
            {
                "$push": {"keys": idempotency_key},
                "$inc": {"n": 1},
                "$setOnInsert": {"user_id": user_id, "day": day},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        # The day exists and either is full or already holds this key.
        doc = coll.find_one({"_id": doc_id}, {"keys": 1})
        return bool(doc and idempotency_key in (doc.get("keys") or []))
    return True


def _decide(
    request: NotificationRequested,
    user: dict[str, Any] | None,
    now: datetime,
    policy: DeliveryPolicy,
    first_seen: datetime | None = None,
) -> Decision:
    """The pure decision plus the atomic cap reservation for a promotion to deliver."""
    preferences, deleted = _user_state(user)
    cap = preferences.max_promotions_per_day if preferences else None
    day = local_day(preferences, now) if preferences else ""
    today = promotions_on(request.user_id, day) if request.type == "promotion" and cap else 0
    decision = decide(
        request, preferences, today, now, user_deleted=deleted, first_seen=first_seen, policy=policy
    )
    if decision.outcome == "deliver" and request.type == "promotion" and cap is not None:
        if not reserve_promotion(request.user_id, day, request.idempotency_key, cap):
            decision = Decision.suppress("daily_cap")  # another replica took the last place
    return decision


# --- notifications ----------------------------------------------------------------------


def build_notification(
    request: NotificationRequested,
    now: datetime,
    *,
    source: str,
    notification_id: str | None = None,
    replaced_id: str | None = None,
) -> Notification:
    """A new notification (its ``notification.created`` is derived by :func:`created_event`)."""
    sent_at = ms(now)
    doc = Notification(
        id=notification_id or str(uuid.uuid4()),
        user_id=request.user_id,
        type=request.type,
        content=request.content,
        sent_at=sent_at,
        requested_at=ms(request.requested_at),
        read=False,
        collapse_key=request.collapse_key,
        source=request.source,
        idempotency_key=request.idempotency_key,
        replaces=replaced_id,
        day=utc_day(sent_at),
    )
    doc.validate()
    return doc


@functools.cache
def _stored_layout() -> tuple[tuple[str, str, Any, bool], ...]:
    """``(attribute, stored name, default, null)`` of every :class:`Notification` field
    in stored order: what ``to_mongo`` walks, read once from the document class."""
    defaults = Notification()._data
    return tuple(
        (name, field.db_field, defaults.get(name), bool(field.null))
        for name in Notification._fields_ordered
        for field in [Notification._fields[name]]
    )


def new_notification_doc(
    request: NotificationRequested,
    now: datetime,
    *,
    source: str,
    notification_id: str | None = None,
    replaced_id: str | None = None,
) -> dict[str, Any]:
    """The stored document :func:`build_notification` would give, built as a plain
    dict: the batch path's way (constructing and validating a mongoengine document per
    notification cost more than its insert). ``request`` is already validated."""
    sent_at = ms(now)
    values: dict[str, Any] = {
        "id": notification_id or str(uuid.uuid4()),
        "user_id": request.user_id,
        "type": request.type,
        "content": request.content,
        "sent_at": sent_at,
        "requested_at": ms(request.requested_at),
        "read": False,
        "collapse_key": request.collapse_key,
        "source": request.source,
        "idempotency_key": request.idempotency_key,
        "replaces": replaced_id,
        "day": utc_day(sent_at),
    }
    raw: dict[str, Any] = {}
    for name, stored, default, null in _stored_layout():
        value = values[name] if name in values else copy.copy(default)
        if value is not None or null:
            raw[stored] = value
    return raw


CREATED_EVENT_NS = uuid.UUID("5b0f3c52-8f3e-4c55-9d61-2f1a7c9e4b10")


def created_event(doc: dict[str, Any], *, source: str) -> Any:
    """``notification.created`` for a stored notification; the same document always
    gives the same event id."""
    return make_event(
        "notification.created",
        NotificationCreated(
            notification_id=doc["_id"],
            user_id=doc["user_id"],
            type=doc["type"],
            content=doc["content"],
            sent_at=doc["sent_at"],
            collapse_key=doc.get("collapse_key"),
            replaced_id=doc.get("replaces"),
            source=doc["source"],
            idempotency_key=doc["idempotency_key"],
        ),
        source=source,
        event_id=uuid.uuid5(CREATED_EVENT_NS, doc["_id"]),
    )


def insert_notifications(docs: Sequence[Notification | dict[str, Any]]) -> list[dict[str, Any]]:
    """Bulk insert (documents or stored dicts); returns the documents actually inserted
    (duplicates skipped)."""
    if not docs:
        return []
    raw = [d if isinstance(d, dict) else d.to_mongo().to_dict() for d in docs]
    failed: set[int] = set()
    try:
        Notification._get_collection().insert_many(raw, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others:
            raise
        failed = {int(e["index"]) for e in errors}
    inserted = [doc for i, doc in enumerate(raw) if i not in failed]
    for doc in inserted:
        CREATED.labels(doc["type"]).inc()
    return inserted


def _older_than(requested_at: datetime, key: str) -> dict[str, Any]:
    """Filter: ``(requested_at, idempotency_key)`` strictly before the given pair."""
    return {
        "$or": [
            {"requested_at": {"$lt": requested_at}},
            {"requested_at": requested_at, "idempotency_key": {"$lt": key}},
        ]
    }


def newest_version(user_id: str, collapse_key: str) -> dict[str, Any] | None:
    """The newest request of a collapse group: the one that stays visible."""
    return collection(VERSIONS).find_one(
        {"group": _key(user_id, collapse_key)},
        sort=[("requested_at", DESCENDING), ("idempotency_key", DESCENDING)],
    )


def settle_collapse(user_id: str, collapse_key: str) -> int:
    """Hide unread notifications of the group older than its newest request."""
    newest = newest_version(user_id, collapse_key)
    if newest is None:
        return 0
    result = Notification._get_collection().update_many(
        {
            "user_id": user_id,
            "collapse_key": collapse_key,
            "read": False,
            "replaced": False,
            **_older_than(newest["requested_at"], newest["idempotency_key"]),
        },
        {"$set": {"replaced": True, "replaced_by": newest["idempotency_key"]}},
    )
    if result.modified_count:
        REPLACED.inc(result.modified_count)
    return int(result.modified_count)


def deliver_collapsing(
    request: NotificationRequested, now: datetime, *, source: str
) -> tuple[str, dict[str, Any] | None]:
    """Deliver a request that has a collapse key.

    Returns ``("created", doc)``, ``("duplicate", None)`` (a redelivery: already stored)
    or ``("superseded", None)`` (a newer request of the group exists).

    Only inserts decide the group's order (one version document per request, unique by
    ``(group, idempotency_key)``), so racing replicas need no atomic read-modify-write:
    whichever finishes last sees every version inserted before it and hides the rest.
    """
    assert request.collapse_key is not None
    user_id, collapse_key = request.user_id, request.collapse_key
    requested_at, key = ms(request.requested_at), request.idempotency_key
    newest = newest_version(user_id, collapse_key)
    if newest is not None and (newest["requested_at"], newest["idempotency_key"]) > (
        requested_at,
        key,
    ):
        return "superseded", None
    try:
        collection(VERSIONS).insert_one(
            {
                "_id": _key(user_id, collapse_key, key),
                "group": _key(user_id, collapse_key),
                "user_id": user_id,
                "collapse_key": collapse_key,
                "requested_at": requested_at,
                "idempotency_key": key,
                "created_at": ms(now),
                "day": utc_day(now),
            }
        )
    except DuplicateKeyError:
        pass  # redelivery of a request that got this far before
    replaced = Notification._get_collection().find_one(
        {
            "user_id": user_id,
            "collapse_key": collapse_key,
            "read": False,
            "replaced": False,
            **_older_than(requested_at, key),
        },
        {"_id": 1},
        sort=[("requested_at", DESCENDING)],
    )
    doc = build_notification(
        request, now, source=source, replaced_id=replaced["_id"] if replaced else None
    )
    created = insert_notifications([doc])
    settle_collapse(user_id, collapse_key)
    return ("created", created[0]) if created else ("duplicate", None)


# --- delivery records -------------------------------------------------------------------


def _history(decision: Decision, now: datetime) -> dict[str, Any]:
    return {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "at": ms(now),
        "deliver_at": ms(decision.deliver_at) if decision.deliver_at else None,
    }


def new_record(request: NotificationRequested, decision: Decision, now: datetime) -> dict[str, Any]:
    """A delivery record for a request suppressed or deferred on first sight."""
    assert decision.outcome != "deliver"
    record = DeliveryRecord(
        idempotency_key=request.idempotency_key,
        user_id=request.user_id,
        type=request.type,
        source=request.source,
        collapse_key=request.collapse_key,
        outcome="deferred" if decision.outcome == "defer" else "suppressed",
        reason=decision.reason,
        at=ms(now),
        first_at=ms(now),
        deliver_at=ms(decision.deliver_at) if decision.deliver_at else None,
        request=request.model_dump(mode="json"),
        history=[_history(decision, now)],
        day=utc_day(now),
    )
    record.validate()
    return record.to_mongo().to_dict()


def insert_records(records: list[dict[str, Any]]) -> int:
    """Bulk insert delivery records; duplicates (redeliveries) are no-ops."""
    if not records:
        return 0
    try:
        result = DeliveryRecord._get_collection().insert_many(records, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return len(records) - len(errors)
    return len(result.inserted_ids)


# --- the request pipeline ---------------------------------------------------------------

UsersLookup = Callable[[Iterable[str]], dict[str, dict[str, Any]]]


def _earlier_decisions(
    keys: Iterable[str],
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Notifications and delivery records already stored for these idempotency keys
    (point lookups by the unique keys)."""
    notes, records = Notification._get_collection(), DeliveryRecord._get_collection()
    stored: dict[str, dict[str, Any]] = {}
    recorded: set[str] = set()
    for key in keys:
        doc = notes.find_one({"idempotency_key": key}, {"outbox": 0})
        if doc is not None:
            stored[key] = doc
        elif records.find_one({"idempotency_key": key}, {"_id": 1}) is not None:
            recorded.add(key)
        elif digest_store.is_held(key):
            recorded.add(key)  # held for a digest: one entry, whatever comes again
    return stored, recorded


def process_requests(
    requests: Iterable[NotificationRequested],
    now: datetime,
    policy: DeliveryPolicy,
    *,
    source: str,
    maybe_seen: Collection[str] = (),
    get_users: UsersLookup | None = None,
) -> Outcome:
    """Decide and store a batch of requests (in order; duplicates in the batch once).

    ``maybe_seen`` names the idempotency keys of requests the broker may have delivered
    before: only those are looked up for an earlier decision. ``get_users`` reads the
    batch's users, tombstones included (default: the replica; the service passes its
    :class:`herald_common.replica_cache.UserCache`)."""
    unique: dict[str, NotificationRequested] = {}
    for request in requests:
        unique.setdefault(request.idempotency_key, request)
    keys = list(unique)
    outcome = Outcome(handled=len(keys))
    if not keys:
        return outcome

    stored, recorded = _earlier_decisions(k for k in keys if k in maybe_seen)
    outcome.existing.extend(stored.values())
    user_ids = [r.user_id for r in unique.values()]
    users = get_users(user_ids) if get_users else replica.get_users(user_ids, include_deleted=True)

    plain: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    held: list[tuple[NotificationRequested, datetime]] = []
    for key, request in unique.items():
        if key in stored:
            # Redelivered after it was stored; finish a collapse an earlier attempt may
            # have left unsettled (crash between insert and settle).
            if request.collapse_key:
                settle_collapse(request.user_id, request.collapse_key)
            continue
        if key in recorded:
            continue  # already suppressed or deferred: decided once
        decision = _decide(request, users.get(request.user_id), now, policy)
        if decision.outcome == "deliver" and request.collapse_key:
            status, doc = deliver_collapsing(request, now, source=source)
            if status == "superseded":
                decision = Decision.suppress("superseded")
            elif doc is not None:
                outcome.created.append(doc)
        elif decision.outcome == "deliver":
            plain.append(new_notification_doc(request, now, source=source))
        count_decision(decision.outcome, decision.reason, request.type)
        if decision.outcome == "hold" and decision.deliver_at is not None:
            held.append((request, decision.deliver_at))
        elif decision.outcome != "deliver":
            records.append(new_record(request, decision, now))
    outcome.created.extend(insert_notifications(plain))
    insert_records(records)
    digest_store.hold(held, now)
    return outcome


# --- deferred requests ------------------------------------------------------------------


def _reevaluate(
    record: dict[str, Any], now: datetime, policy: DeliveryPolicy, *, source: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Decide a deferred request again; returns the notification it created, or the one
    an earlier attempt had stored."""
    request = NotificationRequested.model_validate(record["request"])
    user = replica.get_users([request.user_id], include_deleted=True).get(request.user_id)
    decision = _decide(request, user, now, policy, first_seen=record["first_at"])
    created: dict[str, Any] | None = None
    update: dict[str, Any] = {"at": ms(now), "day": utc_day(now), "lease_until": None}
    if decision.outcome == "deliver":
        if request.collapse_key:
            status, created = deliver_collapsing(request, now, source=source)
            if status == "superseded":
                decision = Decision.suppress("superseded")
        else:
            inserted = insert_notifications([build_notification(request, now, source=source)])
            created = inserted[0] if inserted else None
    existing: dict[str, Any] | None = None
    if decision.outcome == "hold" and decision.deliver_at is not None:
        digest_store.hold([(request, decision.deliver_at)], now)
        update["outcome"] = "released"  # into the user's next digest
    elif decision.outcome == "deliver":
        update["outcome"] = "released"
        if created is None:
            # stored by an earlier, interrupted release: its event goes out again
            existing = Notification._get_collection().find_one(
                {"idempotency_key": request.idempotency_key}, {"outbox": 0}
            )
        stored = created or existing
        update["notification_id"] = stored["_id"] if stored else None
    elif decision.outcome == "defer":
        update.update(
            outcome="deferred", reason=decision.reason, deliver_at=ms(decision.deliver_at or now)
        )
    else:
        update.update(outcome="suppressed", reason=decision.reason)
    count_decision(decision.outcome, decision.reason, request.type)
    DeliveryRecord._get_collection().update_one(
        {"_id": record["_id"]},
        {"$set": update, "$push": {"history": _history(decision, now)}},
    )
    return created, existing


def release_due(
    now: datetime,
    policy: DeliveryPolicy,
    *,
    source: str,
    limit: int = 500,
    user_id: str | None = None,
) -> Outcome:
    """Re-evaluate deferred requests whose time has come (``deliver_at <= now``).

    Each record is leased with an atomic update first, so concurrent sweeps in several
    replicas never evaluate one record twice at the same time; delivery itself is
    idempotent anyway (unique idempotency key).
    """
    coll = DeliveryRecord._get_collection()
    now = ms(now)
    outcome = Outcome()
    query: dict[str, Any] = {
        "outcome": "deferred",
        "deliver_at": {"$lte": now},
        "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
    }
    if user_id is not None:
        query["user_id"] = user_id
    while outcome.handled < limit:
        record = coll.find_one_and_update(
            query,
            {"$set": {"lease_until": now + RELEASE_LEASE}},
            sort=[("deliver_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if record is None:
            break
        outcome.handled += 1
        try:
            created, existing = _reevaluate(record, now, policy, source=source)
        except Exception:
            # Leave it leased: it is retried when the lease runs out.
            log.exception("re-evaluating a deferred request failed", extra={"id": record["_id"]})
            continue
        if created is not None:
            outcome.created.append(created)
        if existing is not None:
            outcome.existing.append(existing)
    return outcome


def release_user(user_id: str, now: datetime, policy: DeliveryPolicy, *, source: str) -> Outcome:
    """Re-evaluate all deferred requests of one user now (their replica just changed:
    a user who was unknown arrived, quiet hours changed, or the user was deleted)."""
    DeliveryRecord._get_collection().update_many(
        {"user_id": user_id, "outcome": "deferred"}, {"$set": {"deliver_at": ms(now)}}
    )
    return release_due(now, policy, source=source, user_id=user_id)


def forget_user(user_id: str) -> int:
    """Remove a deleted user's inbox. Documents whose events are not relayed yet are
    hidden instead and go with the retention sweep, so no staged event is lost."""
    notes = Notification._get_collection()
    removed = notes.delete_many({"user_id": user_id, "outbox_pending": {"$ne": True}})
    notes.update_many({"user_id": user_id}, {"$set": {"replaced": True}})
    collection(VERSIONS).delete_many({"user_id": user_id})
    return int(removed.deleted_count)


# --- retention --------------------------------------------------------------------------


def _purge_day(coll: Any, day: str, keep: dict[str, Any]) -> tuple[int, bool]:
    """Delete one day of ``coll`` except what matches ``keep``; returns how many went and
    whether the day is now empty (kept documents hold it open for the next sweep)."""
    deleted = coll.delete_many({"day": day, "$nor": [keep]} if keep else {"day": day})
    done = not keep or coll.find_one({"day": day}, {"_id": 1}) is None
    return int(deleted.deleted_count), done


def _purge_days(kind: str, coll: Any, keep: dict[str, Any], cutoff: date) -> int:
    """Delete the days of ``coll`` before ``cutoff`` not purged yet; returns how many
    documents went. The first sweep of a collection starts 90 days before ``cutoff``
    (an empty day costs two indexed queries)."""
    state = collection(RETENTION)
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


FIRST_SWEEP = timedelta(days=90)


def purge(now: datetime, retention_days: int) -> dict[str, int]:
    """Delete what is older than the retention period, whole UTC days at a time.

    Each collection remembers the last day it purged (``retention``), so a sweep visits
    only the days that aged out since the previous one.
    Notifications whose ``notification.read`` is not relayed yet and deferred delivery
    records are kept; their day is visited again by the next sweep. Daily-cap counters
    are needed only for the current day (two days back covers every time zone).
    """
    today = now.astimezone(UTC).date()
    cutoff = today - timedelta(days=retention_days)
    plans: dict[str, tuple[Any, dict[str, Any], date]] = {
        "notifications": (Notification._get_collection(), {"outbox_pending": True}, cutoff),
        "deliveries": (DeliveryRecord._get_collection(), {"outcome": "deferred"}, cutoff),
        "collapse_versions": (collection(VERSIONS), {}, cutoff),
        "promotion_days": (collection(PROMOTION_DAYS), {}, today - timedelta(days=2)),
        # held items and their slots: the open ones wait for their digest
        "digest_items": (collection(digest_store.ITEMS), {"sent": False}, cutoff),
        "digest_slots": (collection(digest_store.SLOTS), {"state": "open"}, cutoff),
    }
    counts = {
        kind: _purge_days(kind, coll, keep, before) for kind, (coll, keep, before) in plans.items()
    }
    for kind, n in counts.items():
        if n:
            PURGED.labels(kind).inc(n)
    return counts
