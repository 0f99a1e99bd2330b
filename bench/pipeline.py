"""Notification pipeline: ``notification.requested`` → stored and pushed, sustained.

    python -m bench.pipeline [--seconds 60] [--users 100000] [--batch-max 500]
                             [--concurrency 2] [--no-cache]

Runs the real notifications service as its own process (its own RabbitMQ virtual host,
database and names; the email channel off) against the servers ``make up`` uses, with
``--users`` opted-in users in its replica. A publisher keeps the request queue ahead of
the consumer with confirmed persistent promotion requests in campaign order (the
scheduler fans a campaign out bucket by bucket of the user replica), and for
``--seconds`` the run measures notifications stored per second (the service's own
counter; whole run and steady state, the last three quarters), real-time pushes
received by a Redis subscriber, the service's CPU time per 1,000 notifications and the
load average. Beside it, in the same run: the ceiling, the MongoDB-compatible server's
bulk-insert rate for the same documents into a collection with the service's own
indexes. Appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import psutil
import redis.asyncio as aioredis
from herald_common import replica
from herald_common.events import NotificationRequested, make_event
from herald_common.messaging import Broker

from bench.support import (
    REDIS,
    Run,
    Sampler,
    append_results,
    metric,
    print_table,
    ratio,
    seed_replica,
    server_pids,
)

CREATED = "herald_notifications_created_total"
CHUNK = 500  # requests per publish_many
BACKLOG = 20_000  # how far the publisher keeps ahead of the consumer


def _request(i: int, user_id: str, now: datetime) -> NotificationRequested:
    return NotificationRequested(
        idempotency_key=f"bench:{i}",
        user_id=user_id,
        type="promotion",
        content={"title": "Flash sale", "body": "Everything 20% off today", "data": {"i": i}},
        source="bench",
        requested_at=now,
    )


def _server_processes() -> dict[str, list[psutil.Process]]:
    """The shared servers' processes (PostgreSQL: every backend), for CPU accounting."""
    found: dict[str, list[psutil.Process]] = {}
    for name, pid in server_pids().items():
        with contextlib.suppress(psutil.Error):
            found[name] = [psutil.Process(pid)]
    for proc in psutil.process_iter(["name"]):
        if (proc.info["name"] or "").startswith("postgres"):
            found.setdefault("PostgreSQL", []).append(proc)
    return found


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds by pid (processes that are gone are left out)."""
    found: dict[int, float] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            found[proc.pid] = times.user + times.system
    return found


def _cpu_since(start: dict[int, float], procs: list[psutil.Process]) -> float:
    """CPU used since ``start`` by the processes alive now (new ones: all of theirs;
    PostgreSQL backends come and go with their clients)."""
    return sum(c - start.get(pid, 0.0) for pid, c in _cpu(procs).items())


def ceiling(run: Run, users: list[str], docs: int = 20_000) -> float:
    """Bulk inserts (500 per command) of the documents the service stores, into a
    collection with the service's own indexes (``models.ensure_indexes``)."""
    from herald_common.db import connect_db, disconnect_db
    from herald_common.settings import HeraldSettings
    from herald_notifications import builders, models

    settings = HeraldSettings(mongodb_uri=run.mongo_url, mongodb_db=run.db("ceiling"))
    connect_db(settings)
    try:
        models.ensure_indexes()
        now = datetime.now(UTC)
        raw = [
            builders.new_notification_doc(
                _request(i, users[i % len(users)], now), now, source="bench"
            )
            for i in range(docs)
        ]
        coll = models.Notification._get_collection()
        started = time.perf_counter()
        for i in range(0, docs, CHUNK):
            coll.insert_many(raw[i : i + CHUNK], ordered=False)
        return docs / (time.perf_counter() - started)
    finally:
        disconnect_db()


