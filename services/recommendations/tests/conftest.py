"""Fixtures: the recommendations service on the real servers, isolated per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from herald_common.auth import TokenIssuer
from herald_common.events import Envelope, make_event
from herald_common.preferences import Preferences
from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.main import create_app
from herald_testing.infra import settings_factory


@pytest.fixture
def rec_settings(make_settings, issuer, unique) -> Callable[..., RecommendationsSettings]:
    """Settings factory: small catalog, own queues, fast debounce."""
    return settings_factory(
        make_settings,
        RecommendationsSettings,
        "recommendations",
        jwt_public_key_pem=issuer.public_pem,
        activity_queue=f"recommendations.activity.{unique}",
        users_queue=f"recommendations.users.{unique}",
        catalog_products=300,
        catalog_categories=20,
        incremental_debounce_seconds=0.05,
    )


@dataclass
class Service:
    app: Any
    client: httpx.AsyncClient
    settings: RecommendationsSettings

    def token(self, issuer: TokenIssuer, user_id: str, admin: bool = False) -> dict[str, str]:
        roles = ["admin"] if admin else []
        token, _ = issuer.issue(user_id, roles=roles, ttl=timedelta(minutes=10))
        return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def service(rec_settings) -> AsyncIterator[Service]:
    settings = rec_settings()
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rec.test") as client:
            yield Service(app, client, settings)


def user_registered(user_id: str, recommendations: bool = True) -> Envelope:
    from herald_common.events import UserRegistered

    return make_event(
        "user.registered",
        UserRegistered(
            user_id=user_id,
            name="Ann",
            email=f"{user_id}@example.com",
            preferences=Preferences(recommendations=recommendations),
            revision=1,
            created_at=datetime.now(UTC),
        ),
        source="test",
    )


@pytest.fixture
def registered():
    return user_registered
