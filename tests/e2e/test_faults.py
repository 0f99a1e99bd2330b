"""Faults against all of Herald: each consumer killed mid-load, and each server unreachable
for a while.

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
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse, urlunparse

import httpx
import pytest
from herald_common.messaging import Broker
from herald_testing import eventually
from herald_testing.faults import ProxyThread, TcpProxy

from .conftest import GraphQL, Herald, running_herald
from .faultkit import (
    CONSUMERS,
    SHARED_LOADS,
    Effects,
    Target,
    codes,
    kill_mid_load,
    load_size,
    publisher_on,
    requests_for,
    shared_rabbitmqctl,
    stored_once,
)
from .faultkit import drained as drained_vhost

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# How long a server stays unreachable: longer than a request's own retries, shorter
# than the consumers' retry chain (1 s + 5 s + 30 s), so nothing may be dead-lettered.
OUTAGE_SECONDS = 10
# Messages per load; ``python -m tests.chaos.kill_consumers`` sets 10,000 and kills each
# consumer in a load of its own. Here one load of purchases serves both of its consumers,
# and it is smaller: recommendations stores about 10 one-purchase messages a second on
# the loaded 2-core CI machine (bench/RESULTS.md, activity ingest).
LOAD = load_size(1000)
PURCHASES = load_size(300)
# Orders stay "placed" for the length of the module: a load of purchases then causes
# one order event each, not one per status of every order's lifecycle.
SETTINGS = {"HERALD_SCHEDULER_ORDER_STEP_SECONDS": '{"placed": 3600}'}


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
        with running_herald(infra, tmp_path_factory, servers, settings=SETTINGS) as herald:
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
    async with publisher_on(url) as broker:
        yield broker


@pytest.fixture
def effects(faulty: Faulty, infra: dict[str, str]) -> Iterator[Effects]:
    """Counts in the real database (not through the proxy)."""
    counts = Effects(infra["HERALD_MONGODB_URI"], faulty.db_prefix)
    yield counts
    counts.close()


async def drained(faulty: Faulty) -> None:
    await drained_vhost(shared_rabbitmqctl, faulty.vhost)


async def any_product(fgql: GraphQL, token: str) -> str:
    data = await fgql("{ recommendations(first: 1) { productId } }", token=token)
    return str(data["recommendations"][0]["productId"])


def kill_sets() -> list[tuple[str, ...]]:
    """Which consumers are killed together in one load: ``HERALD_FAULT_KILL`` (e.g.
    ``scheduler`` or ``notifications;recommendations+scheduler``), else SHARED_LOADS."""
    chosen = os.environ.get("HERALD_FAULT_KILL")
    if not chosen:
        return list(SHARED_LOADS)
    return [tuple(group.split("+")) for group in chosen.split(";")]


# Bounds to give up at on a machine shared with other test runs, not measured speeds.
@pytest.mark.timeout(max(900, LOAD * 2))
@pytest.mark.parametrize("services", kill_sets(), ids="+".join)
async def test_sigkill_consumers_mid_load(faulty, fgql, publisher, effects, services) -> None:
    """Every confirmed event takes effect exactly once in every service that consumes it,
    although ``services`` are killed with SIGKILL while they work through them, and the
    events keep being published meanwhile (requests: one stored notification each;
    purchases: one stored activity in recommendations and one order in the scheduler)."""
    assert set(services) <= set(CONSUMERS)
    ann = await fgql.register("Ann")
    product = await any_product(fgql, ann["accessToken"])
    target = Target(faulty.herald, publisher, effects, shared_rabbitmqctl, faulty.vhost)
    count = LOAD if services == ("notifications",) else PURCHASES
    result = await kill_mid_load(target, services, ann["user"]["id"], product, count)
    assert set(result["once"].values()) == {count}


async def test_rabbitmq_unavailable(faulty, fgql, publisher, effects) -> None:
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
    await stored_once(effects, user_id, run, 200)
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


async def test_mongodb_unavailable(faulty, fgql, publisher, effects) -> None:
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
    await stored_once(effects, user_id, run, 200)

    async def answers() -> bool:
        r = await fgql.raw("{ me { id } notifications(first: 1) { totalCount } }", token=token)
        return r.status_code == 200 and "errors" not in r.json()

    await eventually(answers, timeout=120, interval=1)
    await drained(faulty)


async def test_redis_unavailable(faulty, fgql, publisher, effects) -> None:
    """Redis away: a token's revocation cannot be checked, so fields that need the caller
    fail closed with UNAVAILABLE (HTTP 200, GraphQL form, never a 500); rate limits fail
    open and the cache is skipped; the inbox still fills (real-time pushes are best
    effort); logins are refused typed; afterwards the same token works again."""
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
        # Logins are refused typed (the users service's login limiter needs Redis and
        # fails closed, before any password is checked), never a 500.
        r = await fgql.raw(
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            {"e": di["email"], "p": di["password"]},
        )
        assert r.status_code == 200, r.text
        assert codes(r.json()) == ["UNAVAILABLE"], r.text
        await stored_once(effects, user_id, run, 100)
    finally:
        faulty.restore("redis")

    async def answers() -> bool:
        r = await fgql.raw("{ me { id } unreadCount }", token=token)
        return r.status_code == 200 and "errors" not in r.json()

    await eventually(answers, timeout=120, interval=1)
    await drained(faulty)
