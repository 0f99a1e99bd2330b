"""Firing a campaign: the one resource → ``campaign.fired`` mapping, and publishing it.

Everything that fires a campaign goes through :func:`fire_campaign`: the scheduler's
``POST /v1/campaigns/{name}/fire``, ``herald-scheduler fire-campaign`` (the command the
operator's CronJob and Job pods run), and the local runner. It checks the template,
builds the payload with :func:`campaign_fired` and publishes it with publisher
confirms; the scheduler's ``campaign.fired`` consumer fans it out.

Run ids: a scheduled firing is named after its slot (:func:`scheduled_run_id`), so two
pods, or a retried pod, firing the same slot name the same run and the scheduler
de-duplicates them; a manual or requested firing gets its own id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from herald_common.events import CampaignAudience, CampaignFired, CampaignTemplate, make_event
from herald_common.resources.cron import latest_fire, slot_run_id
from herald_common.resources.models import CampaignSpec, NotificationCampaign
from herald_common.resources.templates import check_template


class Publisher(Protocol):
    """What publishes an event with confirms (:class:`herald_common.messaging.Broker`)."""

    async def publish(self, event: Any) -> Any: ...


def campaign_audience(spec: CampaignSpec) -> CampaignAudience:
    """The ``audience`` of the payload (also what the scheduler stores as a definition)."""
    return CampaignAudience(
        categories=list(spec.audience.categories), user_ids=list(spec.audience.user_ids)
    )


def campaign_template(spec: CampaignSpec) -> CampaignTemplate:
    """The ``template`` of the payload."""
    return CampaignTemplate(
        title=spec.template.title, body=spec.template.body, data=dict(spec.template.data)
    )


def campaign_fired(
    name: str,
    namespace: str,
    spec: CampaignSpec,
    *,
    run_id: str,
    fired_at: datetime,
    dry_run: bool | None = None,
) -> CampaignFired:
    """The ``campaign.fired`` payload of one firing of campaign ``name``.

    ``dry_run`` overrides ``spec.dryRun`` when given. Raises
    :class:`~herald_common.resources.templates.TemplateError` for a template that could
    never render, before anything is published.
    """
    check_template(spec.template.model_dump(), "spec.template")
    return CampaignFired(
        campaign=name,
        namespace=namespace,
        run_id=run_id,
        type=spec.type,
        audience=campaign_audience(spec),
        template=campaign_template(spec),
        dry_run=spec.dry_run if dry_run is None else dry_run,
        fired_at=fired_at,
    )


def scheduled_run_id(name: str, spec: CampaignSpec | None, now: datetime) -> str:
    """Name + the scheduled minute this firing belongs to.

    For a cron campaign the slot is the latest scheduled instant at or before ``now``
    (a pod that starts late still names its slot); for a one-shot campaign its
    ``runAt``; without a spec, the current minute.
    """
    if spec is not None and spec.schedule:
        slot = latest_fire(spec.schedule, spec.time_zone, now)
    elif spec is not None and spec.run_at is not None:
        slot = spec.run_at
    else:
        slot = now.replace(second=0, microsecond=0)
    return slot_run_id(name, slot)


async def fire_campaign(
    publisher: Publisher,
    name: str,
    namespace: str,
    spec: CampaignSpec,
    *,
    run_id: str,
    fired_at: datetime,
    source: str,
    dry_run: bool | None = None,
) -> CampaignFired:
    """Fire campaign ``name``: publish its ``campaign.fired`` (confirmed) and return it."""
    fired = campaign_fired(name, namespace, spec, run_id=run_id, fired_at=fired_at, dry_run=dry_run)
    await publisher.publish(make_event(fired, source=source))
    return fired


async def fire_resource(
    publisher: Publisher,
    campaign: NotificationCampaign,
    *,
    run_id: str,
    fired_at: datetime,
    source: str,
    dry_run: bool | None = None,
) -> CampaignFired:
    """:func:`fire_campaign` for a loaded ``NotificationCampaign`` resource."""
    return await fire_campaign(
        publisher,
        campaign.name,
        campaign.namespace,
        campaign.spec,
        run_id=run_id,
        fired_at=fired_at,
        source=source,
        dry_run=dry_run,
    )
