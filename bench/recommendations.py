"""Recommendations batch: ``herald-recommendations batch --all`` over seeded shoppers.

    python -m bench.recommendations [--users 10000 100000] [--events-per-user 100]
                                    [--notify | --no-notify] [--no-evaluate]

For each ``--users`` size, in a run of its own (own databases, virtual host): the mock
shoppers of the service's own generator (``herald_recommendations.generator``, the data
``herald-recommendations generate`` writes: the default catalog of 2,000 products in 24
categories, seed 42, ``--events-per-user`` events per user on average) are bulk-inserted
as the per-user activity documents the batch reads, and the same users into the
service's user replica as registered users opted into recommendations. Then, as real
processes of the service's command line: ``herald-recommendations batch --all``
(rebuild the model, recompute and store every user's recommendations and, with
``--notify``, the Job's default, stage and publish one ``notification.requested`` per
user), and ``herald-recommendations evaluate --source db --json`` (precision@10,
recall@10 and coverage of the model against the popularity baseline on the same data,
each user's last purchase held out). Measured: the batch's users/s and wall time, peak
RSS of every process involved (psutil: the batch, the evaluation, FerretDB, RabbitMQ;
not PostgreSQL, whose backends share its buffers and serve every other client) and the
evaluation's figures and cost beside it. The ceiling in the same run: one pass reading
every activity document (what the batch does twice, besides writing one document per
user). Appends to ``bench/RESULTS.md``.

The activity is inserted per user, not through ``generate --direct``: that command
merges each chunk into every user document (read, merge, write with a revision check)
and writes the raw activity log too, about 500-1,000 activities/s on FerretDB, which is
half an hour for 1M events. The raw log is not seeded; the batch does not read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.progress import Progress

from bench import support

SEED, PRODUCTS, CATEGORIES = 42, 2000, 24
ACTIVE_USERS = "activity_users"  # herald_recommendations.models.ActiveUser
STATE, WATERMARK = "storage_state", "activity_watermark"  # herald_recommendations.storage


def seed_activity(
    run: support.Run,
    db: str,
    user_ids: Sequence[str],
    events_per_user: int,
    *,
    keep: int = 1000,
    chunk_entries: int = 50_000,
) -> dict[str, float]:
    """The generator's shoppers as ``user_ids`` (generator user ``n`` becomes
    ``user_ids[n - 1]``): one activity document per user (the newest ``keep`` entries,
    as the service's ingestion leaves them), bulk-inserted, and the activity watermark.
    Returns events, documents and the insert rate (documents/s, generation included)."""
    import pymongo
    from herald_common.clock import utc_day
    from herald_recommendations.catalog import generate_catalog
    from herald_recommendations.generator import ActivityGenerator

    now = datetime.now(UTC).replace(microsecond=0)
    catalog = generate_catalog(SEED, PRODUCTS, CATEGORIES)
    generator = ActivityGenerator(
        catalog,
        seed=SEED,
        users=len(user_ids),
        events=len(user_ids) * events_per_user,
        now=now.timestamp(),
    )
    client: Any = pymongo.MongoClient(run.mongo_url)
    coll = client[db][ACTIVE_USERS]
    events = 0
    docs: list[dict[str, Any]] = []
    pending = 0
    started = time.perf_counter()
    try:
        with Progress() as progress:
            task = progress.add_task(
                f"seeding {len(user_ids):,} users' activity", total=len(user_ids)
            )
            for number, (mock_id, interactions) in enumerate(generator.stream(), start=1):
                entries = sorted(
                    (
                        {
                            "i": f"gen-{SEED}-{mock_id}-{n}",
                            "p": item.product_id,
                            "k": item.kind,
                            "t": item.at,
                            "s": item.session_id,
                        }
                        for n, item in enumerate(interactions)
                    ),
                    key=lambda e: (e["t"], e["i"]),
                )[-keep:]
                events += len(interactions)
                docs.append(
                    {
                        "_id": user_ids[number - 1],
                        "rev": 1,
                        "recent": entries,
                        "last_activity_at": datetime.fromtimestamp(entries[-1]["t"], UTC),
                        "updated_at": now,
                        "updated_day": utc_day(now),
                    }
                )
                pending += len(entries)
                if pending >= chunk_entries or number == len(user_ids):
                    coll.insert_many(docs, ordered=False)
                    progress.update(task, advance=len(docs))
                    docs, pending = [], 0
        client[db][STATE].update_one({"_id": WATERMARK}, {"$max": {"updated_at": now}}, upsert=True)
    finally:
        client.close()
    seconds = time.perf_counter() - started
    return {"events": events, "docs": len(user_ids), "rate": len(user_ids) / seconds}


def read_pass(run: support.Run, db: str, page_size: int = 500) -> float:
    """Every activity document read once through one cursor (users/s): the ceiling of
    the batch's two passes over the users."""
    import pymongo

    client: Any = pymongo.MongoClient(run.mongo_url)
    try:
        started = time.perf_counter()
        count = sum(1 for _ in client[db][ACTIVE_USERS].find({}, batch_size=page_size))
        return count / (time.perf_counter() - started)
    finally:
        client.close()


def last_json(text: str) -> dict[str, Any]:
    """The last JSON object printed at the start of a line (the command's summary)."""
    decoder = json.JSONDecoder()
    starts = [i for i in range(len(text)) if text[i] == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError(f"no JSON summary in:\n{text[-2000:]}")


def service_env(run: support.Run) -> dict[str, str]:
    env = run.settings_env()
    env |= {
        "HERALD_RECOMMENDATIONS_CATALOG_SEED": str(SEED),
        "HERALD_RECOMMENDATIONS_CATALOG_PRODUCTS": str(PRODUCTS),
        "HERALD_RECOMMENDATIONS_CATALOG_CATEGORIES": str(CATEGORIES),
        # The batch's phases (model built, progress every page) in its log.
        "HERALD_LOG_LEVEL": "INFO",
    }
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "herald_recommendations.cli", *args]


async def measure_size(args: argparse.Namespace, users: int) -> dict[str, Any]:
    run = support.Run("recommendations")
    try:
        run.own_vhost()
        db = run.db("recommendations")
        # The service creates its indexes and catalog at start-up, before any data
        # arrives (an index built over a full collection is not what a batch costs).
        service = run.component(
            "recommendations",
            catalog_seed=SEED,
            catalog_products=PRODUCTS,
            catalog_categories=CATEGORIES,
        )
        run.wait_ready(service)
        service.stop()
        user_ids = [run.user(i) for i in range(users)]
        seeded = await asyncio.to_thread(seed_activity, run, db, user_ids, args.events_per_user)
        # Registered users opted into recommendations (the replica ``user.*`` builds).
        await asyncio.to_thread(support.seed_replica, run.mongo_url, db, user_ids, lambda i: True)
        ceiling = await asyncio.to_thread(read_pass, run, db)
        env = service_env(run)
        servers = support.server_pids(("ferretdb", "rabbitmq"))
        result: dict[str, Any] = {"users": users, "seeded": seeded, "read_rate": ceiling}
        with support.Sampler(dict(servers)) as sampler:
            print(f"batch --all over {users:,} users ...", flush=True)
            notify = "--notify" if args.notify else "--no-notify"
            batch, seconds = await asyncio.to_thread(
                support.run_to_end,
                run,
                "batch",
                cli("batch", "--all", notify),
                env,
                args.timeout,
                sampler,
            )
            result["batch"] = last_json(batch.log.read_text(errors="replace"))
            result["batch_seconds"] = seconds
            batch_peak = dict(sampler.peak)
        result["batch_rss"] = batch_peak
        result["batch_load"] = sampler.load
        if args.evaluate:
            with support.Sampler(dict(servers)) as evaluation_sampler:
                print(f"evaluate --source db over {users:,} users ...", flush=True)
                evaluation, seconds = await asyncio.to_thread(
                    support.run_to_end,
                    run,
                    "evaluate",
                    cli("evaluate", "--source", "db", "--json"),
                    env,
                    args.timeout,
                    evaluation_sampler,
                )
            result["evaluation"] = last_json(evaluation.log.read_text(errors="replace"))
            result["evaluation_seconds"] = seconds
            result["evaluation_rss"] = evaluation_sampler.peak["evaluate"]
            result["batch_load"] += evaluation_sampler.load
    finally:
        await asyncio.to_thread(run.close)
    return result


def rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """One column per size."""
    header = ["measure", *(f"{r['users']:,} users" for r in results)]

    def row(label: str, fn: Any) -> list[str]:
        cells = []
        for r in results:
            try:
                cells.append(fn(r))
            except KeyError:
                cells.append("")
        return [label, *cells]

    def scores(name: str) -> Any:
        return lambda r: "{precision:.4f} / {recall:.4f} / {coverage:.4f}".format(
            **r["evaluation"][name]
        )

    servers = [k for k in results[0]["batch_rss"] if k != "batch"]
    table = [
        row("seeded: events (activity documents)", lambda r: f"{r['seeded']['events']:,}"),
        row("seeding: bulk insert, users/s", lambda r: f"{r['seeded']['rate']:,.0f}"),
        row(
            "ceiling: one read pass over every activity document, users/s",
            lambda r: f"{r['read_rate']:,.0f}",
        ),
        row("batch --all: wall time, s", lambda r: f"{r['batch_seconds']:.1f}"),
        row("batch --all: users/s", lambda r: f"{r['users'] / r['batch_seconds']:,.0f}"),
        row(
            "batch users/s : read pass users/s",
            lambda r: support.ratio(r["users"] / r["batch_seconds"], r["read_rate"]),
        ),
        row(
            "batch: users / stored / notified / failed / unpublished",
            lambda r: " / ".join(
                f"{r['batch'].get(k, 0):,}"
                for k in ("users", "stored", "notified", "failed", "unpublished")
            ),
        ),
        row("peak RSS: batch process, MB", lambda r: f"{r['batch_rss']['batch']:.0f}"),
        *(
            row(
                f"peak RSS during the batch: {name}, MB",
                lambda r, n=name: f"{r['batch_rss'][n]:.0f}",
            )
            for name in servers
        ),
        row("evaluation: users evaluated", lambda r: f"{r['evaluation']['users_evaluated']:,}"),
        row("evaluation: model precision@10 / recall@10 / coverage", scores("model")),
        row("evaluation: popularity baseline, same", scores("baseline")),
        row(
            "evaluation: model : baseline recall@10",
            lambda r: (
                f"{r['evaluation']['model']['recall'] / r['evaluation']['baseline']['recall']:.1f}"
                if r["evaluation"]["baseline"]["recall"]
                else "-"
            ),
        ),
        row("evaluation: wall time, s", lambda r: f"{r['evaluation_seconds']:.1f}"),
        row("evaluation: peak RSS, MB", lambda r: f"{r['evaluation_rss']:.0f}"),
    ]
    return header, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--events-per-user", type=int, default=100)
    parser.add_argument(
        "--notify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stage and publish a notification per user, as the Job does (default)",
    )
    parser.add_argument(
        "--evaluate", action=argparse.BooleanOptionalAction, default=True, help="run the evaluation"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="per command, seconds")
    args = parser.parse_args(argv)
    results = [asyncio.run(measure_size(args, users)) for users in args.users]
    header, table = rows(results)
    support.print_table("recommendations batch", header, table)
    loads = [x for r in results for x in r["batch_load"]]
    load = f"{min(loads):.2f}-{max(loads):.2f} (1-min load average, {os.cpu_count()} cores)"
    support.append_results(
        "Recommendations batch",
        "python -m bench.recommendations " + " ".join(sys.argv[1:] if argv is None else argv),
        f"{', '.join(f'{u:,}' for u in args.users)} users, {args.events_per_user} events per "
        f"user on average (generator seed {SEED}, {PRODUCTS:,} products in {CATEGORIES} "
        "categories), every user registered and opted in; "
        f"`batch --all {'--notify' if args.notify else '--no-notify'}` and "
        "`evaluate --source db` as processes of the service's command line, each size in a "
        "run of its own; PostgreSQL is not sampled (its backends share its buffers and "
        "serve every other client of the shared server)",
        header,
        table,
        load=load,
    )


if __name__ == "__main__":
    main()
