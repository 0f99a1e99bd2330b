"""Inbox: the inbox query through the gateway over a large seeded inbox.

    python -m bench.inbox [--notifications 1000000] [--users 100000] [--active-users 1000]
                          [--concurrency 50] [--seconds 20] [--backend postgresql|sqlite]
                          [--py-spy PATH]

Seeds ``--notifications`` notifications over ``--users`` users straight into the
notifications service's database with bulk inserts (the service, started first, has
created its indexes), then sends
``{ unreadCount notifications(first: 20) { edges { node { id type read } } } }`` through
a real gateway process with ``--concurrency`` connections, each request as one of
``--active-users`` users, with the gateway's cache off and on (rate limit configured
high for the benchmark; before the cache-on measure every active user's query is sent
once, and entries live 600 s, so the measure shows a warm cache's steady state). Beside it, in the same run: the bare FastAPI endpoint (the
ceiling of an HTTP hop on this machine), the notifications service's own two calls
(list page, unread count) and the database's indexed find. ``--backend sqlite`` runs
the same against a FerretDB of its own on the SQLite backend (the storage before the
PostgreSQL step). ``--py-spy PATH`` records the gateway (and, with the cache off, the
notifications service) under each gateway measure with that py-spy binary and adds the
top functions to the results. Appends to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.progress import Progress

from bench import ceilings, support

QUERY = "{ unreadCount notifications(first: 20) { edges { node { id type read } } } }"


def seed(run: support.Run, db: str, notifications: int, users: int) -> float:
    """Bulk-insert the notifications (1,000 per command); returns docs/s."""
    import pymongo

    client: Any = pymongo.MongoClient(run.mongo_url)
    coll = client[db]["notifications"]
    now = datetime.now(UTC).replace(microsecond=0)
    batch = 1000
    started = time.perf_counter()
    with Progress() as progress:
        task = progress.add_task(f"seeding {notifications:,} notifications", total=notifications)
        for start in range(0, notifications, batch):
            docs = [
                ceilings.notification_doc(i, run.user(i % users), now - timedelta(seconds=i))
                for i in range(start, min(notifications, start + batch))
            ]
            coll.insert_many(docs, ordered=False)
            progress.update(task, advance=len(docs))
    rate = notifications / (time.perf_counter() - started)
    client.close()
    return rate


def start_sqlite(run: support.Run) -> support.Process:
    """A FerretDB of the run's own on the SQLite backend (data in the run folder)."""
    port = support.free_port()
    data = run.dir / "sqlite"
    data.mkdir(exist_ok=True)
    process = run.start(
        "ferretdb-sqlite",
        [
            str(support.ROOT / ".run" / "bin" / "herald-ferretdb"),
            "-backend",
            "sqlite",
            "-data-dir",
            str(data),
            "-listen-addr",
            f"127.0.0.1:{port}",
            "-log-level",
            "error",
        ],
    )
    run.mongo_url = f"mongodb://127.0.0.1:{port}"
    import pymongo

    deadline = time.monotonic() + 60
    while True:
        try:
            client: Any = pymongo.MongoClient(run.mongo_url, serverSelectionTimeoutMS=1000)
            client.admin.command("ping")
            client.close()
            return process
        except pymongo.errors.PyMongoError:
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"FerretDB (SQLite) did not start:\n{process.tail()}") from None
            time.sleep(0.2)


