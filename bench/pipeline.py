"""Notification pipeline: ``notification.requested`` → stored and pushed, sustained.

    python -m bench.pipeline [--seconds 60] [--users 20000] [--batch-max 500]

Runs the real notifications service as its own process (``uvicorn``, its own database,
exchange and queues) against the servers ``make up`` uses, keeps its request queue
full with confirmed persistent publishes of promotion requests for ``--users`` opted-in
users (as a campaign does), and measures for ``--seconds``: notifications stored per
second (the service's own counter), real-time pushes received by a Redis subscriber,
and the queue depth at the end. Beside it, in the same run, the ceiling: the
MongoDB-compatible server's bulk-insert rate for the same documents with the same
indexes. Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pymongo
import redis.asyncio as aioredis
from herald_common import replica
from herald_common.events import NotificationRequested, make_event
from herald_common.messaging import Broker
from herald_common.preferences import Preferences
from herald_common.settings import HeraldSettings
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
MONGO = os.environ.get("HERALD_MONGODB_URI", "mongodb://127.0.0.1:27017")
REDIS = os.environ.get("HERALD_REDIS_URL", "redis://127.0.0.1:6379/0")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed_replica(db: Any, users: int) -> None:
    prefs = Preferences(promotions=True, max_promotions_per_day=None).model_dump(mode="json")
    docs = [
        {
            "_id": f"u{i:07d}",
            "bucket": replica.bucket_of(f"u{i:07d}"),
            "revision": 1,
            "deleted": False,
            "name": f"User {i}",
            "preferences": prefs,
        }
        for i in range(users)
    ]
    for i in range(0, len(docs), 1000):
        db[replica.COLLECTION].insert_many(docs[i : i + 1000])


def _ceiling(client: Any, docs: int) -> float:
    """Bulk inserts of notification-shaped documents with the service's indexes."""
    from herald_notifications import delivery

    name = f"bench_ceiling_{uuid.uuid4().hex[:6]}"
    coll = client[name]["notifications"]
    coll.create_index([("idempotency_key", 1)], unique=True)
    coll.create_index([("user_id", 1), ("replaced", 1), ("read", 1), ("sent_at", -1)])
    coll.create_index([("user_id", 1), ("replaced", 1), ("sent_at", -1)])
    coll.create_index([("user_id", 1), ("collapse_key", 1), ("read", 1)])
    coll.create_index([("day", 1)])
    now = datetime.now(UTC)
    raw = [
        delivery.build_notification(_request(i, now), now, source="bench").to_mongo().to_dict()
        for i in range(docs)
    ]
    started = time.perf_counter()
    for i in range(0, docs, 500):
        coll.insert_many(raw[i : i + 500], ordered=False)
    rate = docs / (time.perf_counter() - started)
    client.drop_database(name)
    return rate


def _request(i: int, now: datetime, users: int = 1_000_000) -> NotificationRequested:
    return NotificationRequested(
        idempotency_key=f"bench:{i}",
        user_id=f"u{i % users:07d}",
        type="promotion",
        content={"title": "Flash sale", "body": "Everything 20% off today", "data": {"i": i}},
        source="bench",
        requested_at=now,
    )


