"""Delivery records: why a requested notification was suppressed or deferred."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from herald_common.app import current_principal
from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.errors import Forbidden
from herald_common.events import NotificationType

from herald_notifications import delivery_log, inbox

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get("/log")
async def delivery_log_page(
    first: int = Query(default=20, ge=1, le=100),
    after: str | None = Query(default=None, max_length=500),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The caller's own suppressed, deferred and released requests, newest first, each
    with a sentence saying why ("Held during your quiet hours until 07:30."); cursor
    pagination (``after`` = a previous page's ``end_cursor``)."""
    return await run_db(delivery_log.page, principal.user_id, first=first, after=after or None)


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
