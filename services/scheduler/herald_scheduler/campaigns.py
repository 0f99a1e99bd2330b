"""Campaign fan-out: from one ``campaign.fired`` to one notification request per user.

The audience is streamed from the local user replica (``iter_users``, bucket by bucket)
``fanout_batch_size`` users at a time, so memory stays bounded whatever its size. For
each batch:

1. keep the users opted into the campaign's type (``Preferences.wants``) and inside the
   segment (explicit user ids; categories of interest learned from activity); the rest
   are counted as suppressed, by reason;
2. render the template per user (``{name}``, ``{first_name}``, ``{favorite_category}``,
   ``{product_name}``);
3. publish a ``notification.requested`` per user and wait for every publisher confirm
   (idempotency key ``campaign:<campaign>:<run_id>:<user>``);
4. only then record the batch (an insert-only :class:`CampaignBatch` keyed by the run
   and the batch's last user id) and update the run's cursor and counters.

A crash mid-batch therefore re-publishes at most that batch, with the same idempotency
keys, which the notifications service de-duplicates: nothing is lost and nothing is sent
twice. A run that finished is never fanned out again, so firing the same ``run_id``
again sends nothing. Counters are sums over the batch records, so a batch that two
workers raced on counts once. A best-effort lease (the delivering event's id, renewed
every batch) keeps a second delivery of the same run from doing the same work at the
same time; a redelivery of the same event takes over at once.

A dry run walks the same audience, renders up to ``dry_run_samples`` samples and
publishes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.db import run_db
from herald_common.events import CampaignFired, Envelope, NotificationRequested, make_event
from herald_common.messaging import Broker
from herald_common.preferences import Preferences
from herald_common.replica import iter_users, position
from herald_common.resources.models import CampaignSpec
from pymongo.errors import DuplicateKeyError

from herald_scheduler.config import SchedulerSettings
from herald_scheduler.interests import Interest, get_interests
from herald_scheduler.models import CampaignBatch, CampaignDefinition, CampaignRun
from herald_scheduler.templates import UserContext, check_template, render

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_key(campaign: str, run_id: str) -> str:
    return f"{campaign}:{run_id}"


def idempotency_key(campaign: str, run_id: str, user_id: str) -> str:
    return f"campaign:{campaign}:{run_id}:{user_id}"


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
    coll = CampaignDefinition._get_collection()
    try:
        coll.update_one({"_id": name, "updated_at": {"$lte": at}}, {"$set": fields}, upsert=True)
    except DuplicateKeyError:
        pass  # a newer definition is stored


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


def record_pending_run(fired: CampaignFired, now: datetime) -> CampaignRun:
    """The run as it stands right after ``campaign.fired`` was published (created if
    the consumer has not started it yet)."""
    key = run_key(fired.campaign, fired.run_id)
    CampaignRun._get_collection().update_one(
        {"_id": key},
        {"$setOnInsert": _new_run_fields(fired, now, owner=None, lease_until=None)},
        upsert=True,
    )
    return CampaignRun.objects.get(id=key)


def recent_runs(first: int = 50) -> list[CampaignRun]:
    return list(CampaignRun.objects.order_by("-started_at", "-id").limit(first))


def _new_run_fields(
    fired: CampaignFired, now: datetime, owner: str | None, lease_until: datetime | None
) -> dict[str, Any]:
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
        "lease_owner": owner,
        "lease_until": lease_until,
    }


def _claim(
    fired: CampaignFired, owner: str, now: datetime, lease: timedelta
) -> dict[str, Any] | None:
    """The run document if ``owner`` may work on it now, else None.

    Finished runs are returned as they are (nothing to do). Creating the run is a unique
    insert; taking over an existing one is best effort (see the module docstring).
    """
    coll = CampaignRun._get_collection()
    key = run_key(fired.campaign, fired.run_id)
    try:
        coll.insert_one({"_id": key, **_new_run_fields(fired, now, owner, now + lease)})
    except DuplicateKeyError:
        pass  # the run exists (a redelivery or a second firing): take it over below
    else:
        return coll.find_one({"_id": key})
    doc = coll.find_one({"_id": key})
    if doc is None or doc["status"] != "running":
        return doc
    holder, until = doc.get("lease_owner"), doc.get("lease_until")
    if holder not in (None, owner) and until is not None and until > now:
        return None
    coll.update_one({"_id": key}, {"$set": {"lease_owner": owner, "lease_until": now + lease}})
    doc["lease_owner"] = owner
    return doc


@dataclass
class _Totals:
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


def _progress(key: str, sample_limit: int) -> _Totals:
    """A run's cursor and counters, summed over its batch records (in user order)."""
    totals = _Totals()
    for batch in CampaignBatch._get_collection().find({"run": key}).sort("last_position", 1):
        totals.add(batch, sample_limit)
    return totals


