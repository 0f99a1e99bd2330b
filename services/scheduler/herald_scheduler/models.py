"""Documents of the scheduler's own database (``herald_scheduler``).

* ``order_transitions`` / ``orders`` — mock orders. Every status change is an
  :class:`OrderTransition` inserted under a unique id (order, sequence) together with
  its two staged events (``order.status_changed``, ``notification.requested``): one
  atomic insert. :class:`Order` is the current state derived from them.

Why inserts: on FerretDB 1.x (the local and test server) a conditional update is not an
atomic compare-and-set and two concurrent updates of one document can lose one of them;
a unique insert is the one write that is atomic everywhere. Documents that several
writers may touch at once are therefore written insert-only (transitions, interest
records, campaign batch records); the documents derived from them are rewritten with
idempotent ``$set`` values.
* ``campaign_runs`` / ``campaign_batches`` — one :class:`CampaignRun` per campaign
  firing (``run_id``) and one :class:`CampaignBatch` per published batch of it, so a
  crashed fan-out resumes after its last complete batch instead of starting over.
* ``campaign_definitions`` — the latest definition seen of every campaign (from files or
  ``campaign.fired``), so an admin can fire a campaign by name.
* ``interest_records`` and ``known_products`` — built from ``activity.recorded``:
  category interest per user and message (segments, ``{favorite_category}``) and the
  products seen.
* ``user_replica`` / ``processed_events`` — owned by ``herald_common`` (replica, idempotency).
"""

from __future__ import annotations

from typing import Any

from herald_common.db import collection, run_once
from herald_common.outbox import OutboxDocument
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    FloatField,
    IntField,
    ListField,
    StringField,
)

ORDER_STATUSES = ("placed", "paid", "shipped", "out_for_delivery", "delivered", "cancelled")
TERMINAL_STATUSES = ("delivered", "cancelled")
RUN_STATUSES = ("running", "succeeded", "failed")


class OrderTransition(OutboxDocument):
    """One status change of an order: the unit of atomicity and the outbox.

    Its id is ``<order id>:<sequence>``, so of two sweeps trying the same change only
    one insert succeeds; the two events of the change are staged in it by that insert.
    Nothing but the outbox relay writes to it afterwards.
    """

    id = StringField(primary_key=True)
    order_id = StringField(required=True)
    user_id = StringField(required=True)
    sequence = IntField(required=True, min_value=1)
    status = StringField(required=True, choices=ORDER_STATUSES)
    previous_status = StringField(null=True, choices=ORDER_STATUSES)
    items = ListField(DictField(), default=list)
    total = FloatField(required=True, min_value=0)
    at = DateTimeField(required=True)
    # When the order may move on after this change (None for a terminal status).
    next_transition_at = DateTimeField(null=True)
    origin = StringField()

    meta = {
        "collection": "order_transitions",
        "indexes": [{"fields": ["order_id", "sequence"]}],
        "auto_create_index": False,
    }


