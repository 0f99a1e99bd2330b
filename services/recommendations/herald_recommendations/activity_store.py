"""Activity storage: the raw log ``activities`` and each user's ``activity_users``
document with their newest entries (what the model reads with one ``_id`` look-up).
Synchronous; call through ``herald_common.db.run_db`` from async code.

Both are idempotent: a raw row's ``_id`` is ``<event id>:<index>``, and entries are
merged into a user's document by activity id, so a redelivered batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from herald_common.clock import utc_day
from herald_common.db import (
    bulk_write,
    collection,
    find_in,
    insert_all_new,
    insert_missing,
    insert_new,
)
from pymongo import UpdateOne

from herald_recommendations.algorithm import Interaction
from herald_recommendations.models import ActiveUser, ActivityDoc
from herald_recommendations.storage import advance_watermark, interactions_of


def insert_activities(docs: Sequence[dict[str, Any]]) -> int:
    """Bulk insert (unordered); documents whose ``_id`` exists are skipped. Returns how
    many were new."""
    if not docs:
        return 0
    return insert_all_new(collection(ActivityDoc), docs)


def _entry(
    doc_id: str, product_id: str, kind: str, at: datetime, session_id: str | None
) -> dict[str, Any]:
    # Sub-documents, not arrays: FerretDB 1.x stores no nested arrays.
    return {"i": doc_id, "p": product_id, "k": kind, "t": at.timestamp(), "s": session_id}


def activity_entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The compact per-user copy of a stored activity document."""
    return _entry(
        doc["_id"], doc["product_id"], doc["kind"], doc["occurred_at"], doc.get("session_id")
    )


@dataclass
class Merged:
    """What :func:`record_activity` did: how many entries were new, and each user's
    entries after the merge (what a refresh decision reads without reading again)."""

    new: int = 0
    recent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def interactions(self, user_id: str) -> list[Interaction]:
        return interactions_of({"recent": self.recent.get(user_id) or []})


def record_activity(
    by_user: Mapping[str, Sequence[dict[str, Any]]], now: datetime, keep: int
) -> Merged:
    """Merge each user's new entries into their document, keeping the newest ``keep``
    (entries are de-duplicated by activity id, so a redelivered batch changes nothing).
    Returns how many entries were new and each user's entries after the merge.

    One batch of users costs one concurrent read of their documents, one insert of the
    users seen for the first time and revision-checked updates of the others in bulk
    (optimistic concurrency). A user another consumer changed in between (an insert
    that collides, an update whose revision no longer matches, found by reading the
    updated documents again) is merged again alone (:func:`append_user_activity`). The
    activity watermark moves to ``now`` before the first user document changes, so it
    is never older than a stored ``updated_at``.
    """
    wanted = {user_id: list(entries) for user_id, entries in by_user.items() if entries}
    merged = Merged()
    if not wanted:
        return merged
    coll = collection(ActiveUser)
    docs = _merge_views(coll, wanted)
    inserts: list[dict[str, Any]] = []
    updates: dict[str, tuple[UpdateOne, set[str]]] = {}  # the update, the ids it adds
    fresh_of: dict[str, int] = {}
    for (user_id, entries), doc in zip(wanted.items(), docs, strict=True):
        merge = _merge(doc, entries, now, keep)
        if merge is None:
            merged.recent[user_id] = list((doc or {}).get("recent") or [])
            continue
        fields, fresh = merge
        fresh_of[user_id] = len(fresh)
        merged.recent[user_id] = fields["recent"]
        if doc is None:
            inserts.append({"_id": user_id, "rev": 1, **fields})
        else:
            rev = doc.get("rev", 0)
            where = {"_id": user_id, "rev": rev}
            adds = {e["i"] for e in fresh} & {e["i"] for e in fields["recent"]}
            updates[user_id] = (UpdateOne(where, {"$set": {**fields, "rev": rev + 1}}), adds)
    if not inserts and not updates:
        return merged
    advance_watermark(now)
    again = [inserts[i]["_id"] for i in insert_missing(coll, inserts)]
    ops = [op for op, _ in updates.values()]
    if ops and bulk_write(coll, ops, ordered=False) < len(ops):
        stored = _merge_views(coll, updates)
        for (user_id, (_, adds)), doc in zip(updates.items(), stored, strict=True):
            if not adds <= {e["i"] for e in (doc or {}).get("recent") or []}:
                again.append(user_id)
    for user_id in again:
        fresh_of[user_id], merged.recent[user_id] = append_user_activity(
            user_id, wanted[user_id], now, keep
        )
    merged.new = sum(fresh_of.values())
    return merged


_MERGE_FIELDS = {"recent": 1, "rev": 1}


def _merge_views(coll: Any, user_ids: Iterable[str]) -> list[dict[str, Any] | None]:
    """What a merge reads of each user's document, in the order of ``user_ids`` (None
    for a user without one): :func:`~herald_common.db.find_in` by ``_id``."""
    ids = list(user_ids)
    found = {d["_id"]: d for d in find_in(coll, "_id", ids, projection=_MERGE_FIELDS)}
    return [found.get(user_id) for user_id in ids]


def _merge(
    doc: Mapping[str, Any] | None, entries: Sequence[dict[str, Any]], now: datetime, keep: int
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The fields of a user document holding ``entries`` too, and the entries it did
    not hold; None when it holds them all already."""
    recent = list((doc or {}).get("recent") or [])
    known = {e["i"] for e in recent}
    fresh = list({e["i"]: e for e in entries if e["i"] not in known}.values())
    if doc is not None and not fresh:
        return None
    merged = sorted(recent + fresh, key=lambda e: (e["t"], e["i"]))[-keep:]
    fields = {
        "recent": merged,
        "last_activity_at": datetime.fromtimestamp(merged[-1]["t"], UTC),
        "updated_at": now,
        "updated_day": utc_day(now),
    }
    return fields, fresh


def append_user_activity(
    user_id: str, entries: Sequence[dict[str, Any]], now: datetime, keep: int
) -> tuple[int, list[dict[str, Any]]]:
    """Merge activity into one user's document (read-merge-write with a revision check:
    two consumers updating the same user retry instead of losing entries); returns how
    many entries were new and the user's entries after the merge. The watermark was
    moved by :func:`record_activity` (call that one)."""
    coll = collection(ActiveUser)
    for _ in range(20):
        doc = coll.find_one({"_id": user_id}, _MERGE_FIELDS)
        merge = _merge(doc, entries, now, keep)
        if merge is None:
            return 0, list((doc or {}).get("recent") or [])
        fields, fresh = merge
        if doc is None:
            if not insert_new(coll, {"_id": user_id, "rev": 1, **fields}):
                continue  # someone created it meanwhile: merge again
            return len(fresh), fields["recent"]
        rev = doc.get("rev", 0)
        result = coll.update_one({"_id": user_id, "rev": rev}, {"$set": {**fields, "rev": rev + 1}})
        if result.matched_count:
            return len(fresh), fields["recent"]
    raise RuntimeError(f"user {user_id}: too many concurrent activity updates")
