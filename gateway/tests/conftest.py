"""Fixtures: a real gateway process-in-test (uvicorn on a free port) in front of stand-ins.

Redis and RabbitMQ are the real servers (``make_settings``); the four services are the
stand-ins from :mod:`standins`, each served by uvicorn on its own port and reached
through the gateway's own pooled clients; a service that is down is a port nobody
listens on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from herald_common.auth import TokenIssuer, TokenVerifier, generate_private_key_pem
from herald_testing import serve_app
from herald_testing.ports import free_port

from herald_gateway.config import GatewaySettings
from herald_gateway.main import create_app

from . import standins

ISSUER = TokenIssuer(generate_private_key_pem(), issuer="herald-users", audience="herald")


def token(user_id: str = "u1", roles: tuple[str, ...] = ()) -> str:
    value, _ = ISSUER.issue(user_id, roles=roles, ttl=timedelta(minutes=10))
    return value


@dataclass
class RunningGateway:
    url: str
    settings: GatewaySettings
    app: Any
    recorders: dict[str, standins.Recorder] = field(default_factory=dict)
    client: httpx.AsyncClient | None = None
    # The in-process server and its task (tests that shut the gateway down).
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        user: str | None = "u1",
        roles: tuple[str, ...] = (),
        bearer: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if bearer is not None:
            headers["authorization"] = bearer
        elif user is not None:
            headers["authorization"] = f"Bearer {token(user, roles)}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        assert self.client is not None
        return await self.client.post("/graphql", json=body, headers=headers)

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway


@pytest.fixture
async def gateway_factory(make_settings, unique) -> AsyncIterator[Any]:
    """``await gateway_factory(down={"recommendations"}, latency=0.1, **settings)``.

    ``latency`` delays every stand-in service call by that many seconds.
    """
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], RunningGateway]] = []
    standin_servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def serve_standins(
        verifier: TokenVerifier,
        recorders: dict[str, standins.Recorder],
        down: set[str],
        latency: float,
    ) -> dict[str, str]:
        """The stand-ins on their ports: ``{"users_url": ..., ...}`` for the settings."""
        urls: dict[str, str] = {}
        for name, make in standins.MAKERS.items():
            recorders[name] = standins.Recorder(latency)
            port = free_port()
            if name not in down:
                standin_servers.append(await serve_app(make(verifier, recorders[name]), port))
            urls[f"{name}_url"] = f"http://127.0.0.1:{port}"
        return urls

    async def start(
        down: set[str] = frozenset(), latency: float = 0.0, **overrides: Any
    ) -> RunningGateway:
        verifier = TokenVerifier(
            issuer="herald-users", audience="herald", public_pem=ISSUER.public_pem
        )
        recorders: dict[str, standins.Recorder] = {}
        urls = await serve_standins(verifier, recorders, set(down), latency)
        port = free_port()
        settings = make_settings(
            GatewaySettings,
            component="gateway",
            jwt_public_key_pem=ISSUER.public_pem,
            cache_queue=f"gateway.cache.t{unique}",
            redis_prefix=f"herald:gw:t{unique}",
            port=port,
            **{**urls, **overrides},
        )
        app = create_app(settings)
        server, task = await serve_app(app, port)
        running = RunningGateway(
            url=f"http://127.0.0.1:{port}",
            settings=settings,
            app=app,
            recorders=recorders,
            server=server,
            serving=task,
        )
        running.client = httpx.AsyncClient(base_url=running.url, timeout=10)
        servers.append((server, task, running))
        return running

    yield start

    for server, task, running in servers:
        if running.client is not None:
            await running.client.aclose()
        server.should_exit = True
        await task
    for server, task in standin_servers:
        server.should_exit = True
        await task
    await _delete_queues(servers)


async def _delete_queues(servers: list[Any]) -> None:
    """Remove the per-test cache queue and its retry/DLQ companions."""
    import aio_pika

    for _, _, running in servers:
        s = running.settings
        connection = await aio_pika.connect(s.amqp_url.get_secret_value())
        async with connection:
            channel = await connection.channel()
            names = [s.cache_queue, f"{s.cache_queue}.dlq"] + [
                f"{s.cache_queue}.retry.{i}" for i in range(len(s.retry_delays_ms))
            ]
            for name in names:
                try:
                    await channel.queue_delete(name)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    channel = await connection.channel()
