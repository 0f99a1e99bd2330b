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

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from herald_common.clock import Clock, utcnow
from herald_common.db import run_db
from herald_common.events import CampaignFired, Envelope, NotificationRequested, make_event
from herald_common.leases import Lease
from herald_common.messaging import Broker
from herald_common.preferences import Preferences
from herald_common.replica import iter_users, position

from herald_scheduler import campaign_store as store
from herald_scheduler.campaign_store import run_key
from herald_scheduler.config import SchedulerSettings
from herald_scheduler.interests import Interest, get_interests
from herald_scheduler.models import CampaignRun
from herald_scheduler.templates import UserContext, check_template, render

log = logging.getLogger(__name__)


def idempotency_key(campaign: str, run_id: str, user_id: str) -> str:
    return f"campaign:{campaign}:{run_id}:{user_id}"


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
    """Publish ``events`` and return once the broker confirmed every one of them, at
    most ``concurrency`` unconfirmed at a time (one retry loop per chunk)."""
    for start in range(0, len(events), concurrency):
        await broker.publish_many(events[start : start + concurrency])


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
    lease = Lease(owner, timedelta(seconds=settings.campaign_lease_seconds))
    doc = await run_db(store.claim, fired, lease, clock())
    if doc is None:
        log.info("campaign run is being worked on elsewhere", extra={"run": key})
        return None
    if doc["status"] != "running":
        log.info("campaign run already finished", extra={"run": key, "status": doc["status"]})
        return await run_db(store.get_run, key)
    try:
        used = check_template(fired.template.model_dump())
    except ValueError as exc:
        await run_db(store.fail_run, key, str(exc), clock())
        raise
    if not fired.dry_run and broker is None:
        raise RuntimeError("a campaign run that sends needs a broker")

    needs_interests = bool(fired.audience.categories) or bool(
        used & {"favorite_category", "favourite_category", "product_name"}
    )
    limit = settings.dry_run_samples
    totals = await run_db(store.progress, key, limit)
    gen = iter_users(
        batch_size=settings.fanout_batch_size, after=totals.cursor, user_ids=_audience_ids(fired)
    )
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
        if await run_db(store.record_batch, batch):
            totals.add(batch, limit)
        else:
            totals = await run_db(store.progress, key, limit)
        await run_db(store.save_progress, key, totals, lease, clock())
        del users, outcome, batch  # keep only one batch alive at a time
    totals = await run_db(store.progress, key, limit)
    await run_db(store.finish_run, key, totals, clock())
    run = await run_db(store.get_run, key)
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
