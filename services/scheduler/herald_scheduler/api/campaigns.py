"""Campaign administration: runs, known definitions, firing by name (admin only)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from herald_common.app import admin_principal
from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.errors import BadUserInput, NotFound, Unavailable
from herald_common.resources import firing
from herald_common.resources.templates import TemplateError

from herald_scheduler.api.schemas import CampaignDefinitionOut, CampaignRunOut, FireRequest
from herald_scheduler.campaigns import (
    definition_spec,
    execute_run,
    get_definition,
    recent_runs,
    record_pending_run,
)
from herald_scheduler.models import CampaignDefinition

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@router.get("/runs", response_model=list[CampaignRunOut])
async def list_runs(
    first: int = Query(default=50, ge=1, le=500),
    _: Principal = Depends(admin_principal),
) -> list[dict[str, Any]]:
    """The most recent campaign runs, newest first."""
    return [r.to_api() for r in await run_db(recent_runs, first)]


@router.get("", response_model=list[CampaignDefinitionOut])
async def list_campaigns(_: Principal = Depends(admin_principal)) -> list[dict[str, Any]]:
    """Every campaign the scheduler knows (from files loaded by the runner or events)."""
    docs = await run_db(lambda: list(CampaignDefinition.objects.order_by("id")))
    return [d.to_api() for d in docs]


@router.post("/{name}/fire", response_model=CampaignRunOut)
async def fire_campaign(
    request: Request,
    name: str = Path(min_length=1, max_length=253),
    body: FireRequest = Body(default_factory=FireRequest),
    _: Principal = Depends(admin_principal),
) -> dict[str, Any]:
    """Fire campaign ``name`` now with its latest known definition.

    A dry run is evaluated right away and returned finished (audience size and rendered
    samples, nothing sent). A real run is handed to the fan-out consumer through
    ``campaign.fired``; the returned run is ``running`` and its counters fill in as it
    goes (see ``GET /v1/campaigns/runs``).
    """
    definition = await run_db(get_definition, name)
    if definition is None:
        raise NotFound(f"no campaign named {name!r} is known", field="name")
    now = datetime.now(UTC)
    kind = "dry" if body.dry_run else "manual"
    run_id = f"{name}-{kind}-{uuid.uuid4().hex[:12]}"
    namespace = definition.namespace or "default"
    spec = definition_spec(definition)
    settings = request.app.state.settings
    runtime = request.app.state.runtime
    try:
        if body.dry_run:
            fired = firing.campaign_fired(
                name, namespace, spec, run_id=run_id, fired_at=now, dry_run=True
            )
            run = await execute_run(fired, owner=f"api:{run_id}", settings=settings, broker=None)
            assert run is not None  # a fresh run id is never held by anyone else
            return run.to_api()
        if runtime.broker is None or not runtime.broker.connected:
            raise Unavailable("message broker not connected")
        fired = await firing.fire_campaign(
            runtime.broker,
            name,
            namespace,
            spec,
            run_id=run_id,
            fired_at=now,
            dry_run=False,
            source=settings.service_name,
        )
    except TemplateError as exc:
        raise BadUserInput(f"stored template is invalid: {exc}", field="template") from exc
    run = await run_db(record_pending_run, fired, now)
    return run.to_api()
