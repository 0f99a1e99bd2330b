"""``GET /v1/emails/{notification_id}``: the email state of one notification."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from herald_common.app import current_principal
from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.errors import NotFound

from herald_notifications.email import state

router = APIRouter(prefix="/v1/emails", tags=["email"])


@router.get("/{notification_id}")
async def get_email(
    notification_id: str = Path(max_length=200),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Where the email of a notification stands (``queued``, ``retrying``, ``sent``,
    ``failed``), its attempts and last error; owner or admin. 404 when no email was
    sent for it (the user has no email channel) or it is another user's."""
    doc = await run_db(state.get, notification_id)
    if doc is None or (doc["user_id"] != principal.user_id and not principal.is_admin):
        raise NotFound(f"no email for notification {notification_id!r}", field="notification_id")
    return state.to_api(doc)
