"""What the fault tests share: loads published straight to the broker, counts of their
effects in the databases, queue depths of a Herald's vhost, and the scenario "SIGKILL a
consuming service in the middle of a load" (``tests/e2e/test_faults.py`` runs it at CI
size, ``python -m tests.chaos.kill_consumers`` at full size).

Effects are counted by key, duplicates kept: a notification by its idempotency key, a
stored activity by its ``<event id>:<index>`` id, an order by its origin
``activity:<event id>`` (one purchase per event, so one order per event).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymongo
from herald_common.events import (
    Activity,
    ActivityRecorded,
    Envelope,
    NotificationRequested,
    UserRegistered,
    make_event,
)
from herald_common.messaging import Broker
from herald_common.preferences import Preferences
from herald_common.settings import HeraldSettings
from herald_testing import eventually
from websockets.asyncio.client import connect

from .conftest import INFRA, Herald, _script

# Runs a rabbitmqctl command against one broker (the shared one, or a private node).
Ctl = Callable[..., subprocess.CompletedProcess[str]]

# The services that consume RabbitMQ messages and whose every message has a countable
# effect (the gateway's cache invalidations have none: see tests/chaos/README.md),
# grouped by the load they share: requests, and purchases (both of the others take them).
CONSUMERS = ("notifications", "recommendations", "scheduler")
SHARED_LOADS = (("notifications",), ("recommendations", "scheduler"))


def shared_rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    """rabbitmqctl of the shared broker of dev/infra.sh."""
    return _script(INFRA, "rabbitmqctl", *args, timeout=60)


def load_size(default: int) -> int:
    """Messages per scenario: ``HERALD_FAULT_LOAD`` (the tests/chaos commands set it)."""
    return int(os.environ.get("HERALD_FAULT_LOAD", default))


def report(result: dict[str, Any]) -> None:
    """Append one scenario's counts to ``HERALD_FAULT_REPORT`` (JSON lines), if set."""
    path = os.environ.get("HERALD_FAULT_REPORT")
    if path:
        with Path(path).open("a") as f:
            f.write(json.dumps(result) + "\n")


def queue_depths(ctl: Ctl, vhost: str) -> dict[str, int]:
    """Ready + unacknowledged messages per queue of ``vhost``."""
    result = ctl("list_queues", "-q", "-p", vhost, "name", "messages")
    assert result.returncode == 0, result.stderr
    depths: dict[str, int] = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


async def drained(ctl: Ctl, vhost: str, timeout: float = 300) -> None:
    """Every queue of the vhost empty (consumers caught up, retries done, no dead
    letters); the broker's holding queue for events nobody subscribes to is not one."""

    depths: dict[str, int] = {}

    def empty() -> bool:
        nonlocal depths
        depths = {k: v for k, v in queue_depths(ctl, vhost).items() if not k.endswith(".unrouted")}
        return bool(depths) and not any(depths.values())

    async def check() -> bool:
        return await asyncio.to_thread(empty)

    try:
        await eventually(check, timeout=timeout, interval=2)
    except AssertionError:
        left = {k: v for k, v in depths.items() if v}
        raise AssertionError(
            f"queues of {vhost} not drained within {timeout:.0f}s: {left}"
        ) from None


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ------------------------------------------------------------------------------ loads


def requests_for(user_id: str, run: str, count: int) -> list[Envelope[Any]]:
    now = datetime.now(UTC)
    return [
        make_event(
            "notification.requested",
            NotificationRequested(
                idempotency_key=f"fault:{run}:{i}",
                user_id=user_id,
                type="order_update",
                content={"title": f"Update {i}", "body": "fault test"},
                source="faults",
                requested_at=now,
            ),
            source="faults",
        )
        for i in range(count)
    ]


def users_for(run: str, count: int) -> list[Envelope[Any]]:
    """``user.registered`` of ``count`` shoppers of a load, for every service's replica."""
    now = datetime.now(UTC)
    return [
        make_event(
            "user.registered",
            UserRegistered(
                user_id=f"fault-{run}-{k}",
                name=f"Shopper {k}",
                email=f"fault-{run}-{k}@example.com",
                preferences=Preferences(),
                revision=1,
                created_at=now,
            ),
            source="faults",
        )
        for k in range(count)
    ]


