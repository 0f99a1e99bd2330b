"""Inbox routes: list, unread count, one notification, mark read, mark all read.

The user is always the verified token's subject; no route takes a user id from the
client. Another user's notification answers 404 (admins may read and mark any).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from herald_common.app import current_principal
from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.events import NotificationType

from herald_notifications import inbox
from herald_notifications.api.deps import service
from herald_notifications.service import NotificationService

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("")
async def list_notifications(
    first: int = Query(default=20, ge=1, le=100),
    after: str | None = Query(default=None, max_length=500),
    unread_only: bool = False,
    type: NotificationType | None = None,
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The caller's notifications, newest first, with cursor pagination."""
    page = await run_db(
        inbox.list_notifications,
        principal.user_id,
        first=first,
        after=after or None,
        unread_only=unread_only,
        type_=type,
    )
    return page.to_api()


@router.get("/unread-count")
async def unread_count(principal: Principal = Depends(current_principal)) -> dict[str, int]:
    """How many of the caller's notifications are unread."""
    return {"count": await run_db(inbox.unread_count, principal.user_id)}


@router.post("/read-all")
async def read_all(
    principal: Principal = Depends(current_principal),
    svc: NotificationService = Depends(service),
) -> dict[str, int]:
    """Mark all of the caller's notifications read; returns how many changed."""
    changed = await run_db(inbox.mark_all_read, principal.user_id, svc.now(), source=svc.source)
    if changed:
        svc.outbox_written()
    return {"changed": changed}


@router.get("/{notification_id}")
async def get_notification(
    notification_id: str, principal: Principal = Depends(current_principal)
) -> dict[str, Any]:
    """One notification (owner or admin)."""
    return inbox.to_api(await run_db(inbox.get_notification, notification_id, principal))


@router.post("/{notification_id}/read")
async def mark_read(
    notification_id: str,
    principal: Principal = Depends(current_principal),
    svc: NotificationService = Depends(service),
) -> dict[str, Any]:
    """Mark one notification read (owner or admin); marking it again changes nothing."""
    doc, changed = await run_db(
        inbox.mark_read, notification_id, principal, svc.now(), source=svc.source
    )
    if changed:
        svc.outbox_written()
    return inbox.to_api(doc)
