"""Messaging benchmarks against the real broker: confirmed publish throughput and
publish-to-handler latency through a Herald consumer (retry/DLQ topology included).

    python -m bench.messaging [--messages 5000] [--concurrency 50]

Prints throughput, p50/p99 latency and peak memory beside the bare aio-pika ceiling
measured in the same run (same broker, same persistence and confirms, no Herald
topology), and appends them to ``bench/RESULTS.md``; nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from datetime import UTC, datetime

from herald_common.events import Envelope, NotificationRequested, make_event
from herald_common.messaging import Broker
from herald_common.settings import HeraldSettings
from rich.progress import track

from bench import ceilings, support


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


async def run(bench: support.Run, messages: int, concurrency: int) -> list[tuple[str, str, str]]:
    bare_one = await ceilings.amqp(bench, max(50, messages // 5), 1)
    bare_many = await ceilings.amqp(bench, messages, concurrency)
    settings: HeraldSettings = bench.broker_settings()
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

    queue = bench.queue("messaging")
    await consumer.consume(queue, ["notification.requested"], handler, prefetch=200)
    events = [_event(i) for i in range(2 * messages)]
    rows: list[tuple[str, str, str]] = []
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

        lat = support.latency_summary(latencies)
        seq_rate, conc_rate = messages / seq, messages / conc
        rows = [
            ("messages per run", f"{messages}", ""),
            (
                "bare aio-pika publishes/s, 1 in flight (ceiling)",
                f"{bare_one['publish_rate']:,.0f}",
                "1.00",
            ),
            (
                "Broker.publish/s, sequential",
                f"{seq_rate:,.0f}",
                support.ratio(seq_rate, bare_one["publish_rate"]),
            ),
            (
                f"bare aio-pika publishes/s, {concurrency} in flight (ceiling)",
                f"{bare_many['publish_rate']:,.0f}",
                "1.00",
            ),
            (
                f"Broker.publish/s, {concurrency} in flight",
                f"{conc_rate:,.0f}",
                support.ratio(conc_rate, bare_many["publish_rate"]),
            ),
            ("bare publish → consume latency p50 (ceiling)", f"{bare_one['p50']:.1f} ms", "1.00"),
            (
                "publish → Herald handler latency p50",
                f"{lat['p50']:.1f} ms",
                support.ratio(lat["p50"], bare_one["p50"]),
            ),
            ("publish → Herald handler latency p99", f"{lat['p99']:.1f} ms", ""),
            (
                "peak RSS of this process",
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
                "",
            ),
        ]
    finally:
        await consumer.close()
        await publisher.close()
    return rows


HEADER = ["measure", "value", "ratio to ceiling"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    with support.Run("messaging") as bench, support.Sampler({}) as sampler:
        rows = asyncio.run(run(bench, args.messages, args.concurrency))
    support.print_table("Herald messaging", HEADER, rows)
    support.append_results(
        "Messaging",
        "python -m bench.messaging " + " ".join(sys.argv[1:] if argv is None else argv),
        f"{args.messages} persistent confirmed messages per phase; publisher and consumer "
        "(retry/DLQ topology, prefetch 200) in this process",
        HEADER,
        rows,
        load=sampler.load_text(),
    )


if __name__ == "__main__":
    main()