async def measure(
    args: argparse.Namespace,
) -> tuple[list[list[str]], str, dict[str, Any], list[str]]:
    run = support.Run("inbox")
    try:
        run.own_vhost()
        if args.backend == "sqlite":
            start_sqlite(run)
        notifications = run.component("notifications", run_sweeps="false")
        run.wait_ready(notifications)
        db = run.db("notifications")
        seed_rate = await asyncio.to_thread(seed, run, db, args.notifications, args.users)
        gateway_env = {
            "notifications_url": notifications.url,
            "rate_limit_per_minute": 10_000_000,
            "service_timeout_seconds": 30,
        }
        cold = run.component("gateway", cache_enabled="false", **gateway_env)
        run.wait_ready(cold)
        active = min(args.active_users, args.users)
        tokens = [run.token(run.user(i)) for i in random.sample(range(args.users), active)]
        body = {"query": QUERY}

        def gql(i: int) -> tuple[str, str, Any, dict[str, str]]:
            return ("POST", "/graphql", body, {"authorization": f"Bearer {tokens[i % active]}"})

        def service_page(i: int) -> tuple[str, str, Any, dict[str, str]]:
            headers = {"authorization": f"Bearer {tokens[i % active]}"}
            return ("GET", "/v1/notifications?first=20", None, headers)

        def service_count(i: int) -> tuple[str, str, Any, dict[str, str]]:
            headers = {"authorization": f"Bearer {tokens[i % active]}"}
            return ("GET", "/v1/notifications/unread-count", None, headers)

        pids = {"notifications": notifications.pid, "gateway (cache off)": cold.pid}
        results: dict[str, support.Load] = {}
        profiles: dict[str, Any] = {}

        def spy(key: str, processes: dict[str, int]) -> list[Any]:
            if not args.py_spy:
                return []
            spies = []
            for label, pid in processes.items():
                out = run.dir / f"py-spy-{key}-{label.split()[0]}.txt"
                spies.append(support.py_spy(args.py_spy, pid, args.seconds, out))
                profiles[f"{label} during the {key} measure"] = out
            return spies

        async def profiled(key: str, processes: dict[str, int], url: str) -> None:
            spies = spy(key, processes)
            results[key] = await support.http_load(
                url, gql, concurrency=args.concurrency, seconds=args.seconds
            )
            for process in spies:
                await asyncio.to_thread(process.wait, 120)

        with support.Sampler(pids) as sampler:
            bare = ceilings.start_bare(run)
            assert bare.url and notifications.url and cold.url
            results["bare"] = await ceilings.bare_http(bare.url, args.seconds, args.concurrency)
            bare.stop()
            for name, fn in (("page", service_page), ("count", service_count)):
                results[name] = await support.http_load(
                    notifications.url, fn, concurrency=args.concurrency, seconds=args.seconds
                )
            await profiled("cold", pids, cold.url)
            cold.stop()
            warm = run.component(
                "gateway", cache_enabled="true", cache_ttl_seconds=600, **gateway_env
            )
            run.wait_ready(warm)
            sampler.watch("gateway (cache on)", warm.pid)
            assert warm.url
            # Steady state of a cache: every active user's page asked once before.
            await support.prime(warm.url, tokens, body, args.concurrency)
            await profiled("warm", {"gateway (cache on)": warm.pid}, warm.url)
            find = await asyncio.to_thread(_finds, run, db, active, args.users)
    finally:
        await asyncio.to_thread(run.close)

    bare_rate = results["bare"].rate
    labels = {
        "bare": "bare FastAPI + uvicorn (ceiling)",
        "page": "notifications service: GET /v1/notifications?first=20",
        "count": "notifications service: GET /v1/notifications/unread-count",
        "cold": "gateway, inbox query, cache off",
        "warm": "gateway, inbox query, cache on",
    }
    rows = [support.load_row(label, results[key], bare_rate) for key, label in labels.items()]
    rows.append(
        [
            "database: indexed inbox page find, one client (ceiling of the page call)",
            f"{find:,.0f}",
            "",
            "",
            "",
            "0",
            "",
        ]
    )
    rows.append(["seeding: bulk insert", f"{seed_rate:,.0f} docs/s", "", "", "", "", ""])
    errors = {k: v.first_error for k, v in results.items() if v.errors}
    notes = [goal_text(results)]
    notes += [support.py_spy_summary(label, path) for label, path in profiles.items()]
    return rows, sampler.load_text() + "; peak RSS " + sampler.rss_text(), errors, notes


def _finds(run: support.Run, db: str, active: int, users: int) -> float:
    import pymongo

    client: Any = pymongo.MongoClient(run.mongo_url)
    coll = client[db]["notifications"]
    count = min(500, active * 2)
    started = time.perf_counter()
    for i in range(count):
        query = {"user_id": run.user(i * 7919 % users), "replaced": False}
        list(coll.find(query).sort("sent_at", -1).limit(21))
    rate = count / (time.perf_counter() - started)
    client.close()
    return rate


HEADER = support.LOAD_HEADER


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--active-users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: profile the measures")
    args = parser.parse_args(argv)
    rows, load, errors, notes = asyncio.run(measure(args))
    support.print_table("inbox", HEADER, rows)
    for key, error in errors.items():
        print(f"first error ({key}): {error}", file=sys.stderr)
    backend = (
        "FerretDB on SQLite (a server of the run's own)"
        if args.backend == "sqlite"
        else "FerretDB on PostgreSQL (the shared server)"
    )
    support.append_results(
        f"Inbox ({args.backend})",
        "python -m bench.inbox " + " ".join(sys.argv[1:] if argv is None else argv),
        f"{args.notifications:,} notifications over {args.users:,} users; {backend}; "
        f"{args.concurrency} connections, requests spread over {args.active_users:,} users, "
        f"{args.seconds:g} s per measure, cache warmed for every active user (TTL 600 s); "
        "one gateway and one notifications process",
        HEADER,
        rows,
        load=load,
        notes="\n\n".join(notes),
    )


def goal_text(results: dict[str, support.Load]) -> str:
    """The goal line: at least 500 requests/s with a p50 of at most 20 ms, cache off and on
    (at 50 connections a closed loop reaches that p50 only above 2,500 requests/s)."""
    parts = []
    for key, label in (("cold", "cache off"), ("warm", "cache on")):
        rate, p50 = results[key].rate, support.latency_summary(results[key].latencies)["p50"]
        met = rate >= 500 and p50 <= 20
        parts.append(
            f"{label} {'met' if met else 'missed'} ({rate:,.0f} requests/s, p50 {p50:.0f} ms)"
        )
    return f"Goal ≥ 500 requests/s with p50 ≤ 20 ms: {'; '.join(parts)}."


if __name__ == "__main__":
    main()