def purchases_for(users: Sequence[str], run: str, count: int, product: str) -> list[Any]:
    """``count`` ``activity.recorded`` events of one purchase each (own session each),
    spread over ``users``: recommendations stores one activity per event, the scheduler
    places one order per event."""
    now = datetime.now(UTC)
    return [
        make_event(
            "activity.recorded",
            ActivityRecorded(
                activities=[
                    Activity(
                        user_id=users[i % len(users)],
                        kind="purchase",
                        product_id=product,
                        occurred_at=now,
                        session_id=f"fault:{run}:{i}",
                        product_name="Fault-test product",
                        price=1.0,
                    )
                ]
            ),
            source="faults",
        )
        for i in range(count)
    ]


async def publish_all(
    publisher: Broker, events: Sequence[Envelope[Any]], *, chunk: int = 500, timeout: float = 60
) -> None:
    """Publish with confirms, ``chunk`` at a time (a few thousand confirms outstanding at
    once would time out on a loaded machine and be sent again)."""
    for start in range(0, len(events), chunk):
        await publisher.publish_many(events[start : start + chunk], timeout=timeout)


@asynccontextmanager
async def publisher_on(amqp_url: str) -> AsyncIterator[Broker]:
    """Herald's own publisher class on ``amqp_url`` (confirmed publishes)."""
    broker = Broker(HeraldSettings(environment="test", amqp_url=amqp_url), source="faults")
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


# ---------------------------------------------------------------------------- effects


class Effects:
    """Reads the effects of events in one Herald's databases (the real server)."""

    def __init__(self, mongo_uri: str, db_prefix: str) -> None:
        self.client: Any = pymongo.MongoClient(mongo_uri)
        self.inbox = self.client[f"{db_prefix}_notifications"]["notifications"]
        self.activities = self.client[f"{db_prefix}_recommendations"]["activities"]
        self.orders = self.client[f"{db_prefix}_scheduler"]["orders"]

    def close(self) -> None:
        self.client.close()

    async def notification_keys(self, user_id: str, run: str) -> list[str]:
        """Every stored idempotency key of ``run`` (duplicates kept, to be counted)."""

        def read() -> list[str]:
            return [
                doc["idempotency_key"]
                for doc in self.inbox.find({"user_id": user_id}, {"idempotency_key": 1})
                if doc["idempotency_key"].startswith(f"fault:{run}:")
            ]

        return await asyncio.to_thread(read)

    async def activity_ids(self, users: Sequence[str]) -> list[str]:
        """Ids of the stored activities of ``users``."""
        return await self._read(self.activities, users, "_id")

    async def order_origins(self, users: Sequence[str]) -> list[str]:
        """What placed each order of ``users`` (``activity:<event id>``)."""
        return await self._read(self.orders, users, "origin")

    @staticmethod
    async def _read(coll: Any, users: Sequence[str], field: str) -> list[str]:
        def read() -> list[str]:
            found = coll.find({"user_id": {"$in": list(users)}}, {field: 1})
            return [str(d.get(field)) for d in found]

        return await asyncio.to_thread(read)


Reader = Callable[[], Awaitable[list[str]]]


async def stored_once(effects: Effects, user_id: str, run: str, count: int) -> int:
    """All ``count`` requests of ``run`` (:func:`requests_for`) stored, none twice."""
    expected = {f"fault:{run}:{i}" for i in range(count)}
    return await exactly_once(lambda: effects.notification_keys(user_id, run), expected)


async def exactly_once(
    read: Reader, expected: set[str], *, timeout: float = 300, what: str = "effects"
) -> int:
    """Wait until every expected key is there, then check none is there twice and no
    other key belongs to the load; returns how many were counted."""

    found: set[str] = set()

    async def all_there() -> bool:
        nonlocal found
        found = set(await read()) & expected
        return found == expected

    try:
        await eventually(all_there, timeout=timeout, interval=1)
    except AssertionError:
        missing = len(expected) - len(found)
        raise AssertionError(
            f"{what}: {missing} of {len(expected)} missing after {timeout:.0f}s"
        ) from None
    keys = [k for k in await read() if k in expected]
    assert len(keys) == len(expected), f"{what}: {len(keys) - len(expected)} duplicates"
    return len(keys)


# Purchases per shopper of a load: one shopper's activity is one document that every
# message rewrites, so thousands of messages for one user would measure that document.
PURCHASES_PER_USER = 50


@dataclass
class Load:
    """The events of one scenario and what each consuming service must have done once
    per event: name → (reader of the keys, the expected keys)."""

    events: list[Envelope[Any]]
    effects: dict[str, tuple[Reader, set[str]]]
    users: list[Envelope[Any]]


