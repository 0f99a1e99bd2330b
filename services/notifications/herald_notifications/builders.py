"""What the delivery path stores and publishes, built from requests (pure, no I/O):
notification documents, delivery records and the ``notification.created`` event derived
from a stored notification.

Times are stored with millisecond precision in UTC (:func:`ms`), what MongoDB keeps,
so values compare equal after a round trip (cursors, collapse ordering).
"""

from __future__ import annotations

import copy
import functools
import uuid
from datetime import UTC, datetime
from typing import Any

from herald_common.clock import to_millis, utc_day
from herald_common.events import Envelope, NotificationCreated, NotificationRequested, make_event

from herald_notifications.decisions import Decision
from herald_notifications.models import DeliveryRecord, Notification

CREATED_EVENT_NS = uuid.UUID("5b0f3c52-8f3e-4c55-9d61-2f1a7c9e4b10")


def ms(value: datetime) -> datetime:
    """``value`` in UTC with millisecond precision: what MongoDB stores."""
    return to_millis(value.astimezone(UTC))


def key(*parts: str) -> str:
    """A compound key; length-prefixed so that ("a:b", "c") and ("a", "b:c") never
    collide."""
    return "|".join(f"{len(p)}:{p}" for p in parts)


def _values(
    request: NotificationRequested,
    now: datetime,
    notification_id: str | None,
    replaced_id: str | None,
) -> dict[str, Any]:
    """A new notification's fields (by attribute name) taken from its request."""
    sent_at = ms(now)
    return {
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


def build_notification(
    request: NotificationRequested,
    now: datetime,
    *,
    source: str,
    notification_id: str | None = None,
    replaced_id: str | None = None,
) -> Notification:
    """A new notification (its ``notification.created`` is derived by :func:`created_event`)."""
    doc = Notification(**_values(request, now, notification_id, replaced_id))
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
    values = _values(request, now, notification_id, replaced_id)
    raw: dict[str, Any] = {}
    for name, stored, default, null in _stored_layout():
        value = values[name] if name in values else copy.copy(default)
        if value is not None or null:
            raw[stored] = value
    return raw


def created_event(doc: dict[str, Any], *, source: str) -> Envelope[Any]:
    """``notification.created`` for a stored notification; the same document always
    gives the same event id."""
    return make_event(
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


def history_entry(decision: Decision, now: datetime) -> dict[str, Any]:
    """One decision in a delivery record's ``history``."""
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
        history=[history_entry(decision, now)],
        day=utc_day(now),
    )
    record.validate()
    raw: dict[str, Any] = record.to_mongo().to_dict()
    return raw
