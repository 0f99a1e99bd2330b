"""RabbitMQ, Redis and the database really stopped and started again under all of Herald.

``test_faults.py`` makes a server unreachable through a proxy; here the server process
goes away. A second Herald runs on a private RabbitMQ node, a private Redis and a
private MongoDB-compatible server — FerretDB on a PostgreSQL cluster of its own
(``tests/e2e/servers.py``: same binaries and flags as dev/infra.sh, own node name,
ports and data folders) — so stopping them touches nobody else's tests. The same
private node serves the dead-letter test, since its Prometheus endpoint is this test's
own: a poison message is dead-lettered with its reason, the chart's recording rule and
alert see it through dev/prometheus.sh, and after the fix a replay stores it once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import redis.asyncio as aioredis
from herald_common.messaging import Broker
from herald_common.redis_client import user_channel
from herald_testing import eventually

from .conftest import ADMIN, REPO, GraphQL, Herald, free_port, running_herald
from .faultkit import (
    Effects,
    Subscription,
    codes,
    drained,
    load_size,
    publish_all,
    publisher_on,
    purchases_for,
    report,
    requests_for,
    stored_once,
)
from .servers import PrivateFerretDB, PrivatePostgreSQL, PrivateRabbitMQ, PrivateRedis

# Confirmed requests across the broker's restart, and across each database outage;
# tests.chaos.restart_servers sets more (HERALD_FAULT_LOAD, both).
LOAD = load_size(1000)
DB_LOAD = load_size(300)
# How long each database server stays stopped: longer than a request's own wait for the
# server (5 s), shorter than the consumers' retry chain (1 s + 5 s + 30 s), so nothing
# may be dead-lettered.
DB_OUTAGE_SECONDS = 10
# A bound to give up at on a machine shared with other test runs, not a measured speed.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(max(900, LOAD // 5))]
# "stop" (rabbitmqctl stop) or "kill" (SIGKILL of the node, no clean shutdown).
BROKER_STOP = os.environ.get("HERALD_FAULT_BROKER_STOP", "stop")
PURCHASE = "mutation($p: ID!) { trackActivity(events: [{kind: PURCHASE, productId: $p}]) }"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
REFRESH = "mutation($r: String!) { refreshToken(refreshToken: $r) { accessToken } }"
RULES = REPO / "charts" / "herald" / "files" / "prometheus-rules.yaml"
# Registering hashes a password: on a machine shared with other test runs that can take
# longer than the e2e default for a service call.
SETTINGS = {"HERALD_GATEWAY_SERVICE_TIMEOUT_SECONDS": "60"}


@dataclass
class Private:
    herald: Herald
    rabbit: PrivateRabbitMQ
    redis: PrivateRedis
    postgres: PrivatePostgreSQL
    ferretdb: PrivateFerretDB

    @property
    def vhost(self) -> str:
        return urlparse(self.herald.env["HERALD_AMQP_URL"]).path.lstrip("/")


@pytest.fixture(scope="module")
def private(infra: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    base = tmp_path_factory.mktemp("private-servers")
    rabbit, redis = PrivateRabbitMQ(base / "rabbitmq"), PrivateRedis(base / "redis")
    postgres = PrivatePostgreSQL()
    ferretdb = PrivateFerretDB(base / "ferretdb", postgres)
    try:
        rabbit.start()
        redis.start()
        postgres.start()
        ferretdb.start()
        servers = {
            "HERALD_AMQP_URL": rabbit.url,
            "HERALD_REDIS_URL": redis.url,
            "HERALD_MONGODB_URI": ferretdb.url,
        }
        with running_herald(
            infra, tmp_path_factory, servers, settings=SETTINGS, rabbitmqctl=rabbit.ctl_ok
        ) as herald:
            yield Private(herald, rabbit, redis, postgres, ferretdb)
    finally:
        ferretdb.stop()
        postgres.remove()
        redis.stop()
        rabbit.stop()


@pytest.fixture
async def pgql(private: Private) -> AsyncIterator[GraphQL]:
    async with httpx.AsyncClient(timeout=120) as client:
        yield GraphQL(private.herald, client)


@pytest.fixture
async def publisher(private: Private) -> AsyncIterator[Broker]:
    """Herald's own publisher class, on the private broker (confirmed publishes)."""
    async with publisher_on(private.herald.env["HERALD_AMQP_URL"]) as broker:
        yield broker


