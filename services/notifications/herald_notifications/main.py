"""App factory of the notifications service (internal port 4002)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from herald_common.admin import dead_letter_router
from herald_common.app import create_app as create_base_app
from herald_common.clock import Clock
from herald_common.db import run_db
from herald_common.runtime import ServiceRuntime

from herald_notifications import __version__
from herald_notifications.api import deliveries_router, emails_router, notifications_router
from herald_notifications.config import NotificationsSettings
from herald_notifications.consumers import queue_names, start_consumers
from herald_notifications.email.channel import EmailChannel
from herald_notifications.models import Notification, ensure_indexes
from herald_notifications.service import NotificationService


def create_app(
    settings: NotificationsSettings | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The notifications app. ``clock`` replaces the wall clock (tests)."""
    settings = settings or NotificationsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, documents=[Notification])
        await runtime.start(app)
        service: NotificationService | None = None
        email: EmailChannel | None = None
        try:
            await run_db(
                ensure_indexes,
                use_ttl_index=settings.use_ttl_index,
                retention_days=settings.retention_days,
            )
            service = NotificationService(
                settings,
                broker=runtime.broker,
                redis=runtime.redis,
                clock=clock,
                outbox_written=runtime.outbox_written,
            )
            app.state.notifications = service
            assert runtime.broker is not None
            service.start_user_cache()
            if settings.email_enabled:
                email = EmailChannel(settings, clock=clock)
                await email.prepare()
            await start_consumers(settings, runtime.broker, service, email)
            if email is not None and settings.run_sweeps:
                email.start_sweeps()
            if settings.run_sweeps:
                service.start_sweeps()
            yield
        finally:
            if email is not None:
                await email.stop()
            if service is not None:
                await service.stop_sweeps()
                await service.stop_user_cache()
            await runtime.stop()

    app = create_base_app(
        service=settings.service_name,
        title="Herald notifications",
        version=__version__,
        description="Inbox API, preference-aware delivery and delivery records.",
        lifespan=lifespan,
    )
    app.include_router(notifications_router)
    app.include_router(deliveries_router)
    app.include_router(emails_router)
    app.include_router(dead_letter_router(queue_names(settings)))
    return app
