"""Fixtures: the notifications service on the real MongoDB-compatible server, Redis and
RabbitMQ, with its own database, exchanges and queues per test and a settable clock.

Tests publish events exactly as the producers do (users: ``user.*``; scheduler and
recommendations: ``notification.requested``) and talk to the HTTP API with tokens
minted by a test issuer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from herald_common.auth import TokenIssuer
from herald_common.db import run_db
from herald_common.events import (
    Envelope,
    NotificationRequested,
    UserDeleted,
    UserPreferencesUpdated,
    UserRegistered,
    make_event,
)
from herald_common.messaging import Broker
from herald_common.preferences import Preferences
from herald_common.replica import get_users
from herald_notifications.config import NotificationsSettings
from herald_notifications.main import create_app
from herald_notifications.models import DeliveryRecord, Notification
from herald_testing import eventually
from herald_testing.infra import settings_factory

# A Tuesday noon in UTC; tests move it explicitly.
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    """A frozen, settable clock: the service's only source of time in tests."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def shift(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Harness:
    """One or more running notifications apps sharing a database and queues, a
    publisher standing in for the other services, and helpers."""

    apps: list[Any]
    clients: list[httpx.AsyncClient]
    settings: NotificationsSettings
    publisher: Broker
    issuer: TokenIssuer
    clock: Clock
    revisions: dict[str, int] = field(default_factory=dict)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.clients[0]

    @property
    def service(self) -> Any:
        return self.apps[0].state.notifications

    def auth(self, user_id: str, *roles: str) -> dict[str, str]:
        token, _ = self.issuer.issue(user_id, roles=list(roles), ttl=timedelta(minutes=15))
        return {"authorization": f"Bearer {token}"}

    async def register(self, user_id: str, wait: bool = True, **preferences: Any) -> None:
        """Publish ``user.registered`` and wait until the replica has it."""
        self.revisions[user_id] = 1
        await self.publisher.publish(
            make_event(
                "user.registered",
                UserRegistered(
                    user_id=user_id,
                    name=user_id.title(),
                    email=f"{user_id}@example.com",
                    preferences=Preferences(**preferences),
                    revision=1,
                    created_at=START,
                ),
                source="users",
            )
        )
        if wait:
            await eventually(lambda: run_db(lambda: user_id in get_users([user_id])))

    async def update_preferences(self, user_id: str, **preferences: Any) -> None:
        revision = self.revisions[user_id] = self.revisions.get(user_id, 1) + 1
        await self.publisher.publish(
            make_event(
                "user.preferences_updated",
                UserPreferencesUpdated(
                    user_id=user_id,
                    name=user_id.title(),
                    email=f"{user_id}@example.com",
                    preferences=Preferences(**preferences),
                    revision=revision,
                ),
                source="users",
            )
        )

    async def delete_user(self, user_id: str) -> None:
        revision = self.revisions[user_id] = self.revisions.get(user_id, 1) + 1
        await self.publisher.publish(
            make_event(
                "user.deleted", UserDeleted(user_id=user_id, revision=revision), source="users"
            )
        )

    def request_event(
        self,
        key: str,
        user_id: str,
        type_: str = "promotion",
        content: Any = None,
        *,
        collapse_key: str | None = None,
        requested_at: datetime | None = None,
        source: str = "scheduler",
    ) -> Envelope[Any]:
        return make_event(
            "notification.requested",
            NotificationRequested(
                idempotency_key=key,
                user_id=user_id,
                type=type_,
                content=content if content is not None else {"title": key, "body": "..."},
                collapse_key=collapse_key,
                source=source,
                requested_at=requested_at or self.clock(),
            ),
            source=source,
        )

    async def request(self, key: str, user_id: str, type_: str = "promotion", **kw: Any) -> None:
        await self.publisher.publish(self.request_event(key, user_id, type_, **kw))

    async def settled(self, *keys: str) -> None:
        """Wait until every key has a notification or a delivery record."""

        def done() -> bool:
            stored = Notification.objects(idempotency_key__in=keys).distinct("idempotency_key")
            recorded = DeliveryRecord.objects(idempotency_key__in=keys).distinct("idempotency_key")
            return set(stored) | set(recorded) >= set(keys)

        await eventually(lambda: run_db(done))

    async def relayed(self) -> None:
        """Wait until the outbox relay has published every staged event."""
        await eventually(
            lambda: run_db(lambda: Notification.objects(outbox_pending=True).count() == 0)
        )

    async def inbox(self, user_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            "/v1/notifications", params=params, headers=self.auth(user_id)
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def unread(self, user_id: str) -> int:
        response = await self.client.get(
            "/v1/notifications/unread-count", headers=self.auth(user_id)
        )
        assert response.status_code == 200, response.text
        return int(response.json()["count"])

    async def deliveries(self, user_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/deliveries", params=params, headers=self.auth(user_id)
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def notifications_settings(
    make_settings, issuer, unique, smtp_server
) -> Callable[..., NotificationsSettings]:
    return settings_factory(
        make_settings,
        NotificationsSettings,
        "notifications",
        jwt_public_key_pem=issuer.public_pem,
        users_queue=f"notifications.users.t{unique}",
        requests_queue=f"notifications.requests.t{unique}",
        email_queue=f"notifications.email.t{unique}",
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        run_sweeps=False,  # tests run the sweeps with an injected clock
        batch_wait_ms=20,
    )


async def _harness(
    settings: NotificationsSettings, issuer: TokenIssuer, broker_for: Any, replicas: int
) -> AsyncIterator[Harness]:
    clock = Clock()
    apps = [create_app(settings, clock=clock) for _ in range(replicas)]
    managers = [LifespanManager(app, startup_timeout=60) for app in apps]
    clients: list[httpx.AsyncClient] = []
    try:
        for manager in managers:
            await manager.__aenter__()
            clients.append(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app), base_url="http://notifications"
                )
            )
        publisher = await broker_for(settings, source="test-publisher")
        yield Harness(apps, clients, settings, publisher, issuer, clock)
    finally:
        for client in clients:
            await client.aclose()
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)


@pytest.fixture
async def harness(notifications_settings, issuer, broker_for) -> AsyncIterator[Harness]:
    """One notifications process."""
    async for h in _harness(notifications_settings(), issuer, broker_for, 1):
        yield h


@pytest.fixture
async def replicas(notifications_settings, issuer, broker_for) -> AsyncIterator[Harness]:
    """Three notifications processes competing on the same queues and database."""
    async for h in _harness(notifications_settings(), issuer, broker_for, 3):
        yield h