@pytest.fixture
def effects(private: Private) -> Iterator[Effects]:
    counts = Effects(private.ferretdb.url, private.herald.env["HERALD_RUN_DB_PREFIX"])
    yield counts
    counts.close()


async def product_for(pgql: GraphQL, token: str) -> str:
    data = await pgql("{ recommendations(first: 1) { productId } }", token=token)
    return str(data["recommendations"][0]["productId"])


async def test_rabbitmq_stopped_and_restarted_mid_load(private, pgql, publisher, effects) -> None:
    """The broker process stops (or is killed) while requests flow: half are confirmed
    and being consumed when it goes, a quarter is being published while it is down (the
    publisher reconnects and gets its confirms once it is back), a quarter after. Every
    confirmed request is stored exactly once; Herald's consumers and publishers
    reconnect on their own."""
    ann = await pgql.register("Ann")
    token, user_id = ann["accessToken"], ann["user"]["id"]
    product = await product_for(pgql, token)
    run = uuid.uuid4().hex[:8]
    events = requests_for(user_id, run, LOAD)
    half, rest = LOAD // 2, LOAD - LOAD // 4
    started = time.monotonic()
    await publish_all(publisher, events[:half])

    async def some_stored() -> bool:
        return len(await effects.notification_keys(user_id, run)) >= LOAD // 20

    await eventually(some_stored, timeout=300, interval=0.2)
    stored_at_stop = len(set(await effects.notification_keys(user_id, run)))
    stop = private.rabbit.kill if BROKER_STOP == "kill" else private.rabbit.stop
    await asyncio.to_thread(stop)
    during = asyncio.create_task(publish_all(publisher, events[half:rest], timeout=600))
    # Reads need no broker; a purchase waits for it or fails typed.
    r = await pgql.raw("{ me { id } unreadCount }", token=token)
    assert r.status_code == 200 and r.json()["data"]["me"]["id"] == user_id, r.text
    purchase = asyncio.create_task(pgql.raw(PURCHASE, {"p": product}, token))
    assert not during.done(), "a publish was confirmed while the broker was down"
    await asyncio.to_thread(private.rabbit.start)
    await during
    await publish_all(publisher, events[rest:])
    once = await stored_once(effects, user_id, run, LOAD)
    response = await purchase
    assert response.status_code == 200, response.text
    body = response.json()
    accepted = 1 if (body.get("data") or {}).get("trackActivity") == 1 else 0
    if not accepted:
        assert codes(body) == ["UNAVAILABLE"], body
    # Herald's own publishers after the restart: the users service announces a new
    # account (notifications then stores requests for it), the gateway a purchase.
    bob = await pgql.register("Bob")
    bob_run = uuid.uuid4().hex[:8]
    await publish_all(publisher, requests_for(bob["user"]["id"], bob_run, 10))
    await stored_once(effects, bob["user"]["id"], bob_run, 10)
    await pgql(PURCHASE, {"p": product}, token=token)
    accepted += 1

    async def orders() -> bool:
        data = await pgql("{ orders(first: 50) { id } }", token=token)
        return len(data["orders"]) >= accepted

    await eventually(orders, timeout=120, interval=1)
    assert len((await pgql("{ orders(first: 50) { id } }", token=token))["orders"]) == accepted
    await drained(private.rabbit.ctl, private.vhost)
    report(
        {
            "scenario": f"RabbitMQ {BROKER_STOP} and start mid-load",
            "messages": LOAD,
            "stored_at_stop": stored_at_stop,
            "once": {"notifications": once, "orders": accepted},
            "duplicates": 0,
            "broker_starts": private.rabbit.starts,
            "seconds": round(time.monotonic() - started, 1),
        }
    )


async def _subscribed(redis_url: str, user_id: str, count: int) -> bool:
    """The user's real-time channel has ``count`` subscriptions on that Redis."""
    client = aioredis.from_url(redis_url)
    try:
        counts = await client.pubsub_numsub(user_channel(user_id))
    finally:
        await client.aclose()
    return bool(counts) and int(counts[0][1]) == count


