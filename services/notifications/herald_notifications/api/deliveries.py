"""Delivery records: why a requested notification was suppressed or deferred.

Routes only translate HTTP; :class:`herald_notifications.domain.DeliveriesDomain` owns
the use cases (who may read which records).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from herald_common.events import NotificationType

from herald_notifications.api.schemas import Caller, Deliveries

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get("/log")
async def delivery_log_page(
    caller: Caller,
    deliveries: Deliveries,
    first: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """The caller's own suppressed, deferred and released requests, newest first, each
    with a sentence saying why ("Held during your quiet hours until 07:30."); cursor
    pagination (``after`` = a previous page's ``end_cursor``)."""
    return await deliveries.log(caller, first=first, after=after)


@router.get("")
async def list_deliveries(
    caller: Caller,
    deliveries: Deliveries,
    outcome: Literal["suppressed", "deferred", "released"] | None = None,
    type: NotificationType | None = None,
    first: Annotated[int, Query(ge=1, le=500)] = 50,
    user_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    """Suppression / deferral records, newest first. Users see their own; an admin
    sees everyone's or one user's with ``user_id``."""
    return await deliveries.records(
        caller, outcome=outcome, type_=type, first=first, user_id=user_id
    )