async def _metric(client: httpx.AsyncClient, url: str, name: str) -> float:
    text = (await client.get(url)).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def run(seconds: float, users: int, batch_max: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    db_name = f"bench_pipeline_{run_id}"
    client: Any = pymongo.MongoClient(MONGO)
    console = Console()
    console.print(f"seeding {users:,} replica users …")
    _seed_replica(client[db_name], users)
    console.print("measuring the bulk-insert ceiling …")
    ceiling = _ceiling(client, 20_000)

    port = _free_port()
    env = {
        **os.environ,
        "HERALD_ENVIRONMENT": "local",
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_NOTIFICATIONS_PORT": str(port),
        "HERALD_NOTIFICATIONS_MONGODB_DB": db_name,
        "HERALD_NOTIFICATIONS_EVENTS_EXCHANGE": f"herald.events.bench{run_id}",
        "HERALD_NOTIFICATIONS_DEAD_LETTER_EXCHANGE": f"herald.dlx.bench{run_id}",
        "HERALD_NOTIFICATIONS_REQUESTS_QUEUE": f"notifications.bench{run_id}.requests",
        "HERALD_NOTIFICATIONS_USERS_QUEUE": f"notifications.bench{run_id}.users",
        "HERALD_NOTIFICATIONS_BATCH_MAX": str(batch_max),
        "HERALD_NOTIFICATIONS_PREFETCH": str(batch_max * 2),
        "HERALD_NOTIFICATIONS_RUN_SWEEPS": "false",
    }
    service = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "herald_notifications.main:create_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    settings = HeraldSettings(
        service_name="bench",
        events_exchange=f"herald.events.bench{run_id}",
        dead_letter_exchange=f"herald.dlx.bench{run_id}",
    )
    publisher = Broker(settings, source="bench")
    pushes = 0
    redis = aioredis.from_url(REDIS)
    pubsub = redis.pubsub()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{base}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            await publisher.connect()
            await pubsub.psubscribe("herald:notifications:*")

            async def count_pushes() -> None:
                nonlocal pushes
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        pushes += 1

            counter = asyncio.create_task(count_pushes())
            stop = time.perf_counter() + seconds
            sent = 0
            in_flight = asyncio.Semaphore(400)
            tasks: set[asyncio.Task[None]] = set()
            now = datetime.now(UTC)

            async def publish(i: int) -> None:
                try:
                    event = make_event(
                        "notification.requested", _request(i, now, users), source="bench"
                    )
                    await publisher.publish(event)
                finally:
                    in_flight.release()

            metric = "herald_notifications_created_total"
            start_count = await _metric(http, f"{base}/metrics", metric)
            started = time.perf_counter()
            samples: list[tuple[float, float]] = []
            with Progress(console=console) as progress:
                task = progress.add_task("pipeline", total=seconds)
                last_sample = started
                while time.perf_counter() < stop:
                    # Keep the queue ahead of the consumer, not unboundedly ahead.
                    stored = await _metric(http, f"{base}/metrics", metric) - start_count
                    backlog = sent - stored
                    burst = max(0, min(2000, 20_000 - int(backlog)))
                    for _ in range(burst):
                        await in_flight.acquire()
                        t = asyncio.create_task(publish(sent))
                        tasks.add(t)
                        t.add_done_callback(tasks.discard)
                        sent += 1
                    await asyncio.sleep(0.05 if burst else 0.2)
                    if time.perf_counter() - last_sample >= 1:
                        last_sample = time.perf_counter()
                        samples.append((last_sample - started, stored))
                    progress.update(task, completed=min(seconds, time.perf_counter() - started))
            elapsed = time.perf_counter() - started
            stored = await _metric(http, f"{base}/metrics", metric) - start_count
            counter.cancel()
        rate = stored / elapsed
        steady = samples[len(samples) // 4 :]
        steady_rate = (
            (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
            if len(steady) > 2
            else rate
        )
        return {
            "seconds": round(elapsed, 1),
            "users": users,
            "batch_max": batch_max,
            "published": sent,
            "stored": int(stored),
            "pushed": pushes,
            "rate": rate,
            "steady_rate": steady_rate,
            "ceiling": ceiling,
        }
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            await redis.aclose()
        await publisher.close()
        service.terminate()
        service.wait(30)
        client.drop_database(db_name)


def _versions() -> str:
    return f"Python {platform.python_version()}, FerretDB 1.24.2 on PostgreSQL 15"


def report(r: dict[str, Any]) -> None:
    table = Table(title="notification pipeline")
    for col in ("measure", "value", "ratio to ceiling"):
        table.add_column(col)
    table.add_row("bulk insert ceiling (docs/s)", f"{r['ceiling']:,.0f}", "1.00")
    table.add_row(
        "stored, whole run (notifications/s)",
        f"{r['rate']:,.0f}",
        f"{r['rate'] / r['ceiling']:.2f}",
    )
    table.add_row(
        "stored, steady state (last 3/4)",
        f"{r['steady_rate']:,.0f}",
        f"{r['steady_rate'] / r['ceiling']:.2f}",
    )
    table.add_row("stored / pushed", f"{r['stored']:,} / {r['pushed']:,}", "")
    Console().print(table)
    with open(ROOT / "bench/RESULTS.md", "a") as f:
        f.write(
            f"\n## Notification pipeline (`python -m bench.pipeline`), "
            f"{datetime.now(UTC):%Y-%m-%d}\n\n"
            f"Machine: {os.cpu_count()} cores, {platform.platform()}; {_versions()}. "
            f"{r['seconds']} s sustained, {r['users']:,} opted-in users, promotion requests "
            f"published with confirms (up to 400 in flight), consumer batches of "
            f"{r['batch_max']}; one notifications process.\n\n"
            "| measure | value | ratio to ceiling |\n|---|---|---|\n"
            f"| bulk insert of the same documents, same indexes (ceiling) | "
            f"{r['ceiling']:,.0f} docs/s | 1.00 |\n"
            f"| requested → stored, whole run | {r['rate']:,.0f} /s | "
            f"{r['rate'] / r['ceiling']:.2f} |\n"
            f"| requested → stored, steady state | {r['steady_rate']:,.0f} /s | "
            f"{r['steady_rate'] / r['ceiling']:.2f} |\n"
            f"| stored / pushed in real time | {r['stored']:,} / {r['pushed']:,} | |\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch-max", type=int, default=500)
    args = parser.parse_args()
    report(asyncio.run(run(args.seconds, args.users, args.batch_max)))


if __name__ == "__main__":
    main()
