"""Delivery records: why a requested notification was suppressed or deferred."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from herald_common.app import current_principal
from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.errors import Forbidden
from herald_common.events import NotificationType

from herald_notifications import inbox

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get("")
async def list_deliveries(
    outcome: Literal["suppressed", "deferred", "released"] | None = None,
    type: NotificationType | None = None,
    first: int = Query(default=50, ge=1, le=500),
    user_id: str | None = Query(default=None, max_length=200),
    principal: Principal = Depends(current_principal),
) -> list[dict[str, Any]]:
    """Suppression / deferral records, newest first. Users see their own; an admin
    sees everyone's or one user's with ``user_id``."""
    if principal.is_admin:
        owner = user_id  # None: every user's records
    elif user_id is not None and user_id != principal.user_id:
        raise Forbidden("only an admin may read another user's delivery records", field="user_id")
    else:
        owner = principal.user_id
    return await run_db(inbox.list_deliveries, owner, outcome=outcome, type_=type, first=first)