def load_for(
    effects: Effects, service: str, user_id: str, run: str, count: int, product: str
) -> Load:
    """Notification requests for ``user_id`` when ``service`` is notifications, else
    purchases of shoppers announced with the load (both other consumers take them)."""
    if service == "notifications":
        events = requests_for(user_id, run, count)
        keys = {e.payload.idempotency_key for e in events}
        return Load(
            events, {"notifications": (lambda: effects.notification_keys(user_id, run), keys)}, []
        )
    users = users_for(run, max(1, count // PURCHASES_PER_USER))
    ids = [u.payload.user_id for u in users]
    events = purchases_for(ids, run, count, product)
    return Load(
        events,
        {
            "recommendations": (lambda: effects.activity_ids(ids), {f"{e.id}:0" for e in events}),
            "scheduler": (lambda: effects.order_origins(ids), {f"activity:{e.id}" for e in events}),
        },
        users,
    )


@dataclass
class Target:
    """A running Herald the scenario works on."""

    herald: Herald
    publisher: Broker
    effects: Effects
    ctl: Ctl
    vhost: str


async def kill_mid_load(
    target: Target, services: Sequence[str], user_id: str, product: str, count: int
) -> dict[str, Any]:
    """Half the load confirmed; once a tenth has taken effect in each of ``services``,
    they are killed with SIGKILL (process group); the other half is confirmed while they
    are dead; they are restarted. Then every event has exactly one effect in every
    consuming service and every queue drains (no dead letters). Returns the counts.

    ``services`` share a load: notifications (requests), or recommendations and/or the
    scheduler (purchases, which both consume)."""
    run = uuid.uuid4().hex[:8]
    load = load_for(target.effects, services[0], user_id, run, count, product)
    events, wanted = load.events, load.effects
    give_up = max(300.0, count * 0.5)  # a bound to fail at, not a measured speed
    started = time.monotonic()
    await publish_all(target.publisher, load.users)
    await publish_all(target.publisher, events[: count // 2])
    done_at_kill: dict[str, int] = {}

    async def done(service: str) -> int:
        read, keys = wanted[service]
        return len(set(await read()) & keys)

    for service in services:

        async def some_done(service: str = service) -> bool:
            return await done(service) >= count // 10

        await eventually(some_done, timeout=give_up, interval=0.2)
    pids = [target.herald.pid(service) for service in services]
    for pid in pids:
        os.killpg(pid, signal.SIGKILL)
    for service in services:
        done_at_kill[service] = await done(service)
    # The rest is accepted by the broker while the consumers are dead.
    await publish_all(target.publisher, events[count // 2 :])
    for pid in pids:
        await eventually(lambda pid=pid: gone(pid), timeout=30)
    target.herald.up()
    counted = {
        name: await exactly_once(read, keys, timeout=give_up, what=name)
        for name, (read, keys) in wanted.items()
    }
    await drained(target.ctl, target.vhost, timeout=give_up)
    for service, at_kill in done_at_kill.items():
        assert at_kill < count, f"{service} finished before it was killed"
    result = {
        "scenario": "SIGKILL " + " and ".join(services),
        "messages": count,
        "done_at_kill": done_at_kill,
        "once": counted,
        "duplicates": 0,
        "seconds": round(time.monotonic() - started, 1),
    }
    report(result)
    return result


# ------------------------------------------------------------------------ subscriptions


class Subscription:
    """One graphql-transport-ws ``notificationAdded`` subscription: the ids received,
    and how it ended (``None`` while it is open)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.received: list[str] = []
        self.ended: str | None = None
        self.acked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            async with connect(self.url, subprotocols=["graphql-transport-ws"]) as ws:
                auth = {"authorization": f"Bearer {self.token}"}
                await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                query = "subscription { notificationAdded { id content } }"
                await ws.send(
                    json.dumps({"id": "s", "type": "subscribe", "payload": {"query": query}})
                )
                self.acked.set()
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "next" and message["payload"].get("data"):
                        node = message["payload"]["data"]["notificationAdded"]
                        self.received.append(node["content"]["title"])
                    elif message["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                    elif message["type"] in ("error", "complete", "next"):
                        self.ended = f"{message['type']}: {json.dumps(message)[:300]}"
                        return
            self.ended = "closed"
        except Exception as exc:  # noqa: BLE001 - how it ended is what the test reads
            self.ended = f"closed: {exc!r}"

    async def __aenter__(self) -> Subscription:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.acked.wait(), 60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
