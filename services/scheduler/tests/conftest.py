"""Fixtures: the scheduler on the real MongoDB-compatible server, RabbitMQ and Redis.

Each test gets its own database, exchanges and queue names (``make_settings`` plus a
unique queue prefix), a token issuer whose public key the service trusts, a way to seed
the user replica, and a *sink*: a queue bound to the events the scheduler publishes, so
tests consume ``notification.requested`` exactly as the notifications service would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import mongoengine
import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db
from herald_common.events import Envelope, NotificationRequested, make_event
from herald_common.messaging import Broker
from herald_common.preferences import Preferences
from herald_scheduler.config import SchedulerSettings
from herald_scheduler.models import ensure_indexes
from herald_testing import eventually
from herald_testing.infra import settings_factory


@pytest.fixture
def scheduler_settings(make_settings, unique, issuer) -> Callable[..., SchedulerSettings]:
    """Settings factory for the scheduler; keyword overrides win."""
    return settings_factory(
        make_settings,
        SchedulerSettings,
        "scheduler",
        queue_prefix=f"scheduler.t{unique}",
        order_cancel_probability=0.0,
        jwt_public_key_pem=issuer.public_pem,
        fanout_batch_size=100,
    )


@pytest.fixture
def db(scheduler_settings, _cleanup_queues) -> Iterable[SchedulerSettings]:
    """A connected database (mongoengine default alias) and its settings."""
    settings = scheduler_settings()
    connect_db(settings)
    ensure_indexes()
    replica.ensure_indexes()
    yield settings
    disconnect_db()


@dataclass
class Sink:
    """Everything published to the test's exchange under ``keys``, in arrival order."""

    broker: Broker
    queue: str
    events: list[Envelope[Any]] = field(default_factory=list)

    def of(self, type_: str) -> list[Any]:
        return [e.payload for e in self.events if e.type == type_]

    @property
    def requests(self) -> list[NotificationRequested]:
        return [p for p in self.of("notification.requested") if p.source != "test-marker"]

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait until everything published before this call has arrived: send a marker
        after it and wait for the marker (one queue keeps arrival order)."""
        marker = make_event(
            "notification.requested",
            NotificationRequested(
                idempotency_key=f"marker-{len(self.events)}-{datetime.now(UTC).timestamp()}",
                user_id="marker",
                type="promotion",
                content="marker",
                source="test-marker",
                requested_at=datetime.now(UTC),
            ),
            source="test",
        )
        # Straight into the sink's queue (default exchange): works whatever it is bound to.
        await self.broker.publish_raw(
            marker.to_bytes(), exchange="", routing_key=self.queue, type_=marker.type
        )
        await eventually(lambda: any(e.id == marker.id for e in self.events), timeout=timeout)


@pytest.fixture
async def make_sink(unique, _cleanup_queues) -> AsyncIterator[Callable[..., Any]]:
    sinks: list[Sink] = []

    async def build(broker: Broker, keys: Iterable[str] = ("#",), name: str = "sink") -> Sink:
        queue = f"{name}.t{unique}.{len(sinks)}"
        sink = Sink(broker, queue)

        async def collect(event: Envelope[Any]) -> None:
            sink.events.append(event)

        await broker.consume(queue, list(keys), collect)
        sinks.append(sink)
        return sink

    yield build
    await asyncio.sleep(0)


@pytest.fixture
async def _cleanup_queues(infra, unique) -> AsyncIterator[None]:
    """Delete this test's queues afterwards so the broker does not keep their messages."""
    yield
    names = [f"herald.events.t{unique}.unrouted"]
    for prefix in (f"scheduler.t{unique}", f"sink.t{unique}"):
        for suffix in ("users", "activity", "campaigns", "0", "1", "2"):
            base = f"{prefix}.{suffix}"
            names += [base, f"{base}.dlq", f"{base}.retry.0", f"{base}.retry.1"]
    connection = await aio_pika.connect(infra["HERALD_AMQP_URL"])
    try:
        channel = await connection.channel()
        for name in names:
            # Deleting a queue that does not exist is not an error in RabbitMQ.
            await channel.queue_delete(name)
    finally:
        await connection.close()


@pytest.fixture
def seed_users() -> Callable[..., list[str]]:
    """Insert users straight into the replica (as ``user.registered`` would leave them).

    ``seed_users(n, prefix="u", preferences=lambda i: {...}, name=lambda i: "...")``
    """

    def seed(
        n: int,
        *,
        prefix: str = "u",
        preferences: Callable[[int], dict[str, Any]] | None = None,
        name: Callable[[int], str] | None = None,
        chunk: int = 2000,
    ) -> list[str]:
        coll = mongoengine.get_db()[replica.COLLECTION]
        now = datetime.now(UTC)
        default_prefs = Preferences().model_dump(mode="json")
        ids: list[str] = []
        docs: list[dict[str, Any]] = []
        for i in range(n):
            uid = f"{prefix}{i:06d}"
            ids.append(uid)
            prefs = {**default_prefs, **(preferences(i) if preferences else {})}
            docs.append(
                {
                    "_id": uid,
                    "bucket": replica.bucket_of(uid),
                    "revision": 1,
                    "deleted": False,
                    "name": name(i) if name else f"User {i}",
                    "email": f"{uid}@example.com",
                    "preferences": prefs,
                    "roles": [],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(docs) >= chunk:
                coll.insert_many(docs, ordered=False)
                docs = []
        if docs:
            coll.insert_many(docs, ordered=False)
        return ids

    return seed
