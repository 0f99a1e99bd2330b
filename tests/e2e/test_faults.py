"""Faults against all of Herald: a killed consumer, and each server unreachable for a while.

A second Herald is started for this module whose processes reach RabbitMQ, the
MongoDB-compatible server and Redis only through fault-injection TCP proxies
(:class:`herald_testing.faults.ProxyThread`), so a server is made unavailable to Herald
— new connections refused, open ones severed — without stopping the shared server that
other tests use. The test itself publishes and counts straight on the real servers.

What every test proves: clients get typed errors (``extensions.code``, never HTTP 500)
while a server is away, and afterwards every accepted request has exactly one effect
(counted in the database), the queues drain and no dead letters are left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import pymongo
import pytest
from herald_common.events import NotificationRequested, make_event
from herald_common.messaging import Broker
from herald_common.settings import HeraldSettings
from herald_testing import eventually
from herald_testing.faults import ProxyThread, TcpProxy

from .conftest import INFRA, GraphQL, Herald, _script, running_herald

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# How long a server stays unreachable: longer than a request's own retries, shorter
# than the consumers' retry chain (1 s + 5 s + 30 s), so nothing may be dead-lettered.
OUTAGE_SECONDS = 10
LOAD = 2000


class Faulty:
    """The proxied Herald, its proxies and direct clients of the real servers."""

    def __init__(self, herald: Herald, proxies: ProxyThread, by_name: dict[str, TcpProxy]):
        self.herald = herald
        self.proxies = proxies
        self.by_name = by_name
        self.vhost = urlparse(herald.env["HERALD_AMQP_URL"]).path.lstrip("/")
        self.db_prefix = herald.env["HERALD_RUN_DB_PREFIX"]

    def cut(self, name: str) -> None:
        self.proxies.cut(self.by_name[name])

    def restore(self, name: str) -> None:
        self.proxies.restore(self.by_name[name])

    def queues(self) -> dict[str, int]:
        """Ready + unacknowledged messages per queue of this Herald's vhost."""
        result = _script(
            INFRA,
            "rabbitmqctl",
            "list_queues",
            "-q",
            "-p",
            self.vhost,
            "name",
            "messages",
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        depths: dict[str, int] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths


@pytest.fixture(scope="module")
def faulty(infra: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    proxies = ProxyThread()
    by_name = {
        "rabbitmq": proxies.add(infra["HERALD_AMQP_URL"], 5672),
        "mongodb": proxies.add(infra["HERALD_MONGODB_URI"], 27017),
        "redis": proxies.add(infra["HERALD_REDIS_URL"], 6379),
    }
    servers = {
        "HERALD_AMQP_URL": by_name["rabbitmq"].url_through(infra["HERALD_AMQP_URL"]),
        "HERALD_MONGODB_URI": by_name["mongodb"].url_through(infra["HERALD_MONGODB_URI"]),
        "HERALD_REDIS_URL": by_name["redis"].url_through(infra["HERALD_REDIS_URL"]),
    }
    try:
        with running_herald(infra, tmp_path_factory, servers) as herald:
            yield Faulty(herald, proxies, by_name)
    finally:
        proxies.close()


@pytest.fixture
async def fgql(faulty: Faulty) -> AsyncIterator[GraphQL]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield GraphQL(faulty.herald, client)


@pytest.fixture
async def publisher(faulty: Faulty, infra: dict[str, str]) -> AsyncIterator[Broker]:
    """Publishes straight to the real broker, in this Herald's vhost (confirmed)."""
    url = urlunparse(urlparse(infra["HERALD_AMQP_URL"])._replace(path=f"/{faulty.vhost}"))
    broker = Broker(HeraldSettings(environment="test", amqp_url=url), source="faults")
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture
def inbox(faulty: Faulty, infra: dict[str, str]) -> Iterator[Any]:
    client: Any = pymongo.MongoClient(infra["HERALD_MONGODB_URI"])
    yield client[f"{faulty.db_prefix}_notifications"]["notifications"]
    client.close()


def requests_for(user_id: str, run: str, count: int) -> list[Any]:
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


async def keys_in_inbox(inbox: Any, user_id: str, run: str) -> list[str]:
    """Every stored idempotency key of this run (duplicates kept, to be counted)."""

    def read() -> list[str]:
        return [
            doc["idempotency_key"]
            for doc in inbox.find({"user_id": user_id}, {"idempotency_key": 1})
            if doc["idempotency_key"].startswith(f"fault:{run}:")
        ]

    return await asyncio.to_thread(read)


async def exactly_once(inbox: Any, user_id: str, run: str, count: int) -> None:
    """Wait until all ``count`` requests of ``run`` are stored, then check none twice."""

    async def all_there() -> bool:
        return len(set(await keys_in_inbox(inbox, user_id, run))) >= count

    await eventually(all_there, timeout=300, interval=1)
    keys = await keys_in_inbox(inbox, user_id, run)
    assert len(keys) == count, f"{len(keys) - count} duplicates"
    assert set(keys) == {f"fault:{run}:{i}" for i in range(count)}


async def drained(faulty: Faulty) -> None:
    """Every queue of the vhost empty (consumers caught up, retries done, no dead
    letters); the broker's holding queue for events nobody subscribes to is not one."""

    def empty() -> bool:
        depths = {k: v for k, v in faulty.queues().items() if not k.endswith(".unrouted")}
        return bool(depths) and not any(depths.values())

    async def check() -> bool:
        return await asyncio.to_thread(empty)

    await eventually(check, timeout=300, interval=2)


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def test_sigkill_notifications_mid_load(faulty, fgql, publisher, inbox) -> None:
    """Every confirmed request is stored exactly once although the consumer is killed
    with SIGKILL while it works through them, and keeps being published to meanwhile."""
    ann = await fgql.register("Ann")
    user_id, run = ann["user"]["id"], uuid.uuid4().hex[:8]
    events = requests_for(user_id, run, LOAD)
    half = LOAD // 2
    await publisher.publish_many(events[:half])

    async def some_stored() -> bool:
        return len(await keys_in_inbox(inbox, user_id, run)) >= LOAD // 10

    await eventually(some_stored, timeout=120, interval=0.2)
    pid = faulty.herald.pid("notifications")
    os.killpg(pid, signal.SIGKILL)
    stored_at_kill = len(set(await keys_in_inbox(inbox, user_id, run)))
    # The rest is accepted by the broker while the consumer is dead.
    await publisher.publish_many(events[half:])
    await eventually(lambda: _gone(pid), timeout=30)
    faulty.herald.up()
    await exactly_once(inbox, user_id, run, LOAD)
    assert stored_at_kill < LOAD
    await drained(faulty)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_rabbitmq_unavailable(faulty, fgql, publisher, inbox) -> None:
    """Broker away: reads answer, a mutation that must publish either waits for the broker
    and succeeds or fails with UNAVAILABLE; afterwards every accepted one took effect."""
    bob = await fgql.register("Bob")
    token, user_id = bob["accessToken"], bob["user"]["id"]
    product = (await fgql("{ recommendations(first: 1) { productId } }", token=token))[
        "recommendations"
    ][0]["productId"]
    run = uuid.uuid4().hex[:8]
    faulty.cut("rabbitmq")
    try:
        r = await fgql.raw("{ me { id } unreadCount }", token=token)
        assert r.status_code == 200 and r.json()["data"]["me"]["id"] == user_id
        # Purchases during the outage: each places one order once it is accepted.
        purchases = [
            asyncio.create_task(
                fgql.raw(
                    "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }",
                    {"p": product},
                    token,
                )
            )
            for _ in range(3)
        ]
        # Accepted elsewhere meanwhile (confirmed by the broker, which is up).
        await publisher.publish_many(requests_for(user_id, run, 200))
        await asyncio.sleep(OUTAGE_SECONDS)  # the length of the outage, not a wait
    finally:
        faulty.restore("rabbitmq")
    accepted = 0
    for response in await asyncio.gather(*purchases):
        assert response.status_code != 500
        body = response.json()
        if body.get("data") and body["data"].get("trackActivity") == 1:
            accepted += 1
        else:
            assert codes(body) == ["UNAVAILABLE"], body
    await exactly_once(inbox, user_id, run, 200)
    # A purchase accepted after recovery works again.
    await fgql(
        "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }",
        {"p": product},
        token=token,
    )
    accepted += 1

    async def orders() -> bool:
        data = await fgql("{ orders(first: 50) { id } }", token=token)
        return len(data["orders"]) >= accepted

    await eventually(orders, timeout=120, interval=1)
    assert len((await fgql("{ orders(first: 50) { id } }", token=token))["orders"]) == accepted
    await drained(faulty)


async def test_mongodb_unavailable(faulty, fgql, publisher, inbox) -> None:
    """Database away: fields that need it fail with UNAVAILABLE (HTTP 200, GraphQL form);
    requests confirmed meanwhile are stored exactly once after recovery."""
    cy = await fgql.register("Cy")
    token, user_id = cy["accessToken"], cy["user"]["id"]
    run = uuid.uuid4().hex[:8]
    faulty.cut("mongodb")
    try:
        await publisher.publish_many(requests_for(user_id, run, 200))
        for query in (
            "{ notifications(first: 5) { totalCount } }",
            "{ me { id name } }",
            "{ orders(first: 5) { id } }",
        ):
            r = await fgql.raw(query, token=token)
            assert r.status_code == 200, r.text
            assert codes(r.json()) == ["UNAVAILABLE"], r.text
        r = await fgql.raw(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            {"e": cy["email"], "p": cy["password"]},
        )
        assert r.status_code != 500 and codes(r.json()) == ["UNAVAILABLE"], r.text
        await asyncio.sleep(OUTAGE_SECONDS)  # the length of the outage, not a wait
    finally:
        faulty.restore("mongodb")
    await exactly_once(inbox, user_id, run, 200)

    async def answers() -> bool:
        r = await fgql.raw("{ me { id } notifications(first: 1) { totalCount } }", token=token)
        return r.status_code == 200 and "errors" not in r.json()

    await eventually(answers, timeout=120, interval=1)
    await drained(faulty)


async def test_redis_unavailable(faulty, fgql, publisher, inbox) -> None:
    """Redis away: a token's revocation cannot be checked, so fields that need the caller
    fail closed with UNAVAILABLE (HTTP 200, GraphQL form, never a 500); rate limits fail
    open and the cache is skipped; the inbox still fills (real-time pushes are best
    effort); afterwards the same token works again."""
    di = await fgql.register("Di")
    token, user_id = di["accessToken"], di["user"]["id"]
    run = uuid.uuid4().hex[:8]
    faulty.cut("redis")
    try:
        await publisher.publish_many(requests_for(user_id, run, 100))
        for query in ("{ me { id } unreadCount }", "{ notifications(first: 3) { totalCount } }"):
            r = await fgql.raw(query, token=token)
            assert r.status_code == 200, r.text
            assert set(codes(r.json())) == {"UNAVAILABLE"}, r.text
        # An anonymous operation is answered (or refused typed), never a 500.
        r = await fgql.raw(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            {"e": di["email"], "p": di["password"]},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body.get("data") or {}).get("login") or codes(body) == ["UNAVAILABLE"], r.text
        await exactly_once(inbox, user_id, run, 100)
    finally:
        faulty.restore("redis")

    async def answers() -> bool:
        r = await fgql.raw("{ me { id } unreadCount }", token=token)
        return r.status_code == 200 and "errors" not in r.json()

    await eventually(answers, timeout=120, interval=1)
    await drained(faulty)
