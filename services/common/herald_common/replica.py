"""Local replica of users, built only from ``user.*`` events.

Notifications, scheduler and recommendations each keep one in their own database, so
their hot paths never call the users service. Events may arrive twice or out of order:
a user's ``revision`` only moves forward, and a deletion leaves a tombstone that older
events cannot revive.

    await broker.consume("notifications.users", ["user.*"], handle_user_event)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import mongoengine
from pymongo import ASCENDING
from pymongo.errors import AutoReconnect, CursorNotFound, DuplicateKeyError

from herald_common.db import run_db
from herald_common.events import Envelope, UserDeleted, UserPreferencesUpdated, UserRegistered
from herald_common.preferences import Preferences

COLLECTION = "user_replica"


def _coll(alias: str = "default") -> Any:
    return mongoengine.get_db(alias)[COLLECTION]


def ensure_indexes(alias: str = "default") -> None:
    _coll(alias).create_index([("deleted", ASCENDING), ("_id", ASCENDING)])


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
    return bool(result.modified_count or result.upserted_id is not None)


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
    """Replicated users by id, in one query (batch consumers). With
    ``include_deleted`` tombstones (``deleted: True``) are returned too, so a caller can
    tell a deleted user from one whose ``user.registered`` has not arrived yet."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    query: dict[str, Any] = {"_id": {"$in": ids}}
    if not include_deleted:
        query["deleted"] = False
    return {doc["_id"]: dict(doc) for doc in _coll().find(query)}


def get_preferences(user_id: str) -> Preferences | None:
    doc = get_user(user_id)
    if doc is None:
        return None
    return Preferences.model_validate(doc.get("preferences") or {})


def iter_users(
    query: dict[str, Any] | None = None,
    batch_size: int = 1000,
    *,
    after: str | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Stream live users matching ``query`` in ``_id`` order, ``batch_size`` at a time,
    starting after user id ``after`` (bounded memory for any audience size).

    One server-side cursor is read ``batch_size`` documents at a time: FerretDB 1.x
    does not push ``_id`` ranges and sorts down to its storage, so paging with a new
    query per batch would scan the whole collection once per batch. If the cursor is
    lost (idle timeout, reconnect), the stream resumes after the last user it yielded.
    ``query`` may constrain ``_id`` too (e.g. ``{"_id": {"$in": ids}}``).
    """
    last = after
    while True:
        conditions: list[dict[str, Any]] = [{"deleted": False}]
        if query:
            conditions.append(query)
        if last is not None:
            conditions.append({"_id": {"$gt": last}})
        q = conditions[0] if len(conditions) == 1 else {"$and": conditions}
        cursor = _coll().find(q).sort("_id", ASCENDING).batch_size(batch_size)
        batch: list[dict[str, Any]] = []
        try:
            for doc in cursor:
                batch.append(doc)
                if len(batch) >= batch_size:
                    yield batch
                    last = batch[-1]["_id"]
                    batch = []
        except (CursorNotFound, AutoReconnect):
            if batch:
                yield batch
                last = batch[-1]["_id"]
            continue  # re-query after ``last``
        finally:
            cursor.close()
        if batch:
            yield batch
        return
