"""Campaign storage: the only code touching the definition, run and batch collections.

* ``campaign_definitions`` — the latest definition of each campaign seen in a file or a
  ``campaign.fired`` event (to fire it by name); an older one never replaces a newer.
* ``campaign_runs`` — one record per ``(campaign, run_id)``: status, counters, cursor,
  and the lease of the worker fanning it out (:class:`herald_common.leases.Lease`).
* ``campaign_batches`` — insert-only, one per fanned-out batch; a run's counters are
  sums over them, so a batch two workers raced on counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from herald_common.db import collection, conditional_upsert, insert_new
from herald_common.events import CampaignFired
from herald_common.leases import Lease
from herald_common.resources.models import CampaignSpec

from herald_scheduler.models import CampaignBatch, CampaignDefinition, CampaignRun


def run_key(campaign: str, run_id: str) -> str:
    return f"{campaign}:{run_id}"


# --- definitions -------------------------------------------------------------------------


def store_definition(
    *,
    name: str,
    namespace: str,
    type_: str,
    audience: dict[str, Any],
    template: dict[str, Any],
    origin: str,
    at: datetime,
    schedule: str | None = None,
    time_zone: str | None = None,
    run_at: datetime | None = None,
    suspend: bool | None = None,
    dry_run: bool | None = None,
) -> None:
    """Remember the latest definition of campaign ``name`` (for firing it by name).

    A definition older than the stored one (an old event redelivered) is ignored.
    """
    fields: dict[str, Any] = {
        "namespace": namespace,
        "type": type_,
        "audience": audience,
        "template": template,
        "origin": origin,
        "updated_at": at,
    }
    # Events carry no schedule: keep what a file said about it.
    for key, value in (
        ("schedule", schedule),
        ("time_zone", time_zone),
        ("run_at", run_at),
        ("suspend", suspend),
        ("dry_run", dry_run),
    ):
        if value is not None:
            fields[key] = value
    conditional_upsert(
        collection(CampaignDefinition), {"_id": name, "updated_at": {"$lte": at}}, {"$set": fields}
    )


def store_definition_from_event(fired: CampaignFired, event_id: str) -> None:
    store_definition(
        name=fired.campaign,
        namespace=fired.namespace,
        type_=fired.type,
        audience=fired.audience.model_dump(),
        template=fired.template.model_dump(),
        origin=f"event:{event_id}",
        at=fired.fired_at,
    )


def get_definition(name: str) -> CampaignDefinition | None:
    return CampaignDefinition.objects(id=name).first()


def all_definitions() -> list[CampaignDefinition]:
    """Every known definition, by name (an admin listing)."""
    return list(CampaignDefinition.objects.order_by("id"))


def definition_spec(definition: CampaignDefinition) -> CampaignSpec:
    """The campaign spec a stored definition describes, to fire it by name with
    :func:`herald_common.resources.firing.fire_campaign` (the one spec → payload
    mapping)."""
    run_at = definition.run_at
    if run_at is not None and run_at.tzinfo is None:
        run_at = run_at.replace(tzinfo=UTC)  # stored as naive UTC
    audience = definition.audience or {}
    return CampaignSpec.model_validate(
        {
            "type": definition.type,
            "schedule": definition.schedule,
            "timeZone": definition.time_zone or "UTC",
            "runAt": run_at,
            "audience": {
                "categories": list(audience.get("categories") or []),
                "userIds": list(audience.get("user_ids") or []),
            },
            "template": dict(definition.template or {}),
            "suspend": bool(definition.suspend),
            "dryRun": bool(definition.dry_run),
        }
    )


# --- runs ----------------------------------------------------------------------------------


def get_run(key: str) -> CampaignRun:
    """The run ``key`` (it exists: claimed or recorded before)."""
    return CampaignRun.objects.get(id=key)


def find_run(key: str) -> CampaignRun | None:
    return CampaignRun.objects(id=key).first()


def record_pending_run(fired: CampaignFired, now: datetime) -> CampaignRun:
    """The run as it stands right after ``campaign.fired`` was published (created if
    the consumer has not started it yet)."""
    key = run_key(fired.campaign, fired.run_id)
    collection(CampaignRun).update_one(
        {"_id": key},
        {"$setOnInsert": _new_run_fields(fired, now, Lease.released())},
        upsert=True,
    )
    return CampaignRun.objects.get(id=key)


def recent_runs(first: int = 50) -> list[CampaignRun]:
    return list(CampaignRun.objects.order_by("-started_at", "-id").limit(first))


def _new_run_fields(fired: CampaignFired, now: datetime, lease: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": fired.run_id,
        "campaign": fired.campaign,
        "namespace": fired.namespace,
        "type": fired.type,
        "dry_run": fired.dry_run,
        "status": "running",
        "audience_size": 0,
        "sent": 0,
        "suppressed": 0,
        "suppressed_reasons": {"opted_out": 0, "not_in_segment": 0},
        "failed": 0,
        "samples": [],
        "error": None,
        "fired_at": fired.fired_at,
        "started_at": now,
        "finished_at": None,
        "cursor": None,
        **lease,
    }


def claim(fired: CampaignFired, lease: Lease, now: datetime) -> dict[str, Any] | None:
    """The run document if ``lease.owner`` may work on it now, else None.

    Finished runs are returned as they are (nothing to do). Creating the run is a unique
    insert; an existing running run is taken over when its lease is free, expired or
    already ours (one atomic update).
    """
    coll = collection(CampaignRun)
    key = run_key(fired.campaign, fired.run_id)
    if insert_new(coll, {"_id": key, **_new_run_fields(fired, now, lease.held(now))}):
        return coll.find_one({"_id": key})
    # The run exists (a redelivery or a second firing): take it over if free.
    if lease.take(coll, key, now, where={"status": "running"}):
        return coll.find_one({"_id": key})
    doc = coll.find_one({"_id": key})
    if doc is None or doc["status"] != "running":
        return doc
    return None


def save_progress(key: str, totals: Totals, lease: Lease, now: datetime) -> None:
    """Store a running run's counters and renew its lease."""
    collection(CampaignRun).update_one(
        {"_id": key, "status": "running"}, {"$set": {**totals.fields(), **lease.held(now)}}
    )


