"""Fixtures for tests against the real RabbitMQ, Redis and MongoDB-compatible servers.

The servers are started by ``dev/infra.sh up`` (``make test`` does it). Every test gets
its own database and its own exchanges, so tests never see each other's data or events.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
from herald_common.auth import TokenIssuer, generate_private_key_pem
from herald_common.settings import HeraldSettings

from herald_testing.cleanup import Declarations, delete, implied_names, named_after

# The session's SMTP server is a fixture of this plugin too.
from herald_testing.mailbox import smtp_server  # noqa: F401
from herald_testing.ports import free_port, worker_index

REPO_ROOT = Path(__file__).resolve().parents[3]
S = TypeVar("S", bound=HeraldSettings)


def infra_env() -> dict[str, str]:
    """The shared servers' URLs (``HERALD_MONGODB_URI``, ``HERALD_AMQP_URL``,
    ``HERALD_REDIS_URL``): a variable set in the environment wins over ``.run/infra.env``
    (written by ``dev/infra.sh up``), which wins over the local defaults."""
    env = {
        "HERALD_MONGODB_URI": "mongodb://127.0.0.1:27017",
        "HERALD_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
        "HERALD_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    env_file = REPO_ROOT / ".run" / "infra.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            line = line.strip().removeprefix("export ")
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value.strip().strip("'\"")
    for key in env:
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.split(",")[0])
    host = parsed.hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def infra() -> Iterator[dict[str, str]]:
    """URLs of the running servers; fails clearly when they are not up.

    Under pytest-xdist each worker gets a Redis server of its own (:func:`worker_redis`):
    pub/sub channels and the per-user keys (``herald:notifications:<user>``, inbox
    versions) are global in a Redis, so tests of two workers using the same user id
    would hear each other's pushes."""
    env = infra_env()
    missing = [
        name
        for name, key, port in (
            ("MongoDB-compatible server", "HERALD_MONGODB_URI", 27017),
            ("RabbitMQ", "HERALD_AMQP_URL", 5672),
            ("Redis", "HERALD_REDIS_URL", 6379),
        )
        if not _reachable(env[key], port)
    ]
    if missing:
        pytest.fail(
            f"not reachable: {', '.join(missing)}; start them with `dev/infra.sh up`",
            pytrace=False,
        )
    with worker_redis() as url:
        if url is not None:
            env["HERALD_REDIS_URL"] = url
        yield env


@contextlib.contextmanager
def worker_redis() -> Iterator[str | None]:
    """A throwaway ``redis-server`` (no persistence) for this xdist worker, its URL;
    None outside xdist (the shared server is used)."""
    if worker_index() is None:
        yield None
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="herald-redis-") as directory:
        process = subprocess.Popen(  # noqa: S603 - the Debian binary, fixed arguments
            [
                binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", directory, "--logfile", "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 15
            while not _reachable(f"redis://127.0.0.1:{port}", port):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the worker's redis-server on port {port} did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def unique() -> str:
    """A short id for names that must not clash with other tests."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_settings(infra: dict[str, str], unique: str) -> Iterator[Callable[..., Any]]:
    """Build a component's settings pointing at the real servers, isolated per test:
    database ``t_<id>_<component>``, exchanges ``herald.events.t<id>`` and
    ``herald.dlx.t<id>``, short retry delays. Afterwards the databases are dropped and
    the queues and exchanges named after the test's id are deleted
    (:mod:`herald_testing.cleanup`): those declared in this process while the test ran
    and those its settings imply."""
    created: list[HeraldSettings] = []
    declarations = Declarations()
    recording = declarations.recording()
    recording.__enter__()

    def factory(cls: type[S] = HeraldSettings, component: str = "common", **overrides: Any) -> S:
        values: dict[str, Any] = {
            "environment": "test",
            "service_name": component,
            "log_json": False,
            "mongodb_uri": infra["HERALD_MONGODB_URI"],
            "mongodb_db": f"t_{unique}_{component}",
            "amqp_url": infra["HERALD_AMQP_URL"],
            "redis_url": infra["HERALD_REDIS_URL"],
            "events_exchange": f"herald.events.t{unique}",
            "dead_letter_exchange": f"herald.dlx.t{unique}",
            "retry_delays_ms": [100, 200],
        }
        values.update(overrides)
        settings = cls(**values)
        created.append(settings)
        return settings

    try:
        yield factory
    finally:
        recording.__exit__(None, None, None)
    _delete_amqp(infra["HERALD_AMQP_URL"], unique, created, declarations)

    import pymongo

    for settings in created:
        try:
            client: Any = pymongo.MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=2000)
            client.drop_database(settings.mongodb_db)
            client.close()
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort
            print(f"could not drop test database {settings.mongodb_db}: {exc}")


def settings_factory(
    make_settings: Callable[..., Any], cls: type[S], component: str, **defaults: Any
) -> Callable[..., S]:
    """``make_settings`` for one component with a test suite's ``defaults``:
    ``build(**overrides)`` gives its settings, keyword overrides winning."""

    def build(**overrides: Any) -> S:
        settings: S = make_settings(cls, component=component, **{**defaults, **overrides})
        return settings

    return build


@pytest.fixture(scope="session")
def issuer() -> TokenIssuer:
    """A token issuer with a key of its own that mints tokens as the users service does
    (issuer ``herald-users``, audience ``herald``); services under test trust its
    ``public_pem``."""
    return TokenIssuer(generate_private_key_pem(), issuer="herald-users", audience="herald")


def _delete_amqp(
    default_url: str, unique: str, created: list[HeraldSettings], declared: Declarations
) -> None:
    """Delete the test's queues and exchanges: only names that carry its id."""
    by_url: dict[str, tuple[set[str], set[str]]] = {}
    for settings in created:
        queues, exchanges = implied_names(settings)
        q, x = by_url.setdefault(settings.amqp_url.get_secret_value(), (set(), set()))
        q |= queues
        x |= exchanges
    q, x = by_url.setdefault(default_url, (set(), set()))
    q |= declared.queues
    x |= declared.exchanges
    for url, (queues, exchanges) in by_url.items():
        try:
            delete(
                url,
                {n for n in queues if named_after(n, unique)},
                {n for n in exchanges if named_after(n, unique)},
            )
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort
            print(f"could not delete the queues of test {unique}: {exc}")


@pytest.fixture
async def broker_for(make_settings: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Connect :class:`herald_common.messaging.Broker` instances; closed after the test."""
    from herald_common.messaging import Broker

    brokers: list[Broker] = []

    async def connect(settings: HeraldSettings | None = None, source: str = "test") -> Broker:
        broker = Broker(settings or make_settings(), source=source)
        await broker.connect()
        brokers.append(broker)
        return broker

    yield connect
    for broker in brokers:
        await broker.close()
