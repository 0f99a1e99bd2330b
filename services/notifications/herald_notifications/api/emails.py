"""``GET /v1/emails/{notification_id}``: the email state of one notification.

Routes only translate HTTP; :class:`herald_notifications.domain.DeliveriesDomain` owns
the use case.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from herald_notifications.api.schemas import Caller, Deliveries

router = APIRouter(prefix="/v1/emails", tags=["email"])


@router.get("/{notification_id}")
async def get_email(
    notification_id: Annotated[str, Path(max_length=200)],
    caller: Caller,
    deliveries: Deliveries,
) -> dict[str, Any]:
    """Where the email of a notification stands (``queued``, ``retrying``, ``sent``,
    ``failed``), its attempts and last error; owner or admin. 404 when no email was
    sent for it (the user has no email channel) or it is another user's."""
    return await deliveries.email(caller, notification_id)
