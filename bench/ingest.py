"""Activity ingest: ``trackActivity`` through the gateway until stored by recommendations.

    python -m bench.ingest [--seconds 15] [--concurrency 50] [--users 1000]

A real gateway and a real recommendations process (own virtual host, databases,
ports). ``--concurrency`` clients send ``trackActivity`` for ``--seconds``, each request
as one of ``--users`` users, first with one event per mutation (one message), then with
100 (one message of 100), after every product was named once (the gateway's product
cache warm, as in steady state). Measured: events accepted per second by the gateway, and
events stored per second by the recommendations consumer (from the first request until
the last event is in its database, as its
``herald_recommendations_activities_total{outcome="stored"}`` counts). Beside them, in the same run: the bare aio-pika
confirmed publish rate with 1 and 100 in flight. Appends to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import ceilings, support

MUTATION = "mutation Track($e: [ActivityInput!]!) { trackActivity(events: $e) }"
PRODUCTS = [f"p-{i:05d}" for i in range(1, 2001)]


async def warm_product_cache(url: str, token: str) -> None:
    """Name every product once (in calls of 100, not measured): the gateway keeps the
    product facts it enriches with, so the phases see it in its steady state."""
    import httpx

    now = datetime.now(UTC).isoformat()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for start in range(0, len(PRODUCTS), 100):
            events = [
                {"kind": "VIEW", "productId": p, "occurredAt": now}
                for p in PRODUCTS[start : start + 100]
            ]
            answer = await client.post(
                "/graphql",
                json={"query": MUTATION, "variables": {"e": events}},
                headers={"authorization": f"Bearer {token}"},
            )
            answer.raise_for_status()


STORED = 'herald_recommendations_activities_total{outcome="stored"}'


async def stored(url: str) -> int:
    """Activities the recommendations process at ``url`` stored as new rows (its own
    counter: counting the collection would read all of it on this server, and slow
    the consumer it measures)."""
    return int(await support.metric(url, STORED))


async def wait_stored(url: str, expected: int, timeout: float) -> float:
    """perf_counter() when ``expected`` activities are stored (polled every 0.2 s: the
    benchmark's own progress check, not part of what is measured)."""
    deadline = time.perf_counter() + timeout
    while True:
        count = await stored(url)
        if count >= expected:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {count} of {expected} activities stored after {timeout} s")
        await asyncio.sleep(0.2)


async def phase(
    run: support.Run,
    url: str,
    recommendations_url: str,
    tokens: list[str],
    per_message: int,
    concurrency: int,
    seconds: float,
) -> dict[str, Any]:
    before = await stored(recommendations_url)

    def request(i: int) -> tuple[str, str, Any, dict[str, str]]:
        now = datetime.now(UTC).isoformat()
        events = [
            {"kind": "VIEW", "productId": PRODUCTS[(i * 31 + k) % len(PRODUCTS)], "occurredAt": now}
            for k in range(per_message)
        ]
        body = {"query": MUTATION, "variables": {"e": events}}
        return ("POST", "/graphql", body, {"authorization": f"Bearer {tokens[i % len(tokens)]}"})

    started = time.perf_counter()
    load = await support.http_load(
        url, request, concurrency=concurrency, seconds=seconds, warmup=0.0
    )
    if not load.latencies:
        raise RuntimeError(f"no trackActivity succeeded: {load.first_error}")
    # Requests still in flight when the window closed were sent, but not counted: wait
    # for everything the gateway accepted (a few more than measured).
    accepted_min = len(load.latencies) * per_message
    done = await wait_stored(recommendations_url, before + accepted_min, timeout=600)
    total = await stored(recommendations_url) - before
    return {
        "accepted_rate": accepted_min / load.elapsed,
        "stored_rate": total / (done - started),
        "errors": load.errors,
        "first_error": load.first_error,
        **support.latency_summary(load.latencies),
    }


async def measure(args: argparse.Namespace) -> tuple[list[list[str]], str]:
    run = support.Run("ingest")
    try:
        run.own_vhost()
        one = await ceilings.amqp(run, max(50, args.ceiling_messages // 5), 1)
        many = await ceilings.amqp(run, args.ceiling_messages, 100)
        recommendations = run.component("recommendations")
        run.wait_ready(recommendations)
        gateway = run.component(
            "gateway",
            recommendations_url=recommendations.url,
            rate_limit_per_minute=10_000_000,
            service_timeout_seconds=30,
        )
        run.wait_ready(gateway)
        assert gateway.url
        assert recommendations.url
        tokens = [run.token(run.user(i)) for i in range(args.users)]
        await warm_product_cache(gateway.url, tokens[0])
        pids = {"gateway": gateway.pid, "recommendations": recommendations.pid}
        with support.Sampler(pids) as sampler:
            single = await phase(
                run, gateway.url, recommendations.url, tokens, 1, args.concurrency, args.seconds
            )
            batched = await phase(
                run, gateway.url, recommendations.url, tokens, 100, args.concurrency, args.seconds
            )
    finally:
        await asyncio.to_thread(run.close)
    rows = [
        [
            "aio-pika confirmed publish, 1 in flight (ceiling)",
            f"{one['publish_rate']:,.0f}",
            "",
            "1.00",
            "",
        ],
        [
            "aio-pika confirmed publish, 100 in flight (ceiling)",
            f"{many['publish_rate']:,.0f}",
            "",
            "",
            "1.00",
        ],
    ]
    for name, r in (("1 event per message", single), ("100 events per message", batched)):
        rows.append(
            [
                f"trackActivity, {name}: accepted by the gateway",
                f"{r['accepted_rate']:,.0f}",
                f"{r['p50']:.0f} / {r['p99']:.0f}",
                support.ratio(r["accepted_rate"], one["publish_rate"]),
                support.ratio(r["accepted_rate"], many["publish_rate"]),
            ]
        )
        rows.append(
            [
                f"trackActivity, {name}: stored by recommendations",
                f"{r['stored_rate']:,.0f}",
                f"errors {r['errors']}",
                support.ratio(r["stored_rate"], one["publish_rate"]),
                support.ratio(r["stored_rate"], many["publish_rate"]),
            ]
        )
        if r["errors"]:
            print(f"first error ({name}): {r['first_error']}", file=sys.stderr)
    return rows, sampler.load_text() + "; peak RSS " + sampler.rss_text()


HEADER = [
    "measure",
    "events/s",
    "request p50 / p99 ms",
    "ratio to 1-in-flight publish",
    "ratio to 100-in-flight publish",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--ceiling-messages", type=int, default=3000)
    args = parser.parse_args(argv)
    rows, load = asyncio.run(measure(args))
    support.print_table("activity ingest", HEADER, rows)
    support.append_results(
        "Activity ingest",
        "python -m bench.ingest " + " ".join(sys.argv[1:] if argv is None else argv),
        f"{args.concurrency} clients for {args.seconds:g} s per phase, as {args.users:,} "
        "users; one gateway and one recommendations process",
        HEADER,
        rows,
        load=load,
    )


if __name__ == "__main__":
    main()
