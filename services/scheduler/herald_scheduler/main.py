"""The scheduler service: FastAPI app factory and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from herald_common import replica
from herald_common.admin import dead_letter_router
from herald_common.app import create_app as create_base_app
from herald_common.db import run_db
from herald_common.runtime import ServiceRuntime

from herald_scheduler import __version__
from herald_scheduler.api import campaigns, orders
from herald_scheduler.config import SchedulerSettings
from herald_scheduler.consumers import queue_names, start_consumers
from herald_scheduler.domain import Campaigns, Orders
from herald_scheduler.models import OrderTransition, ensure_indexes


def create_app(settings: SchedulerSettings | None = None) -> FastAPI:
    """Build the scheduler app; settings default to the environment."""
    settings = settings or SchedulerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, documents=[OrderTransition])
        await runtime.start(app)
        await run_db(ensure_indexes)
        await run_db(replica.ensure_indexes)
        assert runtime.broker is not None
        campaigns = app.state.campaigns = Campaigns(settings, runtime.broker)
        orders = app.state.orders = Orders(settings, outbox_written=runtime.outbox_written)
        await start_consumers(settings, runtime.broker, campaigns, orders)
        try:
            yield
        finally:
            await runtime.stop()

    app = create_base_app(
        service=settings.service_name,
        title="Herald scheduler",
        version=__version__,
        description="Mock order lifecycle, campaign fan-out and run records.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(orders.router)
    app.include_router(campaigns.router)
    app.include_router(dead_letter_router(queue_names(settings)))
    return app
