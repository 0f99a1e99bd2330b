"""Orders of the calling user."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from herald_common.app import current_principal
from herald_common.auth import Principal
from herald_common.db import run_db

from herald_scheduler.api.schemas import OrderOut
from herald_scheduler.orders import orders_of

router = APIRouter(prefix="/v1/orders", tags=["orders"])


@router.get("/me", response_model=list[OrderOut])
async def my_orders(
    first: int = Query(default=20, ge=1, le=100),
    principal: Principal = Depends(current_principal),
) -> list[dict[str, object]]:
    """The caller's orders, newest first."""
    orders = await run_db(orders_of, principal.user_id, first)
    return [o.to_api() for o in orders]
