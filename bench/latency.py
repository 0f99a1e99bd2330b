"""End-to-end latency: ``notification.requested`` → the notification on a GraphQL
WebSocket subscription, under background load.

    python -m bench.latency [--probes 1000] [--subscribers 20] [--activity-rate 500]
                            [--campaign-rate 200]

Real notifications, recommendations and gateway processes (own virtual host, databases,
ports). ``--subscribers`` users hold a ``notificationAdded`` subscription on the
gateway (graphql-transport-ws). Meanwhile a steady background runs: ``--activity-rate``
activity events/s through ``trackActivity`` (batches of 50, stored by recommendations)
and ``--campaign-rate`` promotion requests/s for other users (the traffic of a running
campaign's fan-out). Every probe is an ``order_update`` request for one subscriber,
published with confirms; its latency is from just before the publish until the
subscriber's WebSocket delivers it. Prints p50/p95/p99/max beside the ceiling of the
same two hops in the same run (bare aio-pika publish → consume plus bare Redis
publish → subscribe), writes a histogram next to ``bench/RESULTS.md`` and appends
the results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herald_common.events import NotificationRequested, make_event
from herald_common.messaging import Broker
from rich.progress import Progress
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench import ceilings, support

SUBSCRIPTION = "subscription { notificationAdded { id type content } }"
TRACK = "mutation Track($e: [ActivityInput!]!) { trackActivity(events: $e) }"


async def subscriber(
    url: str, token: str, received: dict[str, float], ready: asyncio.Event
) -> None:
    protocols = [Subprotocol("graphql-transport-ws")]
    async with connect(url, subprotocols=protocols, max_size=2**22) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"WebSocket refused: {ack}")
        await ws.send(
            json.dumps({"id": "s", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        )
        ready.set()
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "next":
                node = message["payload"]["data"]["notificationAdded"]
                probe = (node.get("content") or {}).get("data", {}).get("probe")
                if probe:
                    received[probe] = time.perf_counter()
            elif message.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))


def request(user_id: str, kind: str, key: str, data: dict[str, Any]) -> Any:
    return make_event(
        "notification.requested",
        NotificationRequested(
            idempotency_key=key,
            user_id=user_id,
            type=kind,
            content={"title": "Your order shipped", "body": "On its way", "data": data},
            source="bench",
            requested_at=datetime.now(UTC),
        ),
        source="bench",
    )


async def background(
    stop: asyncio.Event,
    broker: Broker,
    gateway: str,
    run: support.Run,
    tokens: list[str],
    others: list[str],
    activity_rate: float,
    campaign_rate: float,
) -> dict[str, int]:
    """Paced background traffic until ``stop``: activity batches and campaign requests,
    sent in ticks of 0.1 s."""
    import aiohttp

    counts = {"activities": 0, "activity_errors": 0, "campaign": 0, "skipped": 0}
    tick = 0.1
    # Bounded: a machine that cannot keep up sends less (counted), it does not pile up.
    limit, in_flight = 32, [0]
    pending: set[asyncio.Task[Any]] = set()
    async with aiohttp.ClientSession(gateway) as session:

        async def track(i: int, size: int) -> None:
            events = [
                {"kind": "VIEW", "productId": f"p-{(i * 7 + k) % 2000 + 1:05d}"}
                for k in range(size)
            ]
            headers = {"authorization": f"Bearer {tokens[i % len(tokens)]}"}
            body = {"query": TRACK, "variables": {"e": events}}
            try:
                async with session.post("/graphql", json=body, headers=headers) as r:
                    payload = await r.json()
                ok = r.status == 200 and "errors" not in payload
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            finally:
                in_flight[0] -= 1
            if ok:
                counts["activities"] += size
            else:
                counts["activity_errors"] += 1

        async def promote(i: int) -> None:
            try:
                await broker.publish(
                    request(others[i % len(others)], "promotion", f"bg:{run.run_id}:{i}", {})
                )
                counts["campaign"] += 1
            finally:
                in_flight[0] -= 1

        def launch(job: Any) -> None:
            if in_flight[0] >= limit:
                counts["skipped"] += 1
                job.close()  # never started
                return
            in_flight[0] += 1
            pending.add(asyncio.create_task(job))

        activity_due = campaign_due = 0.0
        n = 0
        while not stop.is_set():
            activity_due += activity_rate * tick
            campaign_due += campaign_rate * tick
            while activity_due >= 50:
                activity_due -= 50
                n += 1
                launch(track(n, 50))
            while campaign_due >= 1:
                campaign_due -= 1
                n += 1
                launch(promote(n))
            pending.difference_update([t for t in pending if t.done()])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
        await asyncio.gather(*pending, return_exceptions=True)
    return counts


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    run = support.Run("latency")
    try:
        run.own_vhost()
        amqp = await ceilings.amqp(run, args.ceiling_messages, 1)
        redis = await ceilings.redis_pubsub(args.ceiling_messages)
        notifications = run.component("notifications", run_sweeps="false")
        recommendations = run.component("recommendations")
        run.wait_ready(notifications, recommendations)
        gateway = run.component(
            "gateway",
            notifications_url=notifications.url,
            recommendations_url=recommendations.url,
            rate_limit_per_minute=10_000_000,
            service_timeout_seconds=30,
        )
        run.wait_ready(gateway)
        assert gateway.url
        subscribers = [run.user(i) for i in range(args.subscribers)]
        others = [run.user(100_000 + i) for i in range(args.background_users)]
        await asyncio.to_thread(
            support.seed_replica,
            run.mongo_url,
            run.db("notifications"),
            subscribers + others,
            lambda i: True,
        )
        ws_url = gateway.url.replace("http://", "ws://") + "/graphql"
        received: dict[str, float] = {}
        readies = [asyncio.Event() for _ in subscribers]
        listeners = [
            asyncio.create_task(subscriber(ws_url, run.token(u), received, r))
            for u, r in zip(subscribers, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        broker = Broker(run.broker_settings(), source="bench")
        await broker.connect()
        stop = asyncio.Event()
        tokens = [run.token(u) for u in others[:200]]
        pids = {
            "gateway": gateway.pid,
            "notifications": notifications.pid,
            "recommendations": recommendations.pid,
        }
        with support.Sampler(pids) as sampler:
            load = asyncio.create_task(
                background(
                    stop,
                    broker,
                    gateway.url,
                    run,
                    tokens,
                    others,
                    args.activity_rate,
                    args.campaign_rate,
                )
            )
            await asyncio.sleep(args.warmup)
            sent: dict[str, float] = {}
            started = time.perf_counter()
            with Progress() as progress:
                task = progress.add_task("probes", total=args.probes)
                for i in range(args.probes):
                    probe = f"{run.run_id}-{i}"
                    user = subscribers[i % len(subscribers)]
                    sent[probe] = time.perf_counter()
                    await broker.publish(
                        request(user, "order_update", f"probe:{probe}", {"probe": probe})
                    )
                    progress.update(task, completed=len(received))
                    await asyncio.sleep(args.interval)
                deadline = time.perf_counter() + 60
                while len(received) < len(sent) and time.perf_counter() < deadline:
                    progress.update(task, completed=len(received))
                    await asyncio.sleep(0.2)  # waiting for the last deliveries
            elapsed = time.perf_counter() - started
            stop.set()
            counts = await load
        await broker.close()
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    finally:
        await asyncio.to_thread(run.close)
    latencies = [received[p] - t for p, t in sent.items() if p in received]
    return {
        "latencies": latencies,
        "lost": len(sent) - len(latencies),
        "amqp": amqp,
        "redis": redis,
        "activity_rate": counts["activities"] / elapsed,
        "activity_errors": counts["activity_errors"],
        "skipped": counts["skipped"],
        "campaign_rate": counts["campaign"] / elapsed,
        "load": sampler.load_text(),
        "rss": sampler.rss_text(),
    }


def plot(latencies: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [x * 1000 for x in latencies]
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.hist(ms, bins=60, color="#4477aa")
    for q, style in ((0.5, "-"), (0.95, "--"), (0.99, ":")):
        value = support.percentile(ms, q)
        axis.axvline(value, color="black", linestyle=style, label=f"p{int(q * 100)} {value:.0f} ms")
    axis.set_xlabel("notification.requested → WebSocket (ms)")
    axis.set_ylabel("probes")
    axis.set_title("end-to-end latency under background load")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


HEADER = ["measure", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 / ceiling p99"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between probes")
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--background-users", type=int, default=2000)
    parser.add_argument("--activity-rate", type=float, default=500)
    parser.add_argument("--campaign-rate", type=float, default=200)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--ceiling-messages", type=int, default=500)
    args = parser.parse_args(argv)
    r = asyncio.run(measure(args))
    e2e = support.latency_summary(r["latencies"])
    amqp, redis = r["amqp"], r["redis"]
    ceiling_p99 = amqp["p99"] + redis["p99"]
    rows = [
        [
            "ceiling: bare aio-pika publish (confirmed) → consume",
            *(f"{amqp[k]:.1f}" for k in ("p50", "p95", "p99", "max")),
            "",
        ],
        [
            "ceiling: bare Redis publish → subscribe",
            *(f"{redis[k]:.1f}" for k in ("p50", "p95", "p99", "max")),
            "",
        ],
        [
            f"notification.requested → WebSocket ({len(r['latencies'])} probes delivered, "
            f"{r['lost']} not within 60 s after the last)",
            *(f"{e2e[k]:.1f}" for k in ("p50", "p95", "p99", "max")),
            support.ratio(e2e["p99"], ceiling_p99),
        ],
    ]
    support.print_table("end-to-end latency", HEADER, rows)
    image = support.results_path().parent / "latency.png"
    if r["latencies"]:
        plot(r["latencies"], image)
    support.append_results(
        "End-to-end latency",
        "python -m bench.latency " + " ".join(sys.argv[1:] if argv is None else argv),
        f"{args.subscribers} WebSocket subscribers, a probe every {args.interval * 1000:.0f} ms; "
        f"background measured: {r['activity_rate']:,.0f} activity events/s through "
        f"trackActivity ({r['activity_errors']} failed requests) and "
        f"{r['campaign_rate']:,.0f} promotion requests/s ({r['skipped']} background sends "
        f"skipped with 32 in flight: the target was {args.activity_rate:g} events/s and "
        f"{args.campaign_rate:g} requests/s); peak RSS {r['rss']}",
        HEADER,
        rows,
        load=r["load"],
        images=[image] if r["latencies"] else [],
    )


if __name__ == "__main__":
    main()