def finish_run(key: str, totals: Totals, now: datetime) -> None:
    collection(CampaignRun).update_one(
        {"_id": key, "status": "running"},
        {
            "$set": {
                **totals.fields(),
                "status": "succeeded",
                "finished_at": now,
                **Lease.released(),
            }
        },
    )


def fail_run(key: str, error: str, now: datetime) -> None:
    collection(CampaignRun).update_one(
        {"_id": key, "status": "running"},
        {"$set": {"status": "failed", "error": error, "finished_at": now, **Lease.released()}},
    )


# --- batches ---------------------------------------------------------------------------------


@dataclass
class Totals:
    """A run's cursor and counters, summed over its batch records."""

    cursor: str | None = None
    audience_size: int = 0
    sent: int = 0
    opted_out: int = 0
    not_in_segment: int = 0
    failed: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, batch: dict[str, Any], sample_limit: int) -> None:
        if self.cursor is None or batch["last_position"] > self.cursor:
            self.cursor = batch["last_position"]
        self.audience_size += batch["audience_size"]
        self.sent += batch["sent"]
        self.opted_out += batch["opted_out"]
        self.not_in_segment += batch["not_in_segment"]
        self.failed += batch["failed"]
        room = sample_limit - len(self.samples)
        if room > 0:
            self.samples.extend(batch.get("samples", [])[:room])

    def fields(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "audience_size": self.audience_size,
            "sent": self.sent,
            "suppressed": self.opted_out + self.not_in_segment,
            "suppressed_reasons": {
                "opted_out": self.opted_out,
                "not_in_segment": self.not_in_segment,
            },
            "failed": self.failed,
            "samples": self.samples,
        }


def progress(key: str, sample_limit: int) -> Totals:
    """A run's cursor and counters, summed over its batch records (in user order)."""
    totals = Totals()
    for batch in collection(CampaignBatch).find({"run": key}).sort("last_position", 1):
        totals.add(batch, sample_limit)
    return totals


def record_batch(batch: dict[str, Any]) -> bool:
    """Insert a batch record; False when another worker recorded the same batch."""
    return insert_new(collection(CampaignBatch), batch)
