"""Messaging benchmarks against the real broker: confirmed publish throughput and
publish-to-handler latency through a Herald consumer (retry/DLQ topology included).

    python -m bench [--messages 5000] [--concurrency 50]

Prints throughput, p50/p99 latency and peak memory; nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import resource
import statistics
import time
import uuid
from datetime import UTC, datetime

from herald_common.events import Envelope, NotificationRequested, make_event
from herald_common.messaging import Broker
from herald_common.settings import HeraldSettings
from rich.console import Console
from rich.progress import track
from rich.table import Table


def _event(i: int) -> Envelope:
    return make_event(
        "notification.requested",
        NotificationRequested(
            idempotency_key=f"bench-{i}",
            user_id=f"u{i % 1000}",
            type="promotion",
            content={"title": "Sale", "body": "Everything -20%", "data": {"i": i}},
            source="bench",
            requested_at=datetime.now(UTC),
        ),
        source="bench",
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(messages: int, concurrency: int) -> list[tuple[str, str]]:
    run_id = uuid.uuid4().hex[:8]
    settings = HeraldSettings(
        service_name="bench",
        events_exchange=f"herald.events.bench{run_id}",
        dead_letter_exchange=f"herald.dlx.bench{run_id}",
    )
    publisher = Broker(settings, source="bench-pub")
    consumer = Broker(settings, source="bench-sub")
    await publisher.connect()
    await consumer.connect()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(event: Envelope) -> None:
        latencies.append(time.perf_counter() - sent_at[str(event.id)])
        if len(latencies) >= 2 * messages:
            done.set()

    queue = f"bench.{run_id}"
    await consumer.consume(queue, ["notification.requested"], handler, prefetch=200)
    events = [_event(i) for i in range(2 * messages)]
    rows: list[tuple[str, str]] = []
    try:
        # 1. One publish at a time: each waits for its confirm.
        started = time.perf_counter()
        for event in track(events[:messages], description="sequential publish"):
            sent_at[str(event.id)] = time.perf_counter()
            await publisher.publish(event)
        seq = time.perf_counter() - started

        # 2. Up to `concurrency` publishes in flight.
        semaphore = asyncio.Semaphore(concurrency)

        async def one(event: Envelope) -> None:
            async with semaphore:
                sent_at[str(event.id)] = time.perf_counter()
                await publisher.publish(event)

        started = time.perf_counter()
        await asyncio.gather(*(one(e) for e in events[messages:]))
        conc = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), timeout=300)

        rows = [
            ("messages per run", f"{messages}"),
            ("confirmed publishes/s, sequential", f"{messages / seq:,.0f}"),
            (f"confirmed publishes/s, {concurrency} in flight", f"{messages / conc:,.0f}"),
            ("publish→handler latency p50", f"{statistics.median(latencies) * 1000:.1f} ms"),
            ("publish→handler latency p99", f"{_pct(latencies, 0.99) * 1000:.1f} ms"),
            (
                "peak RSS of this process",
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
            ),
        ]
    finally:
        await consumer.close()
        await publisher.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    rows = asyncio.run(run(args.messages, args.concurrency))
    table = Table(
        title=f"Herald messaging ({platform.machine()}, Python {platform.python_version()})"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
