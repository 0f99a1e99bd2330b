"""Event handlers of the scheduler.

Queues (prefix ``scheduler`` by default):

* ``scheduler.users`` ← ``user.*``: the local user replica (preferences, names) that
  campaign audiences are drawn from.
* ``scheduler.activity`` ← ``activity.recorded``: purchases place orders (one per user
  and session in a message); every kind feeds the per-user category interests.
* ``scheduler.campaigns`` ← ``campaign.fired``: fan-out of one campaign run.

Every handler is idempotent: orders have ids derived from the event, interests remember
the messages applied, campaign runs are keyed by ``run_id`` with a cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from herald_common.db import run_db
from herald_common.events import ActivityRecorded, CampaignFired, Envelope
from herald_common.messaging import PermanentError
from herald_common.replica import handle_user_event
from herald_common.runtime import ServiceRuntime

from herald_scheduler.campaigns import execute_run, store_definition_from_event
from herald_scheduler.config import SchedulerSettings
from herald_scheduler.interests import record_activity
from herald_scheduler.orders import place_orders_from_activity
from herald_scheduler.templates import TemplateError

log = logging.getLogger(__name__)

Handler = Callable[[Envelope[Any]], Awaitable[None]]


def activity_handler(settings: SchedulerSettings, runtime: ServiceRuntime) -> Handler:
    async def handle_activity(event: Envelope[Any]) -> None:
        """``activity.recorded``: learn interests, place an order per purchase group."""
        payload: ActivityRecorded = event.payload
        event_id = str(event.id)
        await run_db(record_activity, event_id, payload.activities)
        placed = await run_db(
            place_orders_from_activity,
            event_id,
            payload.activities,
            datetime.now(UTC),
            settings,
        )
        if placed:
            runtime.outbox_written()
            log.info("orders placed from activity", extra={"count": placed})

    return handle_activity


def campaign_handler(settings: SchedulerSettings, runtime: ServiceRuntime) -> Handler:
    async def handle_campaign_fired(event: Envelope[Any]) -> None:
        """``campaign.fired``: fan the run out (or dry-run it), once per run id."""
        fired: CampaignFired = event.payload
        await run_db(store_definition_from_event, fired, str(event.id))
        try:
            await execute_run(fired, owner=str(event.id), settings=settings, broker=runtime.broker)
        except TemplateError as exc:
            # Retrying cannot fix a template: dead-letter with the reason.
            raise PermanentError(f"campaign {fired.campaign}: {exc}") from exc

    return handle_campaign_fired


async def start_consumers(settings: SchedulerSettings, runtime: ServiceRuntime) -> list[str]:
    """Declare and consume the scheduler's queues; returns their names."""
    assert runtime.broker is not None
    users, activity, campaigns = (settings.queue(n) for n in ("users", "activity", "campaigns"))
    await runtime.broker.consume(users, ["user.*"], handle_user_event)
    await runtime.broker.consume(
        activity, ["activity.recorded"], activity_handler(settings, runtime)
    )
    # A fan-out is long; a couple at a time is plenty and keeps memory bounded.
    await runtime.broker.consume(
        campaigns, ["campaign.fired"], campaign_handler(settings, runtime), prefetch=2
    )
    return [users, activity, campaigns]


def queue_names(settings: SchedulerSettings) -> list[str]:
    return [settings.queue(n) for n in ("users", "activity", "campaigns")]
