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

from datetime import UTC, datetime
from typing import Any

from herald_common.db import insert_all_new
from herald_common.events import NotificationRequested
from pymongo.errors import DuplicateKeyError

from herald_notifications.models import DIGEST_ITEMS, DIGEST_SLOTS, collection

ITEMS, SLOTS = DIGEST_ITEMS, DIGEST_SLOTS


def _ms(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def slot_key(user_id: str, slot: datetime) -> str:
    """The ``(user, slot)`` key; length-prefixed so no user id can forge another's."""
    stamp = _ms(slot).strftime("%Y-%m-%dT%H:%MZ")
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
    now = _ms(now)
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
                "requested_at": _ms(request.requested_at),
                "held_at": now,
                "sent": False,
                "day": now.date().isoformat(),
            }
        )
        slots[key] = {"user_id": request.user_id, "slot": _ms(slot)}
    inserted = insert_all_new(collection(ITEMS), docs)
    coll = collection(SLOTS)
    for key, opening in slots.items():
        try:
            _open_slot(coll, key, opening)
        except DuplicateKeyError:
            pass  # another consumer opened it at the same moment
    return inserted


def _open_slot(coll: Any, key: str, slot: dict[str, Any]) -> None:
    coll.update_one(
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
        upsert=True,
    )


def is_held(idempotency_key: str) -> bool:
    """Whether a request was held for a digest already (redelivery lookups)."""
    return collection(ITEMS).find_one({"_id": idempotency_key}, {"_id": 1}) is not None
