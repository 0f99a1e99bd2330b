"""Alias amplification: how much one caller's hostile queries slow another caller's.

    python -m bench.hostile [--latency 0.02] [--capacity 16] [--attackers 12] [--seconds 8]

A real gateway process (``python -m herald_gateway``, real Redis and RabbitMQ, cache
off so every field is a call) in front of a stand-in notifications service on its own port that answers after
``latency`` seconds and serves at most ``capacity`` calls at once (a service with a
fixed worker pool). One caller, Bob, sends ``{ unreadCount }`` one after another;
meanwhile ``attackers`` concurrent loops of another caller, Mallory, send a hostile
document. Scenarios:

* baseline — Bob alone;
* the probe's ``{ a0: unreadCount … a149: unreadCount }``;
* 20 aliases with distinct arguments (the most one request may cost by default);
* 150 aliases with distinct arguments against a gateway with the limits lifted
  (budget 1000 calls, no per-caller call or request slots): the shape of the gateway
  before the fix (aliases were never de-duplicated either).

Prints Bob's latency (p50, p95, max, ratio to the baseline p50), Mallory's throughput
and the most calls Mallory had in flight at the service. Nothing here asserts a
threshold; results go to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from herald_testing import serve_app
from rich.console import Console
from rich.table import Table

from bench import support


@dataclass
class Service:
    """The stand-in notifications service and what it saw."""

    app: FastAPI
    in_flight: Counter[str]
    max_in_flight: Counter[str]
    calls: Counter[str]


def _notifications(latency: float, capacity: int, callers: dict[str, str]) -> Service:
    app = FastAPI()
    workers = asyncio.Semaphore(capacity)
    service = Service(app, Counter(), Counter(), Counter())

    @app.middleware("http")
    async def serve(request: Request, call_next: Any) -> Any:
        caller = callers.get(request.headers.get("authorization", ""), "other")
        service.calls[caller] += 1
        service.in_flight[caller] += 1
        service.max_in_flight[caller] = max(
            service.max_in_flight[caller], service.in_flight[caller]
        )
        try:
            async with workers:
                await asyncio.sleep(latency)
                return await call_next(request)
        finally:
            service.in_flight[caller] -= 1

    @app.get("/v1/notifications/unread-count")
    async def unread() -> dict[str, int]:
        return {"count": 3}

    @app.get("/v1/notifications")
    async def listing() -> dict[str, Any]:
        return {"edges": [], "page_info": {"has_next_page": False}, "total_count": 0}

    return service


def _aliases(count: int, distinct: bool) -> str:
    if distinct:
        fields = (
            f'a{i}: notifications(first: 1, after: "c{i}") {{ totalCount }}' for i in range(count)
        )
    else:
        fields = (f"a{i}: unreadCount" for i in range(count))
    return "{ " + " ".join(fields) + " }"


async def _scenario(
    url: str,
    service: Service,
    hostile: str | None,
    attackers: int,
    seconds: float,
    bob: str,
    mallory: str,
) -> dict[str, Any]:
    service.max_in_flight.clear()
    service.calls.clear()
    stop = asyncio.Event()
    mallory_done = 0
    limits = httpx.Limits(max_connections=attackers + 4)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def attack() -> None:
            nonlocal mallory_done
            while not stop.is_set():
                await client.post(
                    "/graphql",
                    json={"query": hostile},
                    headers={"authorization": f"Bearer {mallory}"},
                )
                mallory_done += 1

        tasks = [asyncio.create_task(attack()) for _ in range(attackers if hostile else 0)]
        await asyncio.sleep(0.5 if hostile else 0)
        latencies: list[float] = []
        failures = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            t0 = time.perf_counter()
            r = await client.post(
                "/graphql",
                json={"query": "{ unreadCount }"},
                headers={"authorization": f"Bearer {bob}"},
            )
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200 or "errors" in r.json():
                failures += 1
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*tasks)
    return {
        "p50": statistics.median(latencies),
        "p95": support.percentile(latencies, 0.95),
        "max": max(latencies),
        "bob_requests": len(latencies),
        "bob_failures": failures,
        "mallory_rps": mallory_done / elapsed,
        "mallory_calls": service.calls["mallory"],
        "mallory_max_in_flight": service.max_in_flight["mallory"],
    }


async def run(latency: float, capacity: int, attackers: int, seconds: float) -> list[list[str]]:
    bench = support.Run("hostile")
    bob, mallory = bench.token("bob"), bench.token("mallory")
    callers = {f"Bearer {bob}": "bob", f"Bearer {mallory}": "mallory"}
    service = _notifications(latency, capacity, callers)
    service_port = support.free_port()
    servers = [await serve_app(service.app, service_port)]

    def gateway(**overrides: Any) -> str:
        values: dict[str, Any] = {
            "notifications_url": f"http://127.0.0.1:{service_port}",
            "cache_enabled": "false",
            "rate_limit_per_minute": 0,
            "log_level": "WARNING",
            **overrides,
        }
        process = bench.component("gateway", **values)
        bench.wait_ready(process)
        assert process.url is not None
        return process.url

    limited = await asyncio.to_thread(gateway)
    unlimited = await asyncio.to_thread(
        gateway,
        max_service_calls_per_request=1000,
        max_concurrent_calls_per_caller=100_000,
        max_concurrent_requests_per_caller=100_000,
    )
    try:
        scenarios = [
            ("baseline: Bob alone", limited, None),
            ("probe: 150 x unreadCount (same arguments)", limited, _aliases(150, False)),
            ("20 aliases, distinct arguments (the budget)", limited, _aliases(20, True)),
            ("150 aliases, distinct arguments, limits lifted", unlimited, _aliases(150, True)),
        ]
        rows: list[list[str]] = []
        base = 0.0
        for name, url, hostile in scenarios:
            result = await _scenario(url, service, hostile, attackers, seconds, bob, mallory)
            base = base or result["p50"]
            rows.append(
                [
                    name,
                    f"{result['p50'] * 1000:.1f}",
                    f"{result['p95'] * 1000:.1f}",
                    f"{result['max'] * 1000:.1f}",
                    f"{result['p50'] / base:.1f}x",
                    str(result["bob_failures"]),
                    f"{result['mallory_rps']:.1f}" if hostile else "-",
                    str(result["mallory_max_in_flight"]) if hostile else "-",
                ]
            )
        # What refusing costs: the probe's 200 register aliases, parsed and refused.
        register = (
            'register(input: {name: "A", email: "a@example.com", password: "Correct-Horse-42"}) '
            "{ accessToken }"
        )
        document = "mutation { " + " ".join(f"r{i}: {register}" for i in range(200)) + " }"
        async with httpx.AsyncClient(base_url=limited, timeout=30) as client:
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                r = await client.post("/graphql", json={"query": document})
                times.append(time.perf_counter() - t0)
                assert r.status_code == 400
        rows.append(
            ["refusing 200 x register (before any call)", f"{statistics.median(times) * 1000:.1f}"]
            + [""] * 6
        )
        return rows
    finally:
        await asyncio.to_thread(bench.close)
        for server, task in reversed(servers):
            server.should_exit = True
            await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.02, help="service time per call, s")
    parser.add_argument("--capacity", type=int, default=16, help="calls the service serves at once")
    parser.add_argument("--attackers", type=int, default=12, help="concurrent hostile requests")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per scenario")
    args = parser.parse_args()
    with support.Sampler({}) as sampler:
        rows = asyncio.run(run(args.latency, args.capacity, args.attackers, args.seconds))
    load = sampler.load_text()
    table = Table(
        title=(
            f"Bob's {{ unreadCount }} while Mallory attacks ({args.attackers} concurrent; service "
            f"{args.latency * 1000:.0f} ms/call, {args.capacity} at once; Python "
            f"{platform.python_version()})"
        )
    )
    header = [
        "scenario",
        "Bob p50 ms",
        "p95 ms",
        "max ms",
        "p50 / baseline",
        "Bob errors",
        "Mallory req/s",
        "Mallory calls in flight (max)",
    ]
    for column in header:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
    support.append_results(
        "Alias amplification and fairness",
        "python -m bench.hostile " + " ".join(sys.argv[1:]),
        f"{args.attackers} concurrent hostile loops, stand-in service {args.latency * 1000:.0f} "
        f"ms/call with {args.capacity} at once, {args.seconds:g} s per scenario; the ceiling "
        "is Bob's own baseline in the same run",
        header,
        rows,
        load=load,
    )


if __name__ == "__main__":
    main()
