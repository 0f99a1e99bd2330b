"""Held requests waiting for their digest (synchronous storage code).

* ``digest_items`` — one document per held request, ``_id`` = its idempotency key, so a
  redelivered or re-sent request never makes a second entry. Written (bulk, duplicates
  ignored) before the request is acknowledged; kept after the digest went out (marked
  ``sent``) so a late redelivery still finds it, and removed by the retention sweep.
* ``digest_slots`` — one document per ``(user, slot)``, ``_id`` = the slot key; ``state``
  ``open`` until the sweep (:mod:`herald_notifications.digest_sweep`) sent it (``sent``)
  or found nothing to send (``empty``). ``deliver_at`` starts at the slot and moves when
  quiet hours push the whole digest back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from herald_common.db import conditional_upsert, insert_all_new, named
from herald_common.events import NotificationRequested
from pymongo import ASCENDING, ReturnDocument

from herald_notifications.builders import ms
from herald_notifications.models import DIGEST_ITEMS, DIGEST_SLOTS

ITEMS, SLOTS = DIGEST_ITEMS, DIGEST_SLOTS


def slot_key(user_id: str, slot: datetime) -> str:
    """The ``(user, slot)`` key; length-prefixed so no user id can forge another's."""
    stamp = ms(slot).strftime("%Y-%m-%dT%H:%MZ")
    return f"{len(user_id)}:{user_id}|{stamp}"


def _content_parts(content: Any) -> tuple[str, str, Any]:
    if isinstance(content, dict):
        return str(content.get("title") or ""), str(content.get("body") or ""), content.get("data")
    return "", str(content), None


def hold(held: list[tuple[NotificationRequested, datetime]], now: datetime) -> int:
    """Store held requests with their slots; returns how many were new. Redeliveries are
    no-ops (the unique ``_id``)."""
    if not held:
        return 0
    now = ms(now)
    docs = []
    slots: dict[str, dict[str, Any]] = {}
    for request, slot in held:
        key = slot_key(request.user_id, slot)
        title, body, data = _content_parts(request.content)
        docs.append(
            {
                "_id": request.idempotency_key,
                "user_id": request.user_id,
                "slot_key": key,
                "type": request.type,
                "title": title,
                "body": body,
                "data": data,
                "content": request.content,
                "source": request.source,
                "requested_at": ms(request.requested_at),
                "held_at": now,
                "sent": False,
                "day": now.date().isoformat(),
            }
        )
        slots[key] = {"user_id": request.user_id, "slot": ms(slot)}
    inserted = insert_all_new(named(ITEMS), docs)
    for key, opening in slots.items():
        _open_slot(key, opening)
    return inserted


def _open_slot(key: str, slot: dict[str, Any]) -> None:
    """Open the slot unless it exists (a consumer opening it at the same moment wins
    the same way)."""
    conditional_upsert(
        named(SLOTS),
        {"_id": key},
        {
            "$setOnInsert": {
                "user_id": slot["user_id"],
                "slot": slot["slot"],
                "deliver_at": slot["slot"],
                "state": "open",
                "lease_until": None,
                "day": slot["slot"].date().isoformat(),
            }
        },
    )


def is_held(idempotency_key: str) -> bool:
    """Whether a request was held for a digest already (redelivery lookups)."""
    return named(ITEMS).find_one({"_id": idempotency_key}, {"_id": 1}) is not None


# --- the digest sweep (herald_notifications.digest_sweep) --------------------------------


def claim_due_slot(due_before: datetime, now: datetime, lease: timedelta) -> dict[str, Any] | None:
    """Lease the open slot due first (``deliver_at <= due_before``, not leased by a
    running sweep) with one atomic update; None when none is due."""
    doc: dict[str, Any] | None = named(SLOTS).find_one_and_update(
        {
            "state": "open",
            "deliver_at": {"$lte": due_before},
            "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
        },
        {"$set": {"lease_until": now + lease}},
        sort=[("deliver_at", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    return doc


def close_slot(slot_id: str, state: str, now: datetime, **extra: Any) -> None:
    named(SLOTS).update_one(
        {"_id": slot_id},
        {"$set": {"state": state, "closed_at": ms(now), "lease_until": None, **extra}},
    )


def move_slot(slot_id: str, deliver_at: datetime) -> None:
    """The whole digest waits until ``deliver_at`` (the end of quiet hours)."""
    named(SLOTS).update_one(
        {"_id": slot_id}, {"$set": {"deliver_at": ms(deliver_at), "lease_until": None}}
    )


def slot_items(slot_id: str) -> list[dict[str, Any]]:
    """The items held for a slot, in request order."""
    return list(
        named(ITEMS)
        .find({"slot_key": slot_id})
        .sort([("requested_at", ASCENDING), ("_id", ASCENDING)])
    )


def mark_sent(item_ids: list[str]) -> None:
    for item_id in item_ids:
        named(ITEMS).update_one({"_id": item_id}, {"$set": {"sent": True}})
