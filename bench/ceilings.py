"""Ceilings: what the machine and the servers do with nothing of Herald in the way.

    python -m bench.ceilings [--messages 3000] [--seconds 5] [--docs 20000]

* bare aio-pika: persistent publishes with publisher confirms, 1 and 100 in flight, to
  a durable quorum queue, consumed with manual acks on another connection (rate and
  publish → consume latency);
* bare Redis publish → subscribe;
* a bare FastAPI + uvicorn endpoint in its own process under the benchmarks' own HTTP
  load generator (50 connections);
* the MongoDB-compatible server's bulk insert of notification-shaped documents with
  the notifications service's indexes, and its indexed find (an inbox page).

The other benchmarks call these functions in their own run, so every figure stands
beside a ceiling measured under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import support


async def amqp(run: support.Run, messages: int, in_flight: int) -> dict[str, float]:
    """Confirmed persistent publishes → manual-ack consumer on the same broker."""
    import aio_pika

    queue_name = run.queue(f"sink.{uuid.uuid4().hex[:6]}")
    pub = await aio_pika.connect(run.amqp_url)
    sub = await aio_pika.connect(run.amqp_url)
    latencies: list[float] = []
    done = asyncio.Event()
    try:
        pub_channel = await pub.channel(publisher_confirms=True)
        sub_channel = await sub.channel()
        await sub_channel.set_qos(prefetch_count=max(200, in_flight * 2))
        queue = await sub_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            latencies.append(time.perf_counter() - float(message.body))
            await message.ack()
            if len(latencies) >= messages:
                done.set()

        tag = await queue.consume(on_message)
        semaphore = asyncio.Semaphore(in_flight)

        async def publish() -> None:
            async with semaphore:
                await pub_channel.default_exchange.publish(
                    aio_pika.Message(
                        str(time.perf_counter()).encode(),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue_name,
                )

        started = time.perf_counter()
        await asyncio.gather(*(publish() for _ in range(messages)))
        published = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 600)
        consumed = time.perf_counter() - started
        await queue.cancel(tag)
        await sub_channel.queue_delete(queue_name)
    finally:
        await pub.close()
        await sub.close()
    return {
        "publish_rate": messages / published,
        "consume_rate": messages / consumed,
        **support.latency_summary(latencies),
    }


async def redis_pubsub(messages: int) -> dict[str, float]:
    """Publish → subscribe through the shared Redis on a channel of its own."""
    import redis.asyncio as aioredis

    channel = f"herald:bench:{uuid.uuid4().hex}"
    client = aioredis.from_url(support.REDIS)
    subscriber = aioredis.from_url(support.REDIS)
    pubsub = subscriber.pubsub()
    latencies: list[float] = []
    try:
        await pubsub.subscribe(channel)
        while (await pubsub.get_message(timeout=5)) is None:
            pass  # the subscribe confirmation

        async def receive() -> None:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    latencies.append(time.perf_counter() - float(message["data"]))
                    if len(latencies) >= messages:
                        return

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        for _ in range(messages):
            await client.publish(channel, str(time.perf_counter()))
        await asyncio.wait_for(receiver, 300)
        elapsed = time.perf_counter() - started
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
        await client.aclose()
    return {"rate": messages / elapsed, **support.latency_summary(latencies)}


def start_bare(run: support.Run) -> support.Process:
    port = support.free_port()
    process = run.start(
        "bare-fastapi",
        [sys.executable, "-m", "bench.bare", str(port)],
        url=f"http://127.0.0.1:{port}",
    )
    run.wait_ready(process)
    return process


async def bare_http(url: str, seconds: float, concurrency: int = 50) -> support.Load:
    body = {"query": "{ unreadCount }"}
    return await support.http_load(
        url,
        lambda i: ("POST", "/graphql", body, None),
        concurrency=concurrency,
        seconds=seconds,
    )


NOTIFICATION_INDEXES: list[tuple[list[tuple[str, int]], bool]] = [
    ([("idempotency_key", 1)], True),
    ([("user_id", 1), ("replaced", 1), ("read", 1), ("sent_at", -1)], False),
    ([("user_id", 1), ("replaced", 1), ("sent_at", -1)], False),
    ([("user_id", 1), ("collapse_key", 1), ("read", 1)], False),
    ([("day", 1)], False),
]


def notification_doc(i: int, user_id: str, sent_at: datetime) -> dict[str, Any]:
    """A stored notification, shaped as the service stores it."""
    return {
        "_id": str(uuid.UUID(int=(uuid.uuid4().int & ~0xFFFFFFFF) | i)),
        "user_id": user_id,
        "type": "promotion",
        "content": {"title": "Flash sale", "body": "Everything 20% off today", "data": {"i": i}},
        "sent_at": sent_at,
        "requested_at": sent_at,
        "read": i % 3 == 0,
        "read_at": sent_at if i % 3 == 0 else None,
        "seen": False,
        "archived": False,
        "snoozed": False,
        "deleted": False,
        "collapse_key": None,
        "replaced": False,
        "source": "bench",
        "idempotency_key": f"bench:{i}",
        "day": sent_at.strftime("%Y-%m-%d"),
    }


def database(run: support.Run, docs: int, users: int = 1000) -> dict[str, float]:
    """Bulk insert (batches of 1,000, unordered) with the service's indexes, then
    inbox-page finds on the leading index field."""
    import pymongo

    client: Any = pymongo.MongoClient(run.mongo_url)
    name = run.db("ceiling")
    coll = client[name]["notifications"]
    try:
        for keys, unique in NOTIFICATION_INDEXES:
            coll.create_index(keys, unique=unique)
        now = datetime.now(UTC).replace(microsecond=0)
        raw = [
            notification_doc(i, f"c{i % users:06d}", now - timedelta(seconds=i))
            for i in range(docs)
        ]
        started = time.perf_counter()
        for i in range(0, docs, 1000):
            coll.insert_many(raw[i : i + 1000], ordered=False)
        insert_rate = docs / (time.perf_counter() - started)
        finds = min(2000, max(50, docs // 20))
        started = time.perf_counter()
        for i in range(finds):
            list(
                coll.find({"user_id": f"c{i % users:06d}", "replaced": False})
                .sort("sent_at", -1)
                .limit(21)
            )
        find_rate = finds / (time.perf_counter() - started)
    finally:
        client.drop_database(name)
        client.close()
    return {"insert_rate": insert_rate, "find_rate": find_rate}


async def measure(
    run: support.Run, messages: int, seconds: float, docs: int
) -> list[tuple[str, float, str]]:
    """All ceilings, as (measure, value, unit) rows."""
    rows: list[tuple[str, float, str]] = []
    one = await amqp(run, max(50, messages // 5), 1)
    many = await amqp(run, messages, 100)
    rows += [
        ("aio-pika confirmed persistent publish, 1 in flight", one["publish_rate"], "msg/s"),
        ("aio-pika confirmed persistent publish, 100 in flight", many["publish_rate"], "msg/s"),
        ("aio-pika publish → consumed (100 in flight)", many["consume_rate"], "msg/s"),
        ("aio-pika publish → consume latency p50 (1 in flight)", one["p50"], "ms"),
    ]
    r = await redis_pubsub(messages)
    rows += [
        ("Redis publish → subscribe", r["rate"], "msg/s"),
        ("Redis publish → subscribe p99", r["p99"], "ms"),
    ]
    bare = start_bare(run)
    assert bare.url is not None
    load = await bare_http(bare.url, seconds)
    bare.stop()
    lat = support.latency_summary(load.latencies)
    rows += [
        ("bare FastAPI + uvicorn, 50 connections", load.rate, "req/s"),
        ("bare FastAPI p99", lat["p99"], "ms"),
    ]
    db = await asyncio.to_thread(database, run, docs)
    rows += [
        ("bulk insert, notification documents, 5 indexes", db["insert_rate"], "docs/s"),
        ("indexed find (inbox page of 21)", db["find_rate"], "finds/s"),
    ]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args(argv)
    with support.Run("ceilings") as run:
        with support.Sampler({}) as sampler:
            rows = asyncio.run(measure(run, args.messages, args.seconds, args.docs))
    table = [(m, f"{v:,.1f}" if v < 100 else f"{v:,.0f}", u) for m, v, u in rows]
    support.print_table("ceilings", ["measure", "value", "unit"], table)
    support.append_results(
        "Ceilings",
        "python -m bench.ceilings " + " ".join(sys.argv[1:] if argv is None else argv),
        f"{args.messages} messages, {args.seconds} s of HTTP load, {args.docs:,} documents",
        ["measure", "value", "unit"],
        table,
        load=sampler.load_text(),
    )


if __name__ == "__main__":
    main()
