"""Campaign fan-out: one ``campaign.fired`` → a notification stored for every opted-in user.

    python -m bench.fanout [--users 10000 100000 1000000] [--batch-max 500]
                           [--py-spy PATH] [--py-spy-seconds 30]

Real scheduler and notifications processes (own virtual host, databases, ports). For
each size N, the user replicas of both hold 1.2 x N users of whom N are opted into
promotions (seeded with bulk inserts, growing from one size to the next); the benchmark
publishes one ``campaign.fired`` and measures the time until the notifications service
has stored N notifications (its own counter), notifications/s, and the peak RSS of
every process (Herald's, the shared servers', this one) sampled with psutil. Beside it,
in the same run: the database's bulk-insert rate for notification documents (the
ceiling of storing) and the confirmed publish rate (100 in flight). Appends to
``bench/RESULTS.md`` with a plot of time and memory against N. ``--py-spy PATH`` records
the scheduler and the notifications service for the first ``--py-spy-seconds`` of each
fan-out with that py-spy binary and adds their top functions to the results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herald_common.events import CampaignAudience, CampaignFired, CampaignTemplate, make_event
from herald_common.messaging import Broker
from rich.progress import Progress

from bench import ceilings, support

CREATED = "herald_notifications_created_total"


async def fire_and_wait(
    run: support.Run,
    notifications: support.Process,
    scheduler: support.Process,
    size: int,
    sampler_pids: dict[str, int],
    spy: tuple[str, float] | None = None,
) -> dict[str, Any]:
    assert notifications.url and scheduler.url
    broker = Broker(run.broker_settings(), source="bench")
    await broker.connect()
    before = await support.metric(notifications.url, CREATED)
    fired = CampaignFired(
        campaign=f"bench-{size}",
        run_id=f"{run.run_id}-{size}",
        type="promotion",
        audience=CampaignAudience(),
        template=CampaignTemplate(title="Hello {first_name}", body="Everything 20% off today"),
        fired_at=datetime.now(UTC),
    )
    with support.Sampler(dict(sampler_pids)) as sampler, Progress() as progress:
        task = progress.add_task(f"fan-out to {size:,} users", total=size)
        started = time.perf_counter()
        await broker.publish(make_event("campaign.fired", fired, source="bench"))
        await broker.close()
        profiles: dict[str, Path] = {}
        if spy is not None:
            for process in (scheduler, notifications):
                out = run.dir / f"py-spy-{size}-{process.name}.txt"
                support.py_spy(spy[0], process.pid, spy[1], out)
                profiles[f"{process.name} during the first {spy[1]:g} s at {size:,}"] = out
        deadline = started + max(600.0, size / 50)
        while True:
            created = await support.metric(notifications.url, CREATED) - before
            progress.update(task, completed=created)
            if created >= size:
                break
            for process in (notifications, scheduler):
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {created:.0f} of {size} stored")
            await asyncio.sleep(0.5)  # the benchmark's progress check, not measured work
        elapsed = time.perf_counter() - started
    published = await _scheduler_seconds(run, scheduler, fired.campaign)
    return {
        "published": published,
        "size": size,
        "seconds": elapsed,
        "rate": size / elapsed,
        "peak": dict(sampler.peak),
        "load": sampler.load_text(),
        "profiles": profiles,
    }


async def _scheduler_seconds(run: support.Run, scheduler: support.Process, name: str) -> float:
    """The scheduler's own record of the run: started → every request published."""
    import httpx

    admin = run.token("bench-admin", roles=["admin"])
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            f"{scheduler.url}/v1/campaigns/runs?first=50",
            headers={"authorization": f"Bearer {admin}"},
        )
    response.raise_for_status()
    for item in response.json():
        if item["campaign"] == name and item["started_at"] and item["finished_at"]:
            started = datetime.fromisoformat(item["started_at"])
            return (datetime.fromisoformat(item["finished_at"]) - started).total_seconds()
    return float("nan")


