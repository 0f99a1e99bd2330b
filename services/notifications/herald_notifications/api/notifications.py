"""Inbox routes: list, counts, one notification, read, seen, archive, snooze, delete.

Routes only translate HTTP; :class:`herald_notifications.domain.InboxDomain` owns the
use cases. The user is always the verified token's subject; no route takes a user id
from the client. Another user's notification answers 404 exactly like one that does not
exist (admins may read and change any); bulk routes skip others' and unknown ids and
do not count them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from herald_common.events import StoredNotificationType

from herald_notifications.api.schemas import (
    Caller,
    ChangedOut,
    CountOut,
    IdsIn,
    Inbox,
    NotificationOut,
    OptionalIdsIn,
    PageOut,
    SnoozeIn,
)
from herald_notifications.views import to_api

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("", response_model=PageOut)
async def list_notifications(
    caller: Caller,
    inbox: Inbox,
    first: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=500)] = None,
    unread_only: bool = False,
    type: StoredNotificationType | None = None,
    archived: bool = False,
    total: bool = True,
) -> object:
    """The caller's notifications, newest first, with cursor pagination. ``archived``
    lists the archive instead; snoozed and deleted ones are never listed. ``total=false``
    leaves out ``total_count`` (null), which costs a query of its own."""
    page = await inbox.page(
        caller,
        first=first,
        after=after,
        unread_only=unread_only,
        type_=type,
        archived=archived,
        total=total,
    )
    return page.to_api()


@router.get("/unread-count", response_model=CountOut)
async def unread_count(caller: Caller, inbox: Inbox) -> object:
    """How many notifications of the default list are unread."""
    return {"count": await inbox.unread_count(caller)}


@router.get("/unseen-count", response_model=CountOut)
async def unseen_count(caller: Caller, inbox: Inbox) -> object:
    """How many notifications of the default list were not seen yet (the badge)."""
    return {"count": await inbox.unseen_count(caller)}


@router.post("/read-all", response_model=ChangedOut)
async def read_all(caller: Caller, inbox: Inbox) -> object:
    """Mark every unread notification of the default list read."""
    return {"changed": await inbox.mark_all_read(caller)}


@router.post("/read", response_model=ChangedOut)
async def read_many(body: IdsIn, caller: Caller, inbox: Inbox) -> object:
    """Mark up to 100 of the caller's notifications read (and seen)."""
    return {"changed": await inbox.mark_read_many(caller, body.ids)}


@router.post("/seen", response_model=ChangedOut)
async def seen(body: OptionalIdsIn, caller: Caller, inbox: Inbox) -> object:
    """Mark up to 100 notifications seen, or (no ids) every unseen one."""
    return {"changed": await inbox.mark_seen(caller, body.ids)}


@router.post("/archive-read", response_model=ChangedOut)
async def archive_read(caller: Caller, inbox: Inbox) -> object:
    """Archive every read notification of the default list."""
    return {"changed": await inbox.archive_all_read(caller)}


@router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(notification_id: str, caller: Caller, inbox: Inbox) -> object:
    """One notification (owner or admin)."""
    return to_api(await inbox.get(caller, notification_id))


@router.post("/{notification_id}/read", response_model=NotificationOut)
async def mark_read(notification_id: str, caller: Caller, inbox: Inbox) -> object:
    """Mark one notification read; marking it again changes nothing."""
    return to_api(await inbox.mark_read(caller, notification_id))


@router.post("/{notification_id}/archive", response_model=NotificationOut)
async def archive(notification_id: str, caller: Caller, inbox: Inbox) -> object:
    """Move one notification to the archive (ends a snooze)."""
    return to_api(await inbox.archive(caller, notification_id, archived=True))


@router.post("/{notification_id}/unarchive", response_model=NotificationOut)
async def unarchive(notification_id: str, caller: Caller, inbox: Inbox) -> object:
    """Bring one notification back from the archive."""
    return to_api(await inbox.archive(caller, notification_id, archived=False))


@router.post("/{notification_id}/snooze", response_model=NotificationOut)
async def snooze(notification_id: str, body: SnoozeIn, caller: Caller, inbox: Inbox) -> object:
    """Hide one notification until ``until``; it then comes back on top, unread."""
    return to_api(await inbox.snooze(caller, notification_id, body.until))


@router.delete("/{notification_id}", status_code=204, response_class=Response)
async def delete(notification_id: str, caller: Caller, inbox: Inbox) -> Response:
    """Delete one notification (owner or admin)."""
    await inbox.delete(caller, notification_id)
    return Response(status_code=204)
