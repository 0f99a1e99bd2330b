"""Documents of the scheduler's own database (``herald_scheduler``).

* ``orders`` — mock orders; an :class:`Order` is an outbox document, so a status change
  and its two events (``order.status_changed``, ``notification.requested``) are one
  atomic single-document write.
* ``campaign_runs`` — one :class:`CampaignRun` per campaign firing (``run_id``), with its
  fan-out cursor and counters, so a crashed fan-out resumes instead of starting over.
* ``campaign_definitions`` — the latest definition seen of every campaign (from files or
  ``campaign.fired``), so an admin can fire a campaign by name.
* ``user_interests`` and ``known_products`` — built from ``activity.recorded``: category
  interest counts per user (segments, ``{favorite_category}``) and the products seen.
* ``user_replica`` / ``processed_events`` — owned by ``herald_common`` (replica, idempotency).
"""

from __future__ import annotations

from typing import Any

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


class Order(OutboxDocument):
    """A mock order of one user and where it is in its lifecycle."""

    id = StringField(primary_key=True)
    user_id = StringField(required=True)
    # [{product_id, name, quantity, price}]
    items = ListField(DictField(), default=list)
    total = FloatField(required=True, min_value=0)
    status = StringField(required=True, choices=ORDER_STATUSES)
    # [{status, sequence, at}] — every status the order went through, in order.
    history = ListField(DictField(), default=list)
    # Counts status changes (1 = placed); part of every conditional update's filter.
    sequence = IntField(required=True, min_value=1)
    created_at = DateTimeField(required=True)
    updated_at = DateTimeField(required=True)
    # When a sweep may advance it; None once the order is delivered or cancelled.
    next_transition_at = DateTimeField(null=True)
    # What created it: "activity:<event id>" or "seed:<seed>".
    origin = StringField()

    meta = {
        "collection": "orders",
        "indexes": [
            {"fields": ["user_id", "-created_at"]},
            {"fields": ["next_transition_at"]},
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
    # Fan-out progress: the last user id whose batch is fully published and counted.
    cursor = StringField(null=True)
    # The event (message) id of the delivery working on the run, and until when.
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
    for cls in (Order, CampaignRun, CampaignDefinition):
        cls.ensure_indexes()