class Order(Document):
    """A mock order of one user and where it is in its lifecycle: the projection of its
    :class:`OrderTransition` records (which carry the events)."""

    id = StringField(primary_key=True)
    user_id = StringField(required=True)
    # [{product_id, name, quantity, price}]
    items = ListField(DictField(), default=list)
    total = FloatField(required=True, min_value=0)
    status = StringField(required=True, choices=ORDER_STATUSES)
    # [{status, sequence, at}] — every status the order went through, in order.
    history = ListField(DictField(), default=list)
    # Counts status changes (1 = placed).
    sequence = IntField(required=True, min_value=1)
    created_at = DateTimeField(required=True)
    updated_at = DateTimeField(required=True)
    # When a sweep may advance it; None once the order is delivered or cancelled.
    next_transition_at = DateTimeField(null=True)
    # True until it is delivered or cancelled: the sweep's indexed equality (the few
    # orders in progress, not every order ever placed).
    in_progress = BooleanField(default=True)
    # What created it: "activity:<event id>" or "seed:<seed>".
    origin = StringField()

    meta = {
        "collection": "orders",
        "indexes": [
            {"fields": ["user_id", "-created_at"]},
            {"fields": ["in_progress", "next_transition_at"]},
        ],
        "auto_create_index": False,
    }

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "items": [dict(i) for i in self.items],
            "total": self.total,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class CampaignRun(Document):
    """One firing of a campaign: audience, counters, samples and the fan-out cursor."""

    id = StringField(primary_key=True)  # "<campaign>:<run_id>"
    run_id = StringField(required=True)
    campaign = StringField(required=True)
    namespace = StringField(default="default")
    type = StringField(required=True)
    dry_run = BooleanField(default=False)
    status = StringField(required=True, choices=RUN_STATUSES, default="running")
    audience_size = IntField(default=0)
    sent = IntField(default=0)
    suppressed = IntField(default=0)
    # {"opted_out": n, "not_in_segment": n}
    suppressed_reasons = DictField(default=dict)
    failed = IntField(default=0)
    samples = ListField(DictField(), default=list)
    error = StringField(null=True)
    fired_at = DateTimeField(null=True)
    started_at = DateTimeField(required=True)
    finished_at = DateTimeField(null=True)
    # Fan-out progress (derived from its CampaignBatch records): the last user id whose
    # batch is fully published.
    cursor = StringField(null=True)
    # Best-effort claim: the event (message) id of the delivery working on the run, and
    # until when. It keeps two deliveries from doing the same work at the same time;
    # correctness does not rest on it (batch records and idempotency keys do).
    lease_owner = StringField(null=True)
    lease_until = DateTimeField(null=True)

    meta = {
        "collection": "campaign_runs",
        "indexes": [{"fields": ["-started_at"]}, {"fields": ["campaign", "-started_at"]}],
        "auto_create_index": False,
    }

    def to_api(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "campaign": self.campaign,
            "type": self.type,
            "dry_run": self.dry_run,
            "status": self.status,
            "audience_size": self.audience_size,
            "sent": self.sent,
            "suppressed": self.suppressed,
            "suppressed_reasons": dict(self.suppressed_reasons or {}),
            "failed": self.failed,
            "samples": [dict(s) for s in self.samples],
            "error": self.error,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class CampaignBatch(Document):
    """One fully published batch of a campaign run (insert-only).

    Its id is ``<run key>:<position of its last user>`` (see
    :func:`herald_common.replica.position`); a run's progress (cursor) and counters are
    derived from its batches, so two workers that raced on the same batch count it once.
    """

    id = StringField(primary_key=True)
    run = StringField(required=True)  # CampaignRun id
    after = StringField(null=True)  # the cursor the batch started after
    last_position = StringField(required=True)
    audience_size = IntField(default=0)
    sent = IntField(default=0)
    opted_out = IntField(default=0)
    not_in_segment = IntField(default=0)
    failed = IntField(default=0)
    samples = ListField(DictField(), default=list)
    at = DateTimeField(required=True)

    meta = {
        "collection": "campaign_batches",
        "indexes": [{"fields": ["run", "last_position"]}],
        "auto_create_index": False,
    }


class CampaignDefinition(Document):
    """The latest known definition of a campaign, keyed by its name."""

    id = StringField(primary_key=True)  # metadata.name
    namespace = StringField(default="default")
    type = StringField(required=True)
    audience = DictField(default=dict)  # {categories, user_ids}
    template = DictField(required=True)  # {title, body, data}
    schedule = StringField(null=True)
    time_zone = StringField(default="UTC")
    run_at = DateTimeField(null=True)
    suspend = BooleanField(default=False)
    dry_run = BooleanField(default=False)
    # "file:<path>" or "event:<event id>"
    origin = StringField()
    updated_at = DateTimeField(required=True)

    meta = {"collection": "campaign_definitions", "auto_create_index": False}

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.id,
            "namespace": self.namespace,
            "type": self.type,
            "audience": dict(self.audience or {}),
            "template": dict(self.template or {}),
            "schedule": self.schedule,
            "time_zone": self.time_zone,
            "run_at": self.run_at.isoformat() if self.run_at else None,
            "suspend": self.suspend,
            "dry_run": self.dry_run,
            "origin": self.origin,
            "updated_at": self.updated_at.isoformat(),
        }


def ensure_indexes() -> None:
    """Create the indexes (FerretDB-compatible: no TTL, no partial indexes)."""
    from herald_scheduler import interests

    for cls in (OrderTransition, Order, CampaignRun, CampaignDefinition, CampaignBatch):
        cls.ensure_indexes()
    interests.ensure_indexes()
    run_once("orders.in_progress", _backfill_in_progress)


def _backfill_in_progress() -> None:
    """Orders stored before ``in_progress`` existed get it from their next transition."""
    coll = collection(Order)
    for doc in coll.find({"in_progress": {"$exists": False}}, {"next_transition_at": 1}):
        flag = doc.get("next_transition_at") is not None
        coll.update_one({"_id": doc["_id"]}, {"$set": {"in_progress": flag}})
