"""App factory: the GraphQL gateway on FastAPI (health, readiness, metrics from herald_common)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from herald_common.app import create_app as create_base_app
from herald_common.events import NOTIFICATION_EVENTS, ORDER_EVENTS, USER_EVENTS
from herald_common.runtime import ServiceRuntime

from herald_gateway import __version__
from herald_gateway.budget import CallerSlots
from herald_gateway.cache import ResponseCache, invalidation_handler
from herald_gateway.clients import Services
from herald_gateway.config import GatewaySettings
from herald_gateway.engine import get_engine
from herald_gateway.gateway import Gateway
from herald_gateway.ratelimit import RateLimiter
from herald_gateway.realtime import RealtimeHub
from herald_gateway.revocations import Revocations
from herald_gateway.transport.http import make_routes
from herald_gateway.transport.unsubscribe import make_unsubscribe_routes
from herald_gateway.transport.ws import graphql_websocket

CACHE_BINDINGS = [USER_EVENTS, NOTIFICATION_EVENTS, ORDER_EVENTS]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """The gateway app."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, use_db=False)
        await runtime.start(app)
        assert runtime.verifier is not None
        await get_engine()
        cache = ResponseCache(
            runtime.redis,
            settings.cache_ttl_seconds,
            settings.cache_enabled,
            prefix=settings.redis_prefix,
        )
        gateway = Gateway(
            settings=settings,
            services=Services.from_settings(settings),
            verifier=runtime.verifier,
            redis=runtime.redis,
            broker=runtime.broker,
            cache=cache,
            limiter=RateLimiter(
                runtime.redis, settings.rate_limit_per_minute, prefix=settings.redis_prefix
            ),
            slots=CallerSlots(settings.max_concurrent_calls_per_caller),
            request_slots=CallerSlots(
                settings.max_concurrent_requests_per_caller,
                max_waiting=settings.max_waiting_requests_per_caller,
            ),
        )
        gateway.revocations = Revocations(runtime.redis)
        gateway.revocations.start()
        gateway.realtime = RealtimeHub(
            settings.redis_url, queue_size=settings.subscription_queue_size
        )
        gateway.realtime.start()
        app.state.gateway = gateway
        assert runtime.broker is not None
        await runtime.broker.consume(
            settings.cache_queue, CACHE_BINDINGS, invalidation_handler(cache)
        )
        try:
            yield
        finally:
            await gateway.realtime.stop()
            await gateway.revocations.stop()
            await gateway.services.aclose()
            await runtime.stop()

    app = create_base_app(
        service="gateway",
        title="Herald GraphQL gateway",
        version=__version__,
        description="The public API of Herald: GraphQL on /graphql (HTTP and WebSocket).",
        lifespan=lifespan,
    )

    def gateway_of(request: Request | WebSocket) -> Gateway:
        gateway: Gateway = request.app.state.gateway
        return gateway

    make_routes(app, gateway_of)
    make_unsubscribe_routes(app, gateway_of)

    @app.websocket("/graphql")
    async def graphql_ws(websocket: WebSocket) -> None:
        """GraphQL over WebSocket (graphql-transport-ws, or legacy graphql-ws)."""
        await graphql_websocket(websocket, gateway_of(websocket))

    return app


def app_factory() -> Any:
    """For ``uvicorn --factory herald_gateway.main:app_factory``."""
    return create_app()
