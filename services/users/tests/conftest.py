"""Fixtures: the users service on the real MongoDB-compatible server, Redis and RabbitMQ.

Each test gets its own database, exchanges and rate-limit key prefix (``make_settings``),
a signing key generated once per session, cheap argon2 parameters and an injectable
clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from herald_common.auth import generate_private_key_pem
from herald_common.events import Envelope
from herald_testing.infra import settings_factory
from herald_users.config import UsersSettings
from herald_users.main import create_app
from pydantic import SecretStr

STRONG = "correct-Horse-battery"  # passes the policy
ADMIN_EMAIL = "admin@herald.test"
ADMIN_PASSWORD = "admin-Password-1"


class Clock:
    """A settable clock for the service (token times, refresh expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def shift(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture(scope="session")
def signing_key() -> str:
    return generate_private_key_pem()


@pytest.fixture
def users_settings(make_settings, signing_key, unique) -> Callable[..., UsersSettings]:
    """Settings factory for the users service; keyword overrides win."""
    return settings_factory(
        make_settings,
        UsersSettings,
        "users",
        private_key_pem=SecretStr(signing_key),
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        argon2_parallelism=1,
        rate_limit_prefix=f"herald:test:{unique}:ratelimit",
        admin_email=ADMIN_EMAIL,
        admin_password=SecretStr(ADMIN_PASSWORD),
        refresh_sweep_interval_seconds=3600,
    )


@dataclass
class Users:
    """A running users app and an HTTP client for it."""

    app: Any
    client: httpx.AsyncClient
    settings: UsersSettings
    clock: Clock

    # Test modules cannot import this conftest (importlib import mode): constants ride here.
    password = STRONG
    admin_email = ADMIN_EMAIL
    admin_password = ADMIN_PASSWORD

    async def register(
        self,
        email: str,
        password: str = STRONG,
        name: str = "Ann Example",
        preferences: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "email": email, "password": password}
        if preferences is not None:
            body["preferences"] = preferences
        response = await self.client.post("/v1/auth/register", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def login(self, email: str, password: str = STRONG, **kw: Any) -> httpx.Response:
        return await self.client.post(
            "/v1/auth/login", json={"email": email, "password": password}, **kw
        )

    async def admin_token(self) -> str:
        response = await self.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def start_users(users_settings) -> AsyncIterator[Callable[..., Any]]:
    """Start users apps (lifespan included); all are stopped after the test."""
    running: list[tuple[LifespanManager, httpx.AsyncClient]] = []

    async def start(
        settings: UsersSettings | None = None,
        clock: Clock | None = None,
        peer: tuple[str, int] = ("127.0.0.1", 123),
    ) -> Users:
        """``peer`` is the socket address the service sees the test client call from."""
        settings = settings or users_settings()
        clock = clock or Clock()
        app = create_app(settings, clock=clock)
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, raise_app_exceptions=False, client=peer),
            base_url="http://users.test",
        )
        running.append((manager, client))
        return Users(app=app, client=client, settings=settings, clock=clock)

    yield start
    for manager, client in reversed(running):
        await client.aclose()
        task = asyncio.ensure_future(manager.__aexit__(None, None, None))
        done, _ = await asyncio.wait({task}, timeout=8)
        if not done:
            import sys

            for tk in asyncio.all_tasks():
                tk.print_stack(limit=12, file=sys.stdout)
        await task


@pytest.fixture
async def users(start_users) -> Users:
    return await start_users()


@dataclass
class EventLog:
    """Every ``user.*`` event published on the test's exchange, in arrival order."""

    events: list[Envelope[Any]] = field(default_factory=list)

    def of(self, user_id: str, type_: str | None = None) -> list[Envelope[Any]]:
        return [
            e
            for e in self.events
            if e.payload.user_id == user_id and (type_ is None or e.type == type_)
        ]

    async def wait_for(self, user_id: str, count: int, type_: str | None = None) -> list[Any]:
        from herald_testing import eventually

        await eventually(lambda: len(self.of(user_id, type_)) >= count)
        return self.of(user_id, type_)


@pytest.fixture
async def user_events(users_settings, broker_for, unique) -> EventLog:
    """Capture ``user.*`` events (declare this fixture before starting the service)."""
    log = EventLog()
    lock = asyncio.Lock()

    async def handler(event: Envelope[Any]) -> None:
        async with lock:
            log.events.append(event)

    broker = await broker_for(users_settings())
    await broker.consume(f"t{unique}.capture", ["user.*"], handler, prefetch=1)
    return log
