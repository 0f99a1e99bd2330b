"""All of Herald as real processes for the end-to-end tests.

The session fixture runs ``dev/run.sh up`` (the same script as ``make up``) with its
own free ports, its own RabbitMQ virtual host, Redis database and MongoDB database
prefix, and a private pid/log folder, so it never collides with a ``make up`` running
on the default ports. Teardown stops the processes and drops what the run created.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import pytest
from herald_testing.ports import free_port

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "dev" / "run.sh"
INFRA = REPO / "dev" / "infra.sh"
ADMIN = ("admin@herald.local", "herald-admin-local")


def _script(script: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    """Run one of the repository's own dev scripts (fixed paths, no user input)."""
    return subprocess.run(
        ["/bin/bash", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _rabbitmqctl(*args: str) -> bool:
    return _script(INFRA, "rabbitmqctl", *args, timeout=60).returncode == 0


@dataclass
class Herald:
    """The running system as seen from outside: the gateway URL and the run folder."""

    url: str
    run_dir: Path
    env: dict[str, str]

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    @property
    def ws_url(self) -> str:
        return self.graphql.replace("http://", "ws://")

    def pid(self, component: str) -> int:
        return int((self.run_dir / f"{component}.pid").read_text().strip())

    def up(self) -> None:
        """Start whatever is not running (idempotent, like ``make up``)."""
        result = _script(RUN, "up", env=self.env)
        if result.returncode != 0:
            logs = _script(RUN, "logs", env=self.env).stdout
            pytest.fail(f"dev/run.sh up failed:\n{result.stdout}\n{result.stderr}\n{logs}")


@contextmanager
def running_herald(
    infra: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    servers: dict[str, str] | None = None,
    *,
    settings: dict[str, str] | None = None,
    rabbitmqctl: Callable[..., bool] = _rabbitmqctl,
) -> Iterator[Herald]:
    """All of Herald, isolated as described above. ``servers`` replaces the URLs the
    processes use (e.g. through a fault-injection proxy, or private servers; then
    ``rabbitmqctl`` is the one of the broker in ``servers``); ``settings`` are more
    ``HERALD_*`` variables. Databases are dropped from ``infra``'s server."""
    run_id = uuid.uuid4().hex[:8]
    run_dir = tmp_path_factory.mktemp(f"herald-e2e-{run_id}")
    vhost = f"herald-e2e-{run_id}"
    amqp = urlparse((servers or infra)["HERALD_AMQP_URL"])
    own_vhost = rabbitmqctl("add_vhost", vhost) and rabbitmqctl(
        "set_permissions", "-p", vhost, amqp.username or "guest", ".*", ".*", ".*"
    )
    env = {
        **os.environ,
        **infra,
        **(servers or {}),
        **(settings or {}),
        "HERALD_RUN_DIR": str(run_dir),
        "HERALD_RUN_SKIP_INFRA": "1",
        "HERALD_RUN_DB_PREFIX": f"e2e_{run_id}",
        "HERALD_SEED_USERS": "30",
        "HERALD_SEED_PRODUCTS": "120",
        "HERALD_SEED_EVENTS": "1500",
        "HERALD_GATEWAY_HOST": "127.0.0.1",
        # A loaded 2-core CI machine can be slow; give internal calls room.
        "HERALD_GATEWAY_SERVICE_TIMEOUT_SECONDS": "15",
        "HERALD_GATEWAY_REDIS_PREFIX": f"herald:gw:e2e{run_id}",
        "HERALD_ENVIRONMENT": "local",
    }
    for name in ("USERS", "NOTIFICATIONS", "RECOMMENDATIONS", "SCHEDULER", "GATEWAY"):
        env[f"HERALD_{name}_PORT"] = str(free_port())
    # The run's own SMTP server (dev/run.sh starts it) and unsubscribe links to this gateway.
    env["HERALD_NOTIFICATIONS_SMTP_PORT"] = str(free_port())
    env["HERALD_MAIL_DIR"] = str(run_dir / "mail")
    env["HERALD_NOTIFICATIONS_PUBLIC_URL"] = f"http://127.0.0.1:{env['HERALD_GATEWAY_PORT']}"
    if own_vhost:
        amqp_used = urlparse(env["HERALD_AMQP_URL"])
        env["HERALD_AMQP_URL"] = urlunparse(amqp_used._replace(path=f"/{vhost}"))
    else:
        # No rabbitmqctl (a broker we do not manage): separate exchanges and queues.
        env["HERALD_EVENTS_EXCHANGE"] = f"herald.events.e2e{run_id}"
        env["HERALD_DEAD_LETTER_EXCHANGE"] = f"herald.dlx.e2e{run_id}"
        suffix = f"e2e{run_id}"
        env["HERALD_NOTIFICATIONS_USERS_QUEUE"] = f"notifications.users.{suffix}"
        env["HERALD_NOTIFICATIONS_REQUESTS_QUEUE"] = f"notifications.requests.{suffix}"
        env["HERALD_NOTIFICATIONS_EMAIL_QUEUE"] = f"notifications.email.{suffix}"
        env["HERALD_RECOMMENDATIONS_ACTIVITY_QUEUE"] = f"recommendations.activity.{suffix}"
        env["HERALD_RECOMMENDATIONS_USERS_QUEUE"] = f"recommendations.users.{suffix}"
        env["HERALD_SCHEDULER_QUEUE_PREFIX"] = f"scheduler.{suffix}"
        env["HERALD_GATEWAY_CACHE_QUEUE"] = f"gateway.cache.{suffix}"
    system = Herald(url=f"http://127.0.0.1:{env['HERALD_GATEWAY_PORT']}", run_dir=run_dir, env=env)
    try:
        system.up()
        yield system
    finally:
        _script(RUN, "down", env=env, timeout=120)
        if own_vhost:
            rabbitmqctl("delete_vhost", vhost)
        try:
            import pymongo

            client: Any = pymongo.MongoClient(infra["HERALD_MONGODB_URI"])
            for db in client.list_database_names():
                if db.startswith(f"e2e_{run_id}_"):
                    client.drop_database(db)
            client.close()
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort
            print(f"could not drop the e2e databases: {exc}")


@pytest.fixture(scope="session")
def herald(infra: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Herald]:
    with running_herald(infra, tmp_path_factory) as system:
        yield system


class GraphQL:
    """A small GraphQL client over HTTP."""

    def __init__(self, herald: Herald, client: httpx.AsyncClient) -> None:
        self.herald = herald
        self.client = client

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.client.post(self.herald.graphql, json=body, headers=headers)

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The ``data`` of a successful operation; fails the test on any error."""
        response = await self.raw(query, variables, token)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, json.dumps(body)[:2000]
        return body["data"]

    async def register(self, name: str, prefs: dict[str, Any] | None = None) -> dict[str, Any]:
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        data = await self(
            """mutation Register($input: RegisterInput!) {
                 register(input: $input) { accessToken refreshToken expiresIn user { id email } }
               }""",
            {
                "input": {
                    "name": name,
                    "email": email,
                    "password": "Correct-Horse-42",
                    "preferences": prefs,
                }
            },
        )
        return {**data["register"], "email": email, "password": "Correct-Horse-42"}

    async def login(self, email: str, password: str) -> str:
        data = await self(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            {"e": email, "p": password},
        )
        return str(data["login"]["accessToken"])


@pytest.fixture
async def gql(herald: Herald) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        yield GraphQL(herald, client)
