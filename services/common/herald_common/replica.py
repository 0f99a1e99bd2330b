"""Local replica of users, built only from ``user.*`` events.

Notifications, scheduler and recommendations each keep one in their own database, so
their hot paths never call the users service. Events may arrive twice or out of order:
a user's ``revision`` only moves forward, and a deletion leaves a tombstone that older
events cannot revive.

    await broker.consume("notifications.users", ["user.*"], handle_user_event)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import mongoengine
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from herald_common.db import find_in, run_db, run_once
from herald_common.events import Envelope, UserDeleted, UserPreferencesUpdated, UserRegistered
from herald_common.preferences import Preferences

COLLECTION = "user_replica"
# Users are spread over this many buckets; iter_users reads one bucket per query, so a
# full pass costs BUCKETS queries however few users there are (64: a campaign to a small
# shop is cheap; 1M users are ~16k per bucket, still one bounded read each).
BUCKETS = 64


def _coll(alias: str = "default") -> Any:
    return mongoengine.get_db(alias)[COLLECTION]


# One document in the service's ``migrations``-like state collection: when the replica
# last changed (lets a periodic job tell "nothing changed" without reading the replica).
STATE = "user_replica_state"
CHANGED = "changed"


def ensure_indexes(alias: str = "default") -> None:
    """Create the replica's index; give documents of an older layout their bucket. A
    replica from before the change marker counts as changed now (once)."""
    _coll(alias).create_index([("bucket", ASCENDING), ("_id", ASCENDING)])
    run_once(f"user_replica.bucket.{BUCKETS}", lambda: backfill_buckets(alias), alias)
    run_once("user_replica.changed_at", lambda: _mark_changed(datetime.now(UTC), alias), alias)


def _mark_changed(now: datetime, alias: str = "default") -> None:
    mongoengine.get_db(alias)[STATE].update_one(
        {"_id": CHANGED}, {"$max": {"at": now}}, upsert=True
    )


def last_change() -> datetime | None:
    """When a user event last changed the replica (None: never, since the marker)."""
    doc = mongoengine.get_db()[STATE].find_one({"_id": CHANGED})
    at = doc.get("at") if doc else None
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


def apply_user_event(payload: UserRegistered | UserPreferencesUpdated | UserDeleted) -> bool:
    """Apply one user event; False when it was stale (an equal or newer revision is in)."""
    now = datetime.now(UTC)
    if isinstance(payload, UserDeleted):
        fields: dict[str, Any] = {
            "revision": payload.revision,
            "deleted": True,
            "name": None,
            "email": None,
            "updated_at": now,
        }
    else:
        fields = {
            "revision": payload.revision,
            "deleted": False,
            "name": payload.name,
            "email": payload.email,
            "preferences": payload.preferences.model_dump(mode="json"),
            "updated_at": now,
        }
        if isinstance(payload, UserRegistered):
            fields["created_at"] = payload.created_at
            fields["roles"] = payload.roles
    fields["bucket"] = bucket_of(payload.user_id)
    try:
        result = _coll().update_one(
            {"_id": payload.user_id, "revision": {"$lt": payload.revision}},
            {"$set": fields},
            upsert=True,
        )
    except DuplicateKeyError:
        # The stored revision is newer or equal: this event is stale. A late
        # user.registered still carries what only it knows (creation time, roles).
        if isinstance(payload, UserRegistered):
            _coll().update_one(
                {"_id": payload.user_id, "created_at": {"$exists": False}},
                {"$set": {"created_at": payload.created_at, "roles": payload.roles}},
            )
        return False
    changed = bool(result.modified_count or result.upserted_id is not None)
    if changed:
        _mark_changed(now)
    return changed


async def handle_user_event(event: Envelope[Any]) -> None:
    """Consumer handler for ``user.*`` (use as-is or call from a service handler)."""
    await run_db(apply_user_event, event.payload)


def get_user(user_id: str) -> dict[str, Any] | None:
    """The replicated user (``_id``, ``name``, ``email``, ``preferences``...) or None."""
    doc = _coll().find_one({"_id": user_id, "deleted": False})
    return dict(doc) if doc else None


def get_users(
    user_ids: Iterable[str], *, include_deleted: bool = False
) -> dict[str, dict[str, Any]]:
    """Replicated users by id (batch consumers: one ``$in`` query per
    :data:`~herald_common.db.IN_CHUNK` users). With ``include_deleted`` tombstones
    (``deleted: True``) are returned too, so a caller can tell a deleted user from one
    whose ``user.registered`` has not arrived yet."""
    return {
        doc["_id"]: doc
        for doc in find_in(_coll(), "_id", user_ids)
        if include_deleted or not doc.get("deleted")
    }


def get_bucket(bucket: int) -> list[dict[str, Any]]:
    """Every replicated user of one bucket, tombstones included: one query served by the
    ``(bucket, _id)`` index (what :class:`herald_common.replica_cache.UserCache` reads
    when a batch, e.g. a campaign sent in bucket order, misses many users of a bucket)."""
    return [dict(doc) for doc in _coll().find({"bucket": bucket})]


def get_preferences(user_id: str) -> Preferences | None:
    doc = get_user(user_id)
    if doc is None:
        return None
    return Preferences.model_validate(doc.get("preferences") or {})


def bucket_of(user_id: str) -> int:
    """The user's bucket: a stable hash of the id, spreading users evenly."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def position(user: dict[str, Any]) -> str:
    """Where a user stands in :func:`iter_users` order; pass it back as ``after``."""
    return f"{user['bucket']:04d}:{user['_id']}"  # fixed width: string order = read order


def iter_users(
    query: dict[str, Any] | None = None,
    batch_size: int = 1000,
    *,
    after: str | None = None,
    user_ids: Iterable[str] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Stream live users matching ``query`` (and, if given, among ``user_ids``) in
    bucket order, ``batch_size`` at a time (bounded memory for any audience size),
    starting after the :func:`position` ``after``.

    Users are read one bucket at a time (``{"bucket": b}``, an indexed equality), and in
    ``_id`` order within it, so any audience costs one pass over the replica, resumable
    from a position, without a sort or range query on the server (FerretDB answers
    neither from an index). ``query`` must be top-level conditions on replica fields.
    """
    coll = _coll()
    wanted = set(user_ids) if user_ids is not None else None
    buckets = sorted({bucket_of(u) for u in wanted}) if wanted is not None else range(BUCKETS)
    start_bucket, after_id = (int(after[:4]), after[5:]) if after else (-1, "")
    batch: list[dict[str, Any]] = []
    for bucket in buckets:
        if bucket < start_bucket:
            continue
        docs = sorted(
            coll.find({**(query or {}), "bucket": bucket, "deleted": False}),
            key=lambda d: d["_id"],
        )
        for doc in docs:
            if bucket == start_bucket and doc["_id"] <= after_id:
                continue
            if wanted is not None and doc["_id"] not in wanted:
                continue
            batch.append(dict(doc))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def backfill_buckets(alias: str = "default") -> int:
    """Give every replica document its bucket (a one-off pass, run by
    :func:`ensure_indexes` once per database and bucket count)."""
    coll = _coll(alias)
    n = 0
    for doc in coll.find({}, {"_id": 1}):
        coll.update_one({"_id": doc["_id"]}, {"$set": {"bucket": bucket_of(doc["_id"])}})
        n += 1
    return n