def _record_batch(batch: dict[str, Any]) -> bool:
    """Insert a batch record; False when another worker recorded the same batch."""
    try:
        CampaignBatch._get_collection().insert_one(batch)
    except DuplicateKeyError:
        return False
    return True


def _fail_run(key: str, error: str, now: datetime) -> None:
    CampaignRun._get_collection().update_one(
        {"_id": key, "status": "running"},
        {"$set": {"status": "failed", "error": error, "finished_at": now, "lease_owner": None}},
    )


# --- fan-out ---------------------------------------------------------------------------------


@dataclass
class _BatchOutcome:
    audience: int = 0
    opted_out: int = 0
    not_in_segment: int = 0
    failed: int = 0
    events: list[Envelope[Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


def _audience_ids(fired: CampaignFired) -> set[str] | None:
    """The explicit user ids of the audience's segment, if it names any."""
    return set(fired.audience.user_ids) if fired.audience.user_ids else None


def _evaluate_batch(
    fired: CampaignFired,
    users: list[dict[str, Any]],
    *,
    needs_interests: bool,
    sample_room: int,
    source: str,
    now: datetime,
) -> _BatchOutcome:
    out = _BatchOutcome()
    interests: dict[str, Interest] = (
        get_interests([u["_id"] for u in users]) if needs_interests else {}
    )
    template = fired.template.model_dump()
    template["data"] = {"campaign": fired.campaign, **template["data"]}
    for user in users:
        uid = user["_id"]
        prefs = Preferences.model_validate(user.get("preferences") or {})
        if not prefs.wants(fired.type):
            out.opted_out += 1
            continue
        interest = interests.get(uid)
        if fired.audience.categories and (
            interest is None or not interest.matches(fired.audience.categories)
        ):
            out.not_in_segment += 1
            continue
        out.audience += 1
        favorite = interest.favorite_category if interest else None
        product = interest.product_in(favorite) if interest else None
        try:
            content = render(
                template,
                UserContext(
                    name=user.get("name"),
                    favorite_category=favorite,
                    product_name=product.get("name") if product else None,
                ),
            )
            event = make_event(
                "notification.requested",
                NotificationRequested(
                    idempotency_key=idempotency_key(fired.campaign, fired.run_id, uid),
                    user_id=uid,
                    type=fired.type,
                    content=content,
                    # A newer firing of the same campaign replaces an unread older one.
                    collapse_key=f"campaign:{fired.campaign}",
                    source=source,
                    requested_at=now,
                ),
                source=source,
            )
        except Exception:
            log.warning("could not render campaign for user", extra={"user_id": uid}, exc_info=True)
            out.failed += 1
            continue
        if fired.dry_run:
            if len(out.samples) < sample_room:
                out.samples.append({"user_id": uid, "content": content})
        else:
            out.events.append(event)
    return out


async def _publish_all(broker: Broker, events: list[Envelope[Any]], concurrency: int) -> None:
    """Publish ``events`` and return once the broker confirmed every one of them."""
    for start in range(0, len(events), concurrency):
        chunk = events[start : start + concurrency]
        await asyncio.gather(*(broker.publish(e) for e in chunk))


def _next_batch(gen: Iterator[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    return next(gen, None)


async def execute_run(
    fired: CampaignFired,
    *,
    owner: str,
    settings: SchedulerSettings,
    broker: Broker | None,
    clock: Clock = utcnow,
) -> CampaignRun | None:
    """Fan ``fired`` out (or dry-run it). Returns the run as it ended, or None when
    another delivery holds the run (it finishes it; this one has nothing to do).

    Raises :class:`~herald_scheduler.templates.TemplateError` for a template that can
    never render (the run is recorded as failed) and lets broker errors propagate (the
    run stays ``running`` and resumes after its last recorded batch on redelivery).
    """
    key = run_key(fired.campaign, fired.run_id)
    lease = timedelta(seconds=settings.campaign_lease_seconds)
    doc = await run_db(_claim, fired, owner, clock(), lease)
    if doc is None:
        log.info("campaign run is being worked on elsewhere", extra={"run": key})
        return None
    if doc["status"] != "running":
        log.info("campaign run already finished", extra={"run": key, "status": doc["status"]})
        return await run_db(CampaignRun.objects.get, id=key)
    try:
        used = check_template(fired.template.model_dump())
    except ValueError as exc:
        await run_db(_fail_run, key, str(exc), clock())
        raise
    if not fired.dry_run and broker is None:
        raise RuntimeError("a campaign run that sends needs a broker")

    needs_interests = bool(fired.audience.categories) or bool(
        used & {"favorite_category", "favourite_category", "product_name"}
    )
    limit = settings.dry_run_samples
    totals = await run_db(_progress, key, limit)
    gen = iter_users(
        batch_size=settings.fanout_batch_size, after=totals.cursor, user_ids=_audience_ids(fired)
    )
    coll = CampaignRun._get_collection()
    while True:
        users = await run_db(_next_batch, gen)
        if not users:
            break
        now = clock()
        outcome = await run_db(
            _evaluate_batch,
            fired,
            users,
            needs_interests=needs_interests,
            sample_room=limit - len(totals.samples),
            source=settings.service_name,
            now=now,
        )
        if outcome.events:
            assert broker is not None
            await _publish_all(broker, outcome.events, settings.fanout_publish_concurrency)
        last = position(users[-1])
        batch = {
            "_id": f"{key}:{last}",
            "run": key,
            "after": totals.cursor,
            "last_position": last,
            "audience_size": outcome.audience,
            "sent": len(outcome.events),
            "opted_out": outcome.opted_out,
            "not_in_segment": outcome.not_in_segment,
            "failed": outcome.failed,
            "samples": outcome.samples,
            "at": now,
        }
        if await run_db(_record_batch, batch):
            totals.add(batch, limit)
        else:
            totals = await run_db(_progress, key, limit)
        await run_db(
            coll.update_one,
            {"_id": key, "status": "running"},
            {"$set": {**totals.fields(), "lease_owner": owner, "lease_until": clock() + lease}},
        )
        del users, outcome, batch  # keep only one batch alive at a time
    totals = await run_db(_progress, key, limit)
    await run_db(
        coll.update_one,
        {"_id": key, "status": "running"},
        {
            "$set": {
                **totals.fields(),
                "status": "succeeded",
                "finished_at": clock(),
                "lease_owner": None,
            }
        },
    )
    run: CampaignRun = await run_db(CampaignRun.objects.get, id=key)
    log.info(
        "campaign run finished",
        extra={
            "run": key,
            "dry_run": run.dry_run,
            "audience_size": run.audience_size,
            "sent": run.sent,
            "suppressed": run.suppressed,
            "failed": run.failed,
        },
    )
    return run