async def run(
    seconds: float, users: int, batch_max: int, concurrency: int, cache: bool
) -> dict[str, Any]:
    with Run("pipeline") as r:
        r.own_vhost()
        db = r.db("notifications")
        ids = [r.user(i) for i in range(users)]
        print(f"seeding {users:,} replica users …")
        seed_replica(r.mongo_url, db, ids, lambda i: True)
        # A campaign reads the replica bucket by bucket and requests in that order.
        order = sorted(ids, key=lambda u: (replica.bucket_of(u), u))
        print("measuring the bulk-insert ceiling …")
        limit = ceiling(r, order)
        service = r.component(
            "notifications",
            batch_max=batch_max,
            batch_concurrency=concurrency,
            prefetch=batch_max * concurrency * 2,
            run_sweeps="false",
            email_enabled="false",
            user_cache_seconds=30 if cache else 0,
        )
        await asyncio.to_thread(r.wait_ready, service)
        assert service.url is not None
        publisher = Broker(r.broker_settings(), source="bench")
        await publisher.connect()
        redis = aioredis.from_url(REDIS)
        pubsub = redis.pubsub()
        await pubsub.psubscribe(f"herald:notifications:b{r.run_id}u*")
        pushes = 0

        async def count_pushes() -> None:
            nonlocal pushes
            async for message in pubsub.listen():
                if message["type"] == "pmessage":
                    pushes += 1

        counter = asyncio.create_task(count_pushes())
        sent = 0
        now = datetime.now(UTC)
        in_flight: set[asyncio.Task[None]] = set()

        def publish_chunk() -> None:
            nonlocal sent
            events = [
                make_event(
                    "notification.requested",
                    _request(i, order[i % len(order)], now),
                    source="bench",
                )
                for i in range(sent, sent + CHUNK)
            ]
            sent += CHUNK
            task = asyncio.create_task(publisher.publish_many(events))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        proc = psutil.Process(service.pid)
        try:
            # Fill the queue first, so the consumer never waits for the publisher.
            while sent < BACKLOG:
                publish_chunk()
                if len(in_flight) >= 4:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            start_count = await metric(service.url, CREATED)
            pushes = 0  # count the measured window only (pushes lag the stores a little)
            cpu_start = sum(proc.cpu_times()[:2])
            servers = _server_processes()
            servers_start = {name: _cpu(procs) for name, procs in servers.items()}
            bench_start = sum(psutil.Process().cpu_times()[:2])
            started = time.perf_counter()
            samples: list[tuple[float, float]] = []
            with Sampler({"notifications": service.pid}) as sampler:
                while (elapsed := time.perf_counter() - started) < seconds:
                    stored = await metric(service.url, CREATED) - start_count
                    samples.append((elapsed, stored))
                    while sent - stored < BACKLOG and len(in_flight) < 4:
                        publish_chunk()
                    await asyncio.sleep(1)
                elapsed = time.perf_counter() - started
                stored = await metric(service.url, CREATED) - start_count
                cpu = sum(proc.cpu_times()[:2]) - cpu_start
                bench_cpu = sum(psutil.Process().cpu_times()[:2]) - bench_start
                now_servers = _server_processes()
                server_cpu = {
                    n: _cpu_since(servers_start[n], now_servers.get(n, [])) for n in servers
                }
            samples.append((elapsed, stored))
            # the last pushes of what was stored are on their way
            await asyncio.sleep(1)
        finally:
            counter.cancel()
            for task in in_flight:
                task.cancel()
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await redis.aclose()
            await publisher.close()
        steady = samples[len(samples) // 4 :]
        steady_rate = (
            (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
            if len(steady) > 2
            else stored / elapsed
        )
        return {
            "seconds": round(elapsed, 1),
            "users": users,
            "batch_max": batch_max,
            "concurrency": concurrency,
            "cache": cache,
            "stored": int(stored),
            "pushed": pushes,
            "rate": stored / elapsed,
            "steady_rate": steady_rate,
            "ceiling": limit,
            "cpu_per_1000": cpu / stored * 1000 if stored else 0.0,
            # share of one core over the window (servers: shared, other users included)
            "cpu_share": {
                "notifications": cpu / elapsed,
                "publisher (this benchmark)": bench_cpu / elapsed,
                **{n: c / elapsed for n, c in sorted(server_cpu.items())},
            },
            "load": sampler.load_text(),
        }


def report(r: dict[str, Any]) -> None:
    header = ["measure", "value", "ratio to ceiling"]
    rows = [
        [
            "bulk insert, same documents and indexes (ceiling)",
            f"{r['ceiling']:,.0f} docs/s",
            "1.00",
        ],
        ["requested → stored, whole run", f"{r['rate']:,.0f} /s", ratio(r["rate"], r["ceiling"])],
        [
            "requested → stored, steady state (last 3/4)",
            f"{r['steady_rate']:,.0f} /s",
            ratio(r["steady_rate"], r["ceiling"]),
        ],
        ["stored / pushed in real time", f"{r['stored']:,} / {r['pushed']:,}", ""],
        ["notifications process CPU per 1,000 stored", f"{r['cpu_per_1000']:.2f} s", ""],
        [
            "CPU during the window (% of one core)",
            ", ".join(f"{n} {100 * c:.0f}" for n, c in r["cpu_share"].items()),
            "",
        ],
    ]
    print_table("notification pipeline", header, rows)
    append_results(
        "Notification pipeline",
        "python -m bench.pipeline"
        f" --seconds {r['seconds']:.0f} --users {r['users']} --batch-max {r['batch_max']}"
        f" --concurrency {r['concurrency']}" + ("" if r["cache"] else " --no-cache"),
        f"{r['seconds']} s sustained after a {BACKLOG:,}-request backlog, {r['users']:,} "
        "opted-in users, promotion requests in campaign (replica bucket) order published "
        f"with confirms, batches of {r['batch_max']}, {r['concurrency']} in progress, user "
        f"cache {'on' if r['cache'] else 'off'}; one notifications process, email channel off",
        header,
        rows,
        load=r["load"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batch-max", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--no-cache", action="store_true", help="user cache off")
    args = parser.parse_args()
    report(
        asyncio.run(
            run(args.seconds, args.users, args.batch_max, args.concurrency, not args.no_cache)
        )
    )


if __name__ == "__main__":
    main()
