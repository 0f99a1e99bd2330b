"""The scheduler's use cases, one object per area, shared by the API, the CLI, the local
runner and the consumers.

* :class:`Campaigns` — the one way to fire a campaign (by name from a stored definition,
  or from a resource's spec), to evaluate a dry run, to remember definitions and to
  read runs. Routes and commands only translate their input and output.
* :class:`Orders` — a user's orders, the sweep, placing orders from activity.

Storage is reached only through ``campaign_store`` and ``order_store``; the fan-out of a
run is :func:`herald_scheduler.campaigns.execute_run`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from herald_common.clock import Clock, utcnow
from herald_common.db import run_db
from herald_common.errors import BadUserInput, NotFound, Unavailable
from herald_common.events import CampaignFired
from herald_common.messaging import Broker
from herald_common.resources import CampaignSpec, NotificationCampaign, campaign_fired
from herald_common.resources.firing import campaign_audience, campaign_template, fire_campaign
from herald_common.resources.templates import TemplateError

from herald_scheduler import campaign_store, order_store
from herald_scheduler.campaigns import execute_run
from herald_scheduler.config import SchedulerSettings
from herald_scheduler.interests import record_activity
from herald_scheduler.models import CampaignDefinition, CampaignRun, Order
from herald_scheduler.orders import (
    ActivityMessage,
    SweepResult,
    place_orders_from_activity,
    sweep,
)


@dataclass(frozen=True)
class Firing:
    """What firing a campaign did: the ``campaign.fired`` payload and, for an
    evaluated dry run or a recorded real one, the run as it stands."""

    fired: CampaignFired
    run: CampaignRun | None
    published: bool


class Campaigns:
    """Campaign use cases. ``broker`` may be None for work that publishes nothing (dry
    runs, listings)."""

    def __init__(
        self,
        settings: SchedulerSettings,
        broker: Broker | None,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.clock = clock

    async def definition(self, name: str) -> tuple[str, CampaignSpec]:
        """The namespace and spec of the latest known definition of campaign ``name``;
        :class:`NotFound` when none is known."""
        definition = await run_db(campaign_store.get_definition, name)
        if definition is None:
            raise NotFound(f"no campaign named {name!r} is known", field="name")
        return definition.namespace or "default", campaign_store.definition_spec(definition)

    async def fire(
        self,
        name: str,
        namespace: str,
        spec: CampaignSpec,
        *,
        run_id: str,
        dry_run: bool | None = None,
        evaluate: bool = True,
        record: bool = False,
        now: datetime | None = None,
    ) -> Firing:
        """Fire campaign ``name`` as ``run_id``. ``dry_run`` overrides the spec's.

        A dry run is evaluated here when ``evaluate`` (audience size and rendered
        samples, nothing sent) and comes back finished. Anything else publishes
        ``campaign.fired`` (confirmed) for the fan-out consumer; with ``record`` the run
        is stored as pending and returned. A template that can never render is a
        :class:`BadUserInput` before anything is published."""
        now = now or self.clock()
        try:
            fired = campaign_fired(
                name, namespace, spec, run_id=run_id, fired_at=now, dry_run=dry_run
            )
            if fired.dry_run and evaluate:
                run = await execute_run(
                    fired, owner=f"eval:{run_id}", settings=self.settings, broker=None
                )
                if run is None:
                    raise Unavailable(f"run {run_id} is being evaluated elsewhere")
                return Firing(fired, run, published=False)
            if self.broker is None or not self.broker.connected:
                raise Unavailable("message broker not connected")
            fired = await fire_campaign(
                self.broker,
                name,
                namespace,
                spec,
                run_id=run_id,
                fired_at=now,
                dry_run=dry_run,
                source=self.settings.service_name,
            )
        except TemplateError as exc:
            raise BadUserInput(f"template is invalid: {exc}", field="template") from exc
        run = await run_db(campaign_store.record_pending_run, fired, now) if record else None
        return Firing(fired, run, published=True)

    async def fire_by_name(self, name: str, *, dry_run: bool) -> CampaignRun:
        """Fire campaign ``name`` now with its latest known definition under a fresh
        run id (the admin API): a dry run comes back finished, a real one ``running``."""
        namespace, spec = await self.definition(name)
        kind = "dry" if dry_run else "manual"
        run_id = f"{name}-{kind}-{uuid.uuid4().hex[:12]}"
        firing = await self.fire(name, namespace, spec, run_id=run_id, dry_run=dry_run, record=True)
        assert firing.run is not None  # evaluated or recorded
        return firing.run

    async def handle_fired(self, fired: CampaignFired, event_id: str) -> CampaignRun | None:
        """``campaign.fired`` delivered: remember the definition, fan the run out (or
        dry-run it). None when another delivery holds the run."""
        await run_db(campaign_store.store_definition_from_event, fired, event_id)
        return await execute_run(
            fired, owner=event_id, settings=self.settings, broker=self.broker, clock=self.clock
        )

    async def remember(self, campaign: NotificationCampaign) -> None:
        """Store a campaign file's definition so an admin can fire it by name."""
        spec = campaign.spec

        def store() -> None:
            campaign_store.store_definition(
                name=campaign.name,
                namespace=campaign.metadata.namespace,
                type_=spec.type,
                audience=campaign_audience(spec).model_dump(),
                template=campaign_template(spec).model_dump(),
                origin=f"file:{campaign.source}",
                at=self.clock(),
                schedule=spec.schedule,
                time_zone=spec.time_zone,
                run_at=spec.run_at,
                suspend=spec.suspend,
                dry_run=spec.dry_run,
            )

        await run_db(store)

    async def runs(self, first: int) -> list[CampaignRun]:
        """The most recent runs, newest first."""
        return await run_db(campaign_store.recent_runs, first)

    async def definitions(self) -> list[CampaignDefinition]:
        """Every known definition, by name."""
        return await run_db(campaign_store.all_definitions)

    async def wait_for(self, campaign: str, run_id: str, timeout: float) -> CampaignRun | None:
        """The run once the fan-out finished it, or as it stands after ``timeout``
        seconds (the CLI's ``--wait-seconds``: the run lives in another process, so its
        record is read about once a second until then)."""
        key = campaign_store.run_key(campaign, run_id)
        deadline = time.monotonic() + timeout
        while True:
            run = await run_db(campaign_store.find_run, key)
            if (run is not None and run.status != "running") or time.monotonic() >= deadline:
                return run
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


class Orders:
    """Order use cases. ``outbox_written`` is the outbox wake-up (``ServiceRuntime.outbox_written``) called
    after events were staged."""

    def __init__(
        self,
        settings: SchedulerSettings,
        *,
        clock: Clock = utcnow,
        outbox_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.outbox_written = outbox_written

    async def of_user(self, user_id: str, first: int) -> list[Order]:
        """A user's orders, newest first."""
        return await run_db(order_store.orders_of, user_id, first)

    async def sweep(
        self,
        now: datetime | None = None,
        *,
        batch_size: int | None = None,
        limit: int | None = None,
    ) -> SweepResult:
        """Advance every due order one step."""
        result = await run_db(
            sweep, now or self.clock(), self.settings, batch_size=batch_size, limit=limit
        )
        if result.advanced:
            self.outbox_written()
        return result

    async def record_activity(self, messages: Sequence[ActivityMessage]) -> int:
        """``activity.recorded`` messages (event id, activities), together: learn
        interests, place an order per purchase group; returns how many orders were
        new."""
        await run_db(record_activity, messages)
        placed = await run_db(place_orders_from_activity, messages, self.clock(), self.settings)
        if placed:
            self.outbox_written()
        return placed
