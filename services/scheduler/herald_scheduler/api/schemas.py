"""Response and request bodies of the scheduler's HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class OrderItemOut(BaseModel):
    product_id: str
    name: str
    quantity: int
    price: float


class OrderOut(BaseModel):
    id: str
    status: Literal["placed", "paid", "shipped", "out_for_delivery", "delivered", "cancelled"]
    items: list[OrderItemOut]
    total: float
    created_at: str
    updated_at: str


class CampaignRunOut(BaseModel):
    run_id: str
    campaign: str
    type: str
    dry_run: bool
    status: Literal["running", "succeeded", "failed"]
    audience_size: int
    sent: int
    suppressed: int
    suppressed_reasons: dict[str, int]
    failed: int
    samples: list[dict[str, Any]]
    error: str | None = None
    started_at: str | None
    finished_at: str | None


class CampaignDefinitionOut(BaseModel):
    name: str
    namespace: str
    type: str
    audience: dict[str, Any]
    template: dict[str, Any]
    schedule: str | None
    time_zone: str | None
    run_at: str | None
    suspend: bool
    dry_run: bool
    origin: str | None
    updated_at: str


class FireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False
