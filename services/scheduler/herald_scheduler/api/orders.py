"""Orders of the calling user."""

from __future__ import annotations

from fastapi import APIRouter, Query
from herald_common.app import Caller

from herald_scheduler.api.deps import OrdersDomain
from herald_scheduler.api.schemas import OrderOut

router = APIRouter(prefix="/v1/orders", tags=["orders"])


@router.get("/me", response_model=list[OrderOut])
async def my_orders(
    caller: Caller,
    orders: OrdersDomain,
    first: int = Query(default=20, ge=1, le=100),
) -> list[dict[str, object]]:
    """The caller's orders, newest first."""
    return [o.to_api() for o in await orders.of_user(caller.user_id, first)]
