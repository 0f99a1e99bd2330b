"""Campaign administration: runs, known definitions, firing by name (admin only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query
from herald_common.app import Admin

from herald_scheduler.api.deps import CampaignsDomain
from herald_scheduler.api.schemas import CampaignDefinitionOut, CampaignRunOut, FireRequest

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@router.get("/runs", response_model=list[CampaignRunOut])
async def list_runs(
    _: Admin,
    campaigns: CampaignsDomain,
    first: int = Query(default=50, ge=1, le=500),
) -> list[dict[str, Any]]:
    """The most recent campaign runs, newest first."""
    return [r.to_api() for r in await campaigns.runs(first)]


@router.get("", response_model=list[CampaignDefinitionOut])
async def list_campaigns(_: Admin, campaigns: CampaignsDomain) -> list[dict[str, Any]]:
    """Every campaign the scheduler knows (from files loaded by the runner or events)."""
    return [d.to_api() for d in await campaigns.definitions()]


@router.post("/{name}/fire", response_model=CampaignRunOut)
async def fire_campaign(
    _: Admin,
    campaigns: CampaignsDomain,
    name: str = Path(min_length=1, max_length=253),
    body: FireRequest = Body(default_factory=FireRequest),
) -> dict[str, Any]:
    """Fire campaign ``name`` now with its latest known definition.

    A dry run is evaluated right away and returned finished (audience size and rendered
    samples, nothing sent). A real run is handed to the fan-out consumer through
    ``campaign.fired``; the returned run is ``running`` and its counters fill in as it
    goes (see ``GET /v1/campaigns/runs``).
    """
    run = await campaigns.fire_by_name(name, dry_run=body.dry_run)
    return run.to_api()
