"""Recommendations and catalog routes (see the contract in ARCHITECTURE.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from herald_common.app import Admin, Caller
from pydantic import BaseModel

from herald_recommendations.domain import MAX_IDS, Recommendations

router = APIRouter(prefix="/v1")


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


class RecommendationsOut(BaseModel):
    user_id: str
    model_version: str | None
    generated_at: datetime | None
    items: list[RecommendedItem]


def _domain(request: Request) -> Recommendations:
    domain: Recommendations = request.app.state.recommendations
    return domain


RecommendationsDomain = Annotated[Recommendations, Depends(_domain)]


@router.get("/recommendations/me", response_model=RecommendationsOut, tags=["recommendations"])
async def my_recommendations(
    caller: Caller,
    recommendations: RecommendationsDomain,
    first: int = Query(default=10, ge=1, le=100),
) -> dict[str, Any]:
    """The caller's stored recommendations, best first (computed on the first request)."""
    return await recommendations.of_user(caller.user_id, first)


@router.get(
    "/recommendations/{user_id}", response_model=RecommendationsOut, tags=["recommendations"]
)
async def user_recommendations(
    _: Admin,
    recommendations: RecommendationsDomain,
    user_id: str,
    first: int = Query(default=10, ge=1, le=100),
) -> dict[str, Any]:
    """Any user's recommendations (admin)."""
    return await recommendations.of_user(user_id, first)


@router.get("/products", response_model=list[Product], tags=["catalog"])
async def list_products(
    _: Caller,
    recommendations: RecommendationsDomain,
    ids: str | None = Query(default=None, description="comma-separated product ids"),
    category: str | None = None,
    first: int = Query(default=50, ge=1, le=MAX_IDS),
    after: str | None = None,
) -> list[Any]:
    """Products by ``ids`` (unknown ids are left out, order kept), or a page of the
    catalog (optionally one ``category``) in id order after ``after``."""
    if ids is not None:
        return await recommendations.products(ids)
    return await recommendations.page(category=category, first=first, after=after)


@router.get("/products/{product_id}", response_model=Product, tags=["catalog"])
async def get_product(_: Caller, recommendations: RecommendationsDomain, product_id: str) -> Any:
    """One product."""
    return await recommendations.product(product_id)