async def _probe_reached(redis_url: str, user_id: str, subscription: Subscription) -> bool:
    """Publish a probe notification on the user's channel unless one has arrived."""
    if "probe" in subscription.received:
        return True
    probe = {
        "id": f"probe-{uuid.uuid4().hex[:8]}",
        "user_id": user_id,
        "type": "order_update",
        "content": {"title": "probe", "body": ""},
        "sent_at": datetime.now(UTC).isoformat(),
        "read": False,
    }
    client = aioredis.from_url(redis_url)
    try:
        await client.publish(user_channel(user_id), json.dumps(probe))
    finally:
        await client.aclose()
    return False


async def test_redis_stopped_and_restarted(private, pgql, publisher, effects) -> None:
    """Redis process stopped: fields that need the caller fail closed with UNAVAILABLE
    (the revocation check), as do a login (the login limits cannot count it) and a
    token refresh, never a 500; registering still works and the inbox still fills. The
    subscription open across the outage stays open, subscribes again by itself once
    Redis is back and receives the next notification on the same socket, as does a
    subscription made after the restart."""
    di = await pgql.register("Di")
    token, user_id = di["accessToken"], di["user"]["id"]
    run = uuid.uuid4().hex[:8]
    events = requests_for(user_id, run, 102)
    async with Subscription(private.herald.ws_url, token) as before:
        await publish_all(publisher, events[:1])
        await eventually(lambda: "Update 0" in before.received, timeout=120)
        await asyncio.to_thread(private.redis.stop)
        try:
            for query in (
                "{ me { id } unreadCount }",
                "{ notifications(first: 3) { totalCount } }",
            ):
                r = await pgql.raw(query, token=token)
                assert r.status_code == 200, r.text
                assert set(codes(r.json())) == {"UNAVAILABLE"}, r.text
            # A login cannot be counted against the login limits: refused (fail closed);
            # a refresh token cannot be checked against the deny-list; registering needs
            # only the database.
            r = await pgql.raw(LOGIN, {"e": di["email"], "p": di["password"]})
            assert r.status_code == 200 and codes(r.json()) == ["UNAVAILABLE"], r.text
            r = await pgql.raw(REFRESH, {"r": di["refreshToken"]})
            assert r.status_code == 200 and codes(r.json()) == ["UNAVAILABLE"], r.text
            assert (await pgql.register("Eli"))["accessToken"]
            await publish_all(publisher, events[1:101])
            await stored_once(effects, user_id, run, 101)
        finally:
            await asyncio.to_thread(private.redis.start)

        async def answers() -> bool:
            r = await pgql.raw("{ me { id } unreadCount }", token=token)
            return r.status_code == 200 and "errors" not in r.json()

        await eventually(answers, timeout=120, interval=1)
        # The open subscription is back on the channel by itself.
        await eventually(
            lambda: _subscribed(private.redis.url, user_id, 1), timeout=120, interval=0.5
        )
        async with Subscription(private.herald.ws_url, token) as after:
            # On the gateway's one subscription to the channel: attached once a probe
            # published there reaches it.
            await eventually(
                lambda: _probe_reached(private.redis.url, user_id, after), timeout=60, interval=0.5
            )
            assert await _subscribed(private.redis.url, user_id, 1)
            await publish_all(publisher, events[101:])
            await eventually(lambda: "Update 101" in after.received, timeout=120)
            await eventually(lambda: "Update 101" in before.received, timeout=120)
        assert before.ended is None, before.ended
    report(
        {
            "scenario": "Redis stopped and started",
            "messages": 102,
            "once": {"notifications": 102},
            "open_subscription": "resumed: received the notification after the restart",
        }
    )
    await drained(private.rabbit.ctl, private.vhost)


