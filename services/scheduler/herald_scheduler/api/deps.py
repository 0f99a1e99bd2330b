"""The scheduler's typed route dependencies: its domain objects, made once per app in
``main.py`` and kept in ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from herald_scheduler.domain import Campaigns, Orders


def _campaigns(request: Request) -> Campaigns:
    campaigns: Campaigns = request.app.state.campaigns
    return campaigns


def _orders(request: Request) -> Orders:
    orders: Orders = request.app.state.orders
    return orders


CampaignsDomain = Annotated[Campaigns, Depends(_campaigns)]
OrdersDomain = Annotated[Orders, Depends(_orders)]
