"""Recommendations and catalog routes (see the contract in ARCHITECTURE.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from herald_common.app import admin_principal, current_principal
from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.errors import BadUserInput, NotFound
from pydantic import BaseModel

from herald_recommendations.engine import RecommendationEngine, product_view

router = APIRouter(prefix="/v1")
MAX_IDS = 500


class Product(BaseModel):
    id: str
    name: str
    category: str
    price: float
    popularity: float


class RecommendedItem(BaseModel):
    product_id: str
    name: str
    category: str
    price: float
    score: float
    explanation: str


class Recommendations(BaseModel):
    user_id: str
    model_version: str | None
    generated_at: datetime | None
    items: list[RecommendedItem]


def _engine(request: Request) -> RecommendationEngine:
    engine: RecommendationEngine = request.app.state.engine
    return engine


@router.get("/recommendations/me", response_model=Recommendations, tags=["recommendations"])
async def my_recommendations(
    request: Request,
    first: int = Query(default=10, ge=1, le=100),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """The caller's stored recommendations, best first (computed on the first request)."""
    return await run_db(_engine(request).view, principal.user_id, first)


@router.get("/recommendations/{user_id}", response_model=Recommendations, tags=["recommendations"])
async def user_recommendations(
    request: Request,
    user_id: str,
    first: int = Query(default=10, ge=1, le=100),
    _: Principal = Depends(admin_principal),
) -> dict[str, Any]:
    """Any user's recommendations (admin)."""
    return await run_db(_engine(request).view, user_id, first)


@router.get("/products", response_model=list[Product], tags=["catalog"])
async def list_products(
    request: Request,
    ids: str | None = Query(default=None, description="comma-separated product ids"),
    category: str | None = None,
    first: int = Query(default=50, ge=1, le=MAX_IDS),
    after: str | None = None,
    _: Principal = Depends(current_principal),
) -> list[Any]:
    """Products by ``ids`` (unknown ids are left out, order kept), or a page of the
    catalog (optionally one ``category``) in id order after ``after``."""
    catalog = await run_db(_engine(request).catalog)
    if ids is not None:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        if not wanted:
            raise BadUserInput("ids: give at least one product id", field="ids")
        if len(wanted) > MAX_IDS:
            raise BadUserInput(f"ids: at most {MAX_IDS} ids per request", field="ids")
        return [product_view(catalog[i]) for i in dict.fromkeys(wanted) if i in catalog]
    selected = sorted(
        pid
        for pid, p in catalog.items()
        if (category is None or p.category == category) and (after is None or pid > after)
    )[:first]
    return [product_view(catalog[pid]) for pid in selected]


@router.get("/products/{product_id}", response_model=Product, tags=["catalog"])
async def get_product(
    request: Request, product_id: str, _: Principal = Depends(current_principal)
) -> Any:
    """One product."""
    catalog = await run_db(_engine(request).catalog)
    product = catalog.get(product_id)
    if product is None:
        raise NotFound(f"no product {product_id!r}", field="id")
    return product_view(product)