async def measure(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, float]]:
    run = support.Run("fanout")
    results: list[dict[str, Any]] = []
    try:
        run.own_vhost()
        db_ceiling = await asyncio.to_thread(ceilings.database, run, args.ceiling_docs)
        amqp = await ceilings.amqp(run, args.ceiling_messages, 100)
        notifications = run.component(
            "notifications",
            run_sweeps="false",
            batch_max=args.batch_max,
            prefetch=args.batch_max * 2,
        )
        scheduler = run.component("scheduler")
        run.wait_ready(notifications, scheduler)
        pids = {
            "scheduler": scheduler.pid,
            "notifications": notifications.pid,
            "benchmark": os.getpid(),
            **support.server_pids(),
        }
        seeded = 0
        for size in sorted(args.users):
            total = int(size * 1.2)
            users = [run.user(i) for i in range(seeded, total)]

            def opted(i: int, offset: int = seeded) -> bool:
                return (offset + i) % 6 != 5  # 5 of every 6: N of 1.2 x N

            # Exactly N opted in: the first N of the population in that pattern.
            for db in (run.db("scheduler"), run.db("notifications")):
                await asyncio.to_thread(
                    support.seed_replica, run.mongo_url, db, users, lambda i: opted(i)
                )
            seeded = total
            opted_in = sum(1 for i in range(total) if i % 6 != 5)
            spy = (args.py_spy, args.py_spy_seconds) if args.py_spy else None
            result = await fire_and_wait(run, notifications, scheduler, opted_in, pids, spy)
            result["population"] = total
            results.append(result)
    finally:
        await asyncio.to_thread(run.close)
    return results, {
        "insert": db_ceiling["insert_rate"],
        "publish": amqp["publish_rate"],
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(sizes, [r["seconds"] for r in results], "o-")
    left.set_xlabel("opted-in users")
    left.set_ylabel("fired → all stored (s)")
    left.set_title("campaign fan-out time")
    left.grid(True, alpha=0.3)
    for name in results[0]["peak"]:
        right.plot(sizes, [r["peak"][name] for r in results], "o-", label=name)
    right.set_xlabel("opted-in users")
    right.set_ylabel("peak RSS (MB)")
    right.set_title("peak memory per process")
    right.legend(fontsize=7)
    right.grid(True, alpha=0.3)
    if len(sizes) > 1 and max(sizes) / min(sizes) >= 10:
        for axis in (left, right):
            axis.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


HEADER = [
    "opted-in users (population)",
    "fired → all stored",
    "scheduler: run started → all published",
    "notifications/s",
    "ratio to bulk insert",
    "peak RSS (MB)",
    "load average",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-max", type=int, default=500)
    parser.add_argument("--ceiling-docs", type=int, default=20_000)
    parser.add_argument("--ceiling-messages", type=int, default=3000)
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: profile each fan-out")
    parser.add_argument("--py-spy-seconds", type=float, default=30)
    args = parser.parse_args(argv)
    results, ceiling = asyncio.run(measure(args))
    rows = [
        [
            f"{r['size']:,} ({r['population']:,})",
            f"{r['seconds']:.1f} s",
            f"{r['published']:.1f} s",
            f"{r['rate']:,.0f}",
            support.ratio(r["rate"], ceiling["insert"]),
            ", ".join(f"{k} {v:.0f}" for k, v in r["peak"].items()),
            r["load"],
        ]
        for r in results
    ]
    support.print_table("campaign fan-out", HEADER, rows)
    image = support.results_path().parent / "fanout.png"
    plot(results, image)
    support.append_results(
        "Campaign fan-out",
        "python -m bench.fanout " + " ".join(sys.argv[1:] if argv is None else argv),
        f"one scheduler and one notifications process (batches of {args.batch_max}); "
        f"ceilings in the same run: bulk insert {ceiling['insert']:,.0f} docs/s, "
        f"confirmed publish (100 in flight) {ceiling['publish']:,.0f} msg/s",
        HEADER,
        rows,
        load=", ".join(r["load"] for r in results[:1]) + " (per size in the table)",
        images=[image],
        notes="\n\n".join(
            support.py_spy_summary(label, path)
            for r in results
            for label, path in r["profiles"].items()
        ),
    )


if __name__ == "__main__":
    main()
