"""Digests: one ``digest`` notification per ``(user, slot)`` listing the held items
(synchronous; ``herald-notifications digest`` and the service call it through
``run_db``; slots and items are stored by :mod:`herald_notifications.digest_store`).

A run claims due slots one at a time (``state: open``, ``deliver_at`` at least
:data:`SETTLE` ago, with a lease, the same way the deferred-request sweep does), then:

* the user is gone → the slot is closed ``empty``, nothing is sent;
* the user's quiet hours cover now → ``deliver_at`` moves to their end: the whole
  digest waits, never a part of it;
* items of types the user opted out of since are left out; promotions take one place of
  the daily cap for the whole digest (the cap counts it once); with the cap full they
  are left out;
* nothing left (or no item at all) → closed ``empty``: an empty slot sends nothing;
* otherwise one notification of type ``digest`` whose idempotency key and id derive
  from the slot key: retries, a second runner at the same time, or a crash between
  storing and closing can never make a second digest. Its content is
  ``{"title", "body", "data": {"slot", "items": [{"key", "type", "title", "body",
  "data"}]}}``.

``SETTLE`` lets requests decided just before a slot (their items written a moment
later) land before the slot is read.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from herald_common import replica
from herald_common.clock import utc_day
from herald_common.preferences import Preferences

from herald_notifications import delivery_store, digest_store
from herald_notifications.builders import ms
from herald_notifications.delivery import local_day
from herald_notifications.models import Notification

log = logging.getLogger(__name__)

SETTLE = timedelta(seconds=30)
LEASE = timedelta(seconds=60)
DIGEST_NS = uuid.UUID("0f6c7d1e-4a57-4f7e-9b8e-3f2d5c1a9e77")


@dataclass
class DigestRun:
    """What one run did: digests stored (and found stored by an interrupted run)."""

    created: list[dict[str, Any]] = field(default_factory=list)
    existing: list[dict[str, Any]] = field(default_factory=list)
    slots: int = 0
    empty: int = 0
    moved: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "slots": self.slots,
            "sent": len(self.created) + len(self.existing),
            "empty": self.empty,
            "moved_by_quiet_hours": self.moved,
        }


def digest_key(slot_key: str) -> str:
    return f"digest|{slot_key}"


def _title(items: list[dict[str, Any]]) -> str:
    n = len(items)
    return f"{n} update{'s' if n != 1 else ''} for you"


def build_digest(
    slot: dict[str, Any], items: list[dict[str, Any]], now: datetime, *, source: str
) -> dict[str, Any]:
    """The digest notification document for a slot (pure)."""
    key = digest_key(slot["_id"])
    sent_at = ms(now)
    listed = [
        {
            "key": i["_id"],
            "type": i["type"],
            "title": i.get("title") or "",
            "body": i.get("body") or "",
            "data": i.get("data"),
        }
        for i in items
    ]
    titles = [i["title"] for i in listed if i["title"]]
    doc = Notification(
        id=str(uuid.uuid5(DIGEST_NS, key)),
        user_id=slot["user_id"],
        type="digest",
        content={
            "title": _title(items),
            "body": "; ".join(titles[:5]) + ("; …" if len(titles) > 5 else ""),
            "data": {"slot": slot["slot"].isoformat(), "items": listed},
        },
        sent_at=sent_at,
        requested_at=ms(slot["slot"]),
        read=False,
        source=source,
        idempotency_key=key,
        day=utc_day(sent_at),
    )
    doc.validate()
    raw: dict[str, Any] = doc.to_mongo().to_dict()
    return raw


def _send_slot(slot: dict[str, Any], now: datetime, run: DigestRun, *, source: str) -> None:
    user = replica.get_users([slot["user_id"]], include_deleted=True).get(slot["user_id"])
    if user is None or user.get("deleted"):
        digest_store.close_slot(slot["_id"], "empty", now, reason="no_user")
        run.empty += 1
        return
    preferences = Preferences.model_validate(user.get("preferences") or {})
    ends = preferences.quiet_hours_end(now)
    if ends is not None:
        digest_store.move_slot(slot["_id"], ends)
        run.moved += 1
        return
    items = [i for i in digest_store.slot_items(slot["_id"]) if preferences.wants(i["type"])]
    key = digest_key(slot["_id"])
    cap = preferences.max_promotions_per_day
    if cap is not None and any(i["type"] == "promotion" for i in items):
        if not delivery_store.reserve_promotion(
            slot["user_id"], local_day(preferences, now), key, cap
        ):
            items = [i for i in items if i["type"] != "promotion"]
    if not items:
        digest_store.close_slot(slot["_id"], "empty", now)
        run.empty += 1
        return
    doc = build_digest(slot, items, now, source=source)
    inserted = delivery_store.insert_notifications([doc])
    if inserted:
        run.created.append(inserted[0])
    else:
        stored = delivery_store.stored_for(key)
        if stored is not None:
            run.existing.append(stored)
    digest_store.mark_sent([item["_id"] for item in items])
    digest_store.close_slot(slot["_id"], "sent", now, notification_id=doc["_id"])


def send_due(now: datetime, *, source: str, limit: int = 500) -> DigestRun:
    """Send every digest whose slot has come (see the module docstring)."""
    now = ms(now)
    run = DigestRun()
    while run.slots < limit:
        slot = digest_store.claim_due_slot(now - SETTLE, now, LEASE)
        if slot is None:
            break
        run.slots += 1
        try:
            _send_slot(slot, now, run, source=source)
        except Exception:
            # Left leased: the next run after the lease retries it.
            log.exception("sending a digest failed", extra={"slot": slot["_id"]})
    return run
