"""Documents of the notifications service and their indexes.

* ``notifications`` — the inbox (:class:`Notification`), an outbox document: marking
  one read stages ``notification.read`` in the same update (``notification.created`` is
  derived from the stored document, see :mod:`herald_notifications.delivery`).
* ``deliveries`` — every suppression and deferral (:class:`DeliveryRecord`), one per
  idempotency key; a deferred record carries the request until the sweep releases it.
* ``collapse_versions`` — one document per request of a ``(user, collapse_key)`` group
  (insert-only); the newest decides which notification of the group stays visible.
* ``promotion_days`` — per ``(user, local day)`` the idempotency keys of promotions
  delivered that day; reserving a place is one atomic update, so the daily cap holds
  with several consumer replicas.

* ``digest_items`` / ``digest_slots`` — requests held for a digest and the
  ``(user, slot)`` digests they wait for (:mod:`herald_notifications.digest_store`).
* ``retention`` — per purged collection, the last UTC day purged; also the last UTC
  hour the snooze wake-up sweep has finished (``_id: "snooze"``).

Indexes are created explicitly by :func:`ensure_indexes`. Every query the service
issues has an equality on the leading field of one of them (the local
MongoDB-compatible server answers only those from an index; see dev/README.md).
FerretDB lacks TTL indexes, so retention works by ``day`` (the UTC date a document was
written or last decided): the sweep deletes whole days, each one an indexed equality.
"""

from __future__ import annotations

from herald_common.db import collection, named
from herald_common.outbox import OutboxDocument
from herald_common.preferences import NOTIFICATION_TYPES
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    DynamicField,
    ListField,
    StringField,
)
from pymongo import ASCENDING, DESCENDING

OUTCOMES = ("suppressed", "deferred", "released")


class Notification(OutboxDocument):
    """One notification in a user's inbox.

    ``replaced`` marks an unread notification superseded by a newer one with the same
    collapse key: it is hidden from every API read and purged with the rest.
    ``deleted`` (by its owner) hides it the same way; the document stays until the
    retention sweep so that the ``notification.inbox_changed`` staged with the deletion
    is relayed. ``archived`` and ``snoozed`` take it out of the default list and the
    counts (:func:`herald_notifications.inbox.inbox_filter`).
    """

    id = StringField(primary_key=True)
    user_id = StringField(required=True)
    type = StringField(required=True, choices=(*NOTIFICATION_TYPES, "digest"))
    content = DynamicField(required=True)  # text or JSON object
    sent_at = DateTimeField(required=True)
    requested_at = DateTimeField(required=True)
    read = BooleanField(default=False)
    read_at = DateTimeField(null=True)
    # Inbox state (absent on documents stored before it existed: read as false).
    seen = BooleanField(default=False)
    seen_at = DateTimeField(null=True)
    archived = BooleanField(default=False)
    archived_at = DateTimeField(null=True)
    snoozed = BooleanField(default=False)
    snoozed_until = DateTimeField(null=True)
    snooze_hour = StringField(null=True)  # UTC hour of snoozed_until: the wake-up sweep
    deleted = BooleanField(default=False)
    deleted_at = DateTimeField(null=True)
    collapse_key = StringField(null=True)
    replaced = BooleanField(default=False)
    replaced_by = StringField(null=True)  # idempotency key of the newer one
    replaces = StringField(null=True)  # id of the older one it superseded when created
    source = StringField(required=True)
    idempotency_key = StringField(required=True)
    day = StringField(required=True)  # UTC date of sent_at: retention

    meta = {"collection": "notifications", "auto_create_index": False, "indexes": []}


class DeliveryRecord(Document):
    """A request that was not delivered right away: suppressed, deferred, or deferred
    and later released. ``history`` lists every decision taken on it."""

    idempotency_key = StringField(required=True)
    user_id = StringField(required=True)
    type = StringField(required=True, choices=NOTIFICATION_TYPES)
    source = StringField(required=True)
    collapse_key = StringField(null=True)
    outcome = StringField(required=True, choices=OUTCOMES)
    reason = StringField(required=True)
    at = DateTimeField(required=True)
    first_at = DateTimeField(required=True)
    deliver_at = DateTimeField(null=True)
    lease_until = DateTimeField(null=True)
    notification_id = StringField(null=True)
    request = DictField()  # the NotificationRequested payload, JSON mode
    history = ListField(DictField(), default=list)
    day = StringField(required=True)  # UTC date of ``at``: retention

    meta = {"collection": "deliveries", "auto_create_index": False, "indexes": []}


VERSIONS = "collapse_versions"
PROMOTION_DAYS = "promotion_days"
RETENTION = "retention"
DIGEST_ITEMS = "digest_items"
DIGEST_SLOTS = "digest_slots"


def ensure_indexes(*, use_ttl_index: bool = False, retention_days: int = 90) -> None:
    """Create every index the query paths need (idempotent)."""
    notes = collection(Notification)
    notes.create_index([("idempotency_key", ASCENDING)], unique=True)
    # Inbox pages (all / unread only), newest first, keyset on (sent_at, _id).
    notes.create_index(
        [
            ("user_id", ASCENDING),
            ("replaced", ASCENDING),
            ("read", ASCENDING),
            ("sent_at", DESCENDING),
            ("_id", DESCENDING),
        ]
    )
    notes.create_index(
        [
            ("user_id", ASCENDING),
            ("replaced", ASCENDING),
            ("sent_at", DESCENDING),
            ("_id", DESCENDING),
        ]
    )
    # Collapse: the unread notifications of one (user, collapse_key).
    notes.create_index([("user_id", ASCENDING), ("collapse_key", ASCENDING), ("read", ASCENDING)])
    # Retention sweep: whole days.
    notes.create_index([("day", ASCENDING)])
    # Snooze wake-up sweep: one UTC hour of snoozed_until at a time.
    notes.create_index([("snooze_hour", ASCENDING), ("snoozed_until", ASCENDING)])
    if use_ttl_index:
        notes.create_index(
            [("sent_at", ASCENDING)],
            expireAfterSeconds=retention_days * 86_400,
            name="sent_at_ttl",
        )

    records = collection(DeliveryRecord)
    records.create_index([("idempotency_key", ASCENDING)], unique=True)
    records.create_index([("outcome", ASCENDING), ("deliver_at", ASCENDING)])
    records.create_index([("user_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)])
    records.create_index([("day", ASCENDING)])

    versions = named(VERSIONS)
    versions.create_index(
        [("group", ASCENDING), ("requested_at", DESCENDING), ("idempotency_key", DESCENDING)]
    )
    versions.create_index([("user_id", ASCENDING)])
    versions.create_index([("day", ASCENDING)])
    named(PROMOTION_DAYS).create_index([("day", ASCENDING)])
    # Digests (herald_notifications.digest_store): a slot's items; due slots; retention.
    items = named(DIGEST_ITEMS)
    items.create_index([("slot_key", ASCENDING), ("requested_at", ASCENDING)])
    items.create_index([("day", ASCENDING)])
    slots = named(DIGEST_SLOTS)
    slots.create_index([("state", ASCENDING), ("deliver_at", ASCENDING)])
    slots.create_index([("day", ASCENDING)])
