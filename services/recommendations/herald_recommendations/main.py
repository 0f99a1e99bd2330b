"""App factory of the recommendations service (port 4003)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from herald_common.admin import dead_letter_router
from herald_common.app import create_app as create_base_app
from herald_common.clock import Clock
from herald_common.db import run_db
from herald_common.runtime import ServiceRuntime

from herald_recommendations import __version__
from herald_recommendations.api.routes import router
from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.consumers import queue_names, start_consumers
from herald_recommendations.domain import Recommendations
from herald_recommendations.engine import RecommendationEngine
from herald_recommendations.incremental import IncrementalRefresher
from herald_recommendations.models import RecommendationDoc


def create_app(
    settings: RecommendationsSettings | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The recommendations API with its consumers, outbox relay and incremental refresher.

    ``clock`` replaces the wall clock (tests).
    """
    s = settings or RecommendationsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(s, documents=[RecommendationDoc])
        await runtime.start(app)
        engine = RecommendationEngine(s, clock=clock)
        await run_db(engine.ensure_ready)
        refresher = IncrementalRefresher(engine, outbox_written=runtime.outbox_written)
        app.state.engine = engine
        app.state.refresher = refresher
        assert runtime.broker is not None
        app.state.recommendations = Recommendations(engine)
        await start_consumers(s, runtime.broker, engine, refresher)
        try:
            yield
        finally:
            await refresher.stop()
            await runtime.stop()

    app = create_base_app(
        service=s.service_name,
        title="Herald recommendations",
        version=__version__,
        description="Product catalog, activity ingestion and explainable recommendations.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(dead_letter_router(queue_names(s)))
    return app