@pytest.fixture
def prometheus(private: Private, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dev/prometheus.sh (what `make up` starts) watching this Herald and its broker."""
    env = {
        **private.herald.env,
        "HERALD_PROMETHEUS_PORT": str(free_port()),
        "HERALD_PROMETHEUS_DIR": str(tmp_path_factory.mktemp("prometheus")),
        "HERALD_PROMETHEUS_INTERVAL": "1s",
        "HERALD_PROMETHEUS_RABBITMQ": private.rabbit.metrics,
    }
    script = str(REPO / "dev" / "prometheus.sh")
    up = subprocess.run(["/bin/bash", script, "up"], env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield f"http://127.0.0.1:{env['HERALD_PROMETHEUS_PORT']}"
    finally:
        subprocess.run(["/bin/bash", script, "down"], env=env, capture_output=True, timeout=60)


def _alert_expr(name: str) -> str:
    import yaml

    groups = yaml.safe_load(RULES.read_text())["groups"]
    return next(r["expr"] for g in groups for r in g["rules"] if r.get("alert") == name)


async def test_poison_message_dead_lettered_alerted_and_replayed(
    private, pgql, publisher, effects, prometheus, infra
) -> None:
    """A purchase of a product the catalog does not know is dead-lettered by
    recommendations with the reason naming it; herald:dlq_messages counts it and the
    HeraldDeadLetterQueueGrowing expression selects its queue (the alert is pending);
    once the catalog has the product, replayDeadLetters stores the activity once and
    the DLQ depth goes back to 0."""
    queue = "recommendations.activity"
    run = uuid.uuid4().hex[:8]
    product = f"p-fault-{run}"
    shopper = f"fault-{run}-poison"
    [poison] = purchases_for([shopper], run, 1, product)
    selector = f'{{queue="{queue}.dlq", vhost="{private.vhost}"}}'

    def query(expr: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        assert r.json()["status"] == "success", r.text
        return list(r.json()["data"]["result"])

    async def metric_is(value: float) -> bool:
        found = await asyncio.to_thread(query, f"herald:dlq_messages{selector}")
        return bool(found) and float(found[0]["value"][1]) == value

    # The empty DLQ is recorded first (a long-running Prometheus has seen it for long):
    # the alert compares the depth with what it was, so it needs a "before".
    await eventually(lambda: metric_is(0), timeout=180, interval=1)
    await publisher.publish(poison)
    admin = await pgql.login(*ADMIN)
    listing_query = """query($q: String) {
        deadLetters(queue: $q) { queue service count messages { messageId error } } }"""

    async def listed() -> Any:
        data = await pgql(listing_query, {"q": queue}, token=admin)
        [dlq] = data["deadLetters"]
        return dlq if dlq["count"] == 1 and len(dlq["messages"]) == 1 else None

    dlq = await eventually(listed, timeout=120, interval=1)
    assert dlq["messages"][0]["messageId"] == str(poison.id)
    assert f"unknown product {product!r}" in dlq["messages"][0]["error"]

    await eventually(lambda: metric_is(1), timeout=180, interval=1)
    expr = _alert_expr("HeraldDeadLetterQueueGrowing")

    async def alert_pending() -> bool:
        firing = await asyncio.to_thread(query, expr)
        alerts = await asyncio.to_thread(
            query, f'ALERTS{{alertname="HeraldDeadLetterQueueGrowing", queue="{queue}.dlq"}}'
        )
        return any(s["metric"]["queue"] == f"{queue}.dlq" for s in firing) and bool(alerts)

    await eventually(alert_pending, timeout=120, interval=1)

    # The fix: the catalog learns the product (as a catalog update would bring it).
    recs = effects.client[f"{private.herald.env['HERALD_RUN_DB_PREFIX']}_recommendations"]
    category = recs["catalog_meta"].find_one({"_id": "catalog"})["category_names"][0]
    recs["products"].insert_one(
        {"_id": product, "name": "Late product", "category": category, "price": 1.0}
    )
    recs["catalog_meta"].update_one({"_id": "catalog"}, {"$set": {"seeded_at": datetime.now(UTC)}})
    # The catalog is re-read every few seconds: replay until the message stays stored.
    replayed = 0

    async def stored() -> bool:
        nonlocal replayed
        if await effects.activity_ids([shopper]) == [f"{poison.id}:0"]:
            return True
        if (await listed()) is not None:
            data = await pgql(
                "mutation($q: String!) { replayDeadLetters(queue: $q) }", {"q": queue}, token=admin
            )
            replayed += data["replayDeadLetters"]
        return False

    await eventually(stored, timeout=120, interval=3)
    assert await effects.activity_ids([shopper]) == [f"{poison.id}:0"]
    await eventually(lambda: metric_is(0), timeout=120, interval=1)
    report(
        {
            "scenario": "poison message: DLQ, metric, alert, replay",
            "messages": 1,
            "replays": replayed,
            "once": {"recommendations": 1},
        }
    )


# Reads that need the database, each from another service; a page size of its own so
# no cached page can answer.
DB_READS = (
    "{ notifications(first: 7) { totalCount } }",
    "{ me { id name } }",
    "{ orders(first: 5) { id } }",
)


@dataclass
class Outage:
    """One database server stopped in the middle of a load of its own."""

    server: str
    who: dict[str, Any]
    run: str
    counts: dict[str, Any]

    @property
    def user_id(self) -> str:
        return str(self.who["user"]["id"])


async def _database_outage(
    private: Private, pgql: GraphQL, publisher: Broker, effects: Effects, server: str
) -> Outage:
    """Half of ``DB_LOAD`` requests confirmed; once a tenth is stored, ``server`` (the
    FerretDB process, or the PostgreSQL cluster under it) is stopped for
    ``DB_OUTAGE_SECONDS`` while the other half is confirmed and clients ask for data;
    then it is started again on the same port and data. The load is left to finish."""
    who = await pgql.register(f"Db-{server}")
    token, user_id = who["accessToken"], who["user"]["id"]
    run = uuid.uuid4().hex[:8]
    events = requests_for(user_id, run, DB_LOAD)
    half = DB_LOAD // 2
    await publish_all(publisher, events[:half])

    async def some_stored() -> bool:
        return len(await effects.notification_keys(user_id, run)) >= DB_LOAD // 10

    await eventually(some_stored, timeout=300, interval=0.2)
    stored_at_stop = len(set(await effects.notification_keys(user_id, run)))
    stop, start = {
        "ferretdb": (private.ferretdb.stop, private.ferretdb.start),
        "postgresql": (private.postgres.stop, private.postgres.start),
    }[server]
    t0 = time.monotonic()
    await asyncio.to_thread(stop)
    stopped_in = time.monotonic() - t0
    down_at = time.monotonic()
    try:
        # Accepted by the broker while the database is away: the consumers must keep them.
        await publish_all(publisher, events[half:])
        answers = await asyncio.gather(
            *(pgql.raw(query, token=token) for query in DB_READS),
            pgql.raw(LOGIN, {"e": who["email"], "p": who["password"]}),
        )
        for response in answers:
            assert response.status_code == 200, response.text
            assert codes(response.json()) == ["UNAVAILABLE"], response.text
        await asyncio.sleep(max(0.0, DB_OUTAGE_SECONDS - (time.monotonic() - down_at)))
    finally:
        await asyncio.to_thread(start)
    counts = {
        "stored_at_stop": stored_at_stop,
        "stop_seconds": round(stopped_in, 1),
        "outage_seconds": round(time.monotonic() - down_at, 1),
    }
    return Outage(server, who, run, counts)


async def test_database_stopped_and_restarted_mid_load(private, pgql, publisher, effects) -> None:
    """The MongoDB-compatible server stopped for 10 s, then (separately, while the first
    load is still being retried) the PostgreSQL cluster under it, each in the middle of a
    load of confirmed requests of its own. During each outage every read that needs the
    database and a login answer HTTP 200 with a typed ``UNAVAILABLE``; afterwards every
    confirmed request is stored exactly once (the consumers' retries back off past the
    outage), the same tokens read again, every queue drains and nothing is
    dead-lettered."""
    started = time.monotonic()
    outages = [
        await _database_outage(private, pgql, publisher, effects, server)
        for server in ("ferretdb", "postgresql")
    ]
    for outage in outages:
        outage.counts["once"] = await stored_once(effects, outage.user_id, outage.run, DB_LOAD)
        assert outage.counts["once"] == DB_LOAD

        async def answers_again(token: str = outage.who["accessToken"]) -> bool:
            r = await pgql.raw(
                "{ me { id } notifications(first: 1) { totalCount } orders(first: 1) { id } }",
                token=token,
            )
            return r.status_code == 200 and "errors" not in r.json()

        await eventually(answers_again, timeout=120, interval=1)
    await drained(private.rabbit.ctl, private.vhost)
    report(
        {
            "scenario": "FerretDB stopped 10 s, then PostgreSQL stopped 10 s, mid-load",
            "messages": 2 * DB_LOAD,
            "outages": {outage.server: outage.counts for outage in outages},
            "duplicates": 0,
            "dead_lettered": 0,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
