"""Event consumers of the scheduler.

Queues (prefix ``scheduler`` by default):

* ``scheduler.users`` ← ``user.*``: the local user replica (preferences, names) that
  campaign audiences are drawn from.
* ``scheduler.activity`` ← ``activity.recorded``: purchases place orders (one per user
  and session in a message); every kind feeds the per-user category interests. Several
  messages are handled together (``activity_batch_max``): one insert of interest
  records, one of order placements, one of order documents.
* ``scheduler.campaigns`` ← ``campaign.fired``: fan-out of one campaign run.

Every handler is idempotent: orders have ids derived from the event, interests remember
the messages applied, campaign runs are keyed by ``run_id`` with a cursor. Handlers
translate an event into a call of the domain (:mod:`herald_scheduler.domain`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from herald_common.events import (
    ACTIVITY_EVENTS,
    CAMPAIGN_EVENTS,
    USER_EVENTS,
    CampaignFired,
    Envelope,
)
from herald_common.messaging import BatchHandler, Broker, PermanentError
from herald_common.replica import handle_user_event

from herald_scheduler.config import SchedulerSettings
from herald_scheduler.domain import Campaigns, Orders
from herald_scheduler.templates import TemplateError

log = logging.getLogger(__name__)

Handler = Callable[[Envelope[Any]], Awaitable[None]]


def activity_handler(orders: Orders) -> BatchHandler:
    async def handle_activity(events: list[Envelope[Any]]) -> None:
        """``activity.recorded``, several messages at once: learn interests, place an
        order per purchase group."""
        messages = [(str(event.id), event.payload.activities) for event in events]
        placed = await orders.record_activity(messages)
        if placed:
            log.info("orders placed from activity", extra={"count": placed})

    return handle_activity


def campaign_handler(campaigns: Campaigns) -> Handler:
    async def handle_campaign_fired(event: Envelope[Any]) -> None:
        """``campaign.fired``: fan the run out (or dry-run it), once per run id."""
        fired: CampaignFired = event.payload
        try:
            await campaigns.handle_fired(fired, str(event.id))
        except TemplateError as exc:
            # Retrying cannot fix a template: dead-letter with the reason.
            raise PermanentError(f"campaign {fired.campaign}: {exc}") from exc

    return handle_campaign_fired


async def start_consumers(
    settings: SchedulerSettings, broker: Broker, campaigns: Campaigns, orders: Orders
) -> list[str]:
    """Declare and consume the scheduler's queues; returns their names."""
    users, activity, campaign_queue = queue_names(settings)
    await broker.consume(users, [USER_EVENTS], handle_user_event)
    await broker.consume_batch(
        activity,
        [ACTIVITY_EVENTS],
        activity_handler(orders),
        max_batch=settings.activity_batch_max,
        max_wait_ms=settings.activity_batch_wait_ms,
    )
    # A fan-out is long; a couple at a time is plenty and keeps memory bounded.
    await broker.consume(campaign_queue, [CAMPAIGN_EVENTS], campaign_handler(campaigns), prefetch=2)
    return [users, activity, campaign_queue]


def queue_names(settings: SchedulerSettings) -> list[str]:
    return [settings.queue(n) for n in ("users", "activity", "campaigns")]
