"""Gateway: ``{ me { name } recommendations(first: 10) { productId } }`` under load.

    python -m bench.gateway [--users 1000] [--events-per-user 20] [--concurrency 50]
                            [--seconds 20] [--py-spy PATH]

Real users, recommendations and gateway processes (own databases, virtual host, Redis
prefix, ports). ``--users`` users are bulk-inserted into the users service's database
(the service, started first, has created its indexes); their activity, the mock shoppers
of the recommendations service's own generator, is bulk-inserted as in
``bench.recommendations`` and ``herald-recommendations batch --all --no-notify`` (a
process of the service's command line) computes and stores everyone's
recommendations. Then ``--concurrency`` connections send the query, each request as one
of the users, through a gateway with its response cache off and then on (rate limit
configured high for the benchmark through the gateway's settings; before the cache-on
measure every user's query is sent once and entries live 600 s, so it shows a warm
cache's steady state). Beside it, in the same run: the bare FastAPI endpoint (the
ceiling of an HTTP hop on this machine) and the two service calls the gateway makes
(``GET /v1/users/me``, ``GET /v1/recommendations/me?first=10``). The inbox query is
``bench.inbox``. ``--py-spy PATH`` records each process under the gateway measures with
that py-spy binary and adds the top functions to the results. Appends to
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import ceilings, support
from bench import recommendations as recs

QUERY = "{ me { name } recommendations(first: 10) { productId } }"
GOAL = "≥ 1,500 requests/s cached with p99 ≤ 50 ms"


def seed_users(run: support.Run, db: str, user_ids: list[str], chunk: int = 1000) -> float:
    """Accounts as the users service stores them (no password: tokens are the run's);
    returns documents/s."""
    import pymongo
    from herald_common.preferences import Preferences

    client: Any = pymongo.MongoClient(run.mongo_url)
    coll = client[db]["users"]
    now = datetime.now(UTC).replace(microsecond=0)
    preferences = Preferences().model_dump(mode="json")
    started = time.perf_counter()
    try:
        for start in range(0, len(user_ids), chunk):
            coll.insert_many(
                [
                    {
                        "_id": uid,
                        "name": f"Shopper {start + k}",
                        "email": f"{uid}@example.com",
                        "password_hash": None,
                        "roles": ["user"],
                        "preferences": preferences,
                        "revision": 1,
                        "created_at": now,
                        "updated_at": now,
                        "deleted_at": None,
                        "outbox": [],
                        "outbox_pending": False,
                    }
                    for k, uid in enumerate(user_ids[start : start + chunk])
                ],
                ordered=False,
            )
    finally:
        client.close()
    return len(user_ids) / (time.perf_counter() - started)


def check_answer(url: str, token: str) -> None:
    """One query answered with a name and ten products, or the run stops here."""
    r = httpx.post(
        f"{url}/graphql", json={"query": QUERY}, headers=support.bearer(token), timeout=60
    )
    data = r.json().get("data") or {}
    if r.status_code != 200 or not (data.get("me") or {}).get("name"):
        raise RuntimeError(f"the query was not answered: {r.status_code} {r.text[:500]}")
    if len(data.get("recommendations") or []) != 10:
        raise RuntimeError(f"not 10 recommendations: {r.text[:500]}")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    run = support.Run("gateway")
    try:
        run.own_vhost()
        users = run.component("users", private_key_pem=run.private_pem)
        service = run.component(
            "recommendations",
            catalog_seed=recs.SEED,
            catalog_products=recs.PRODUCTS,
            catalog_categories=recs.CATEGORIES,
        )
        run.wait_ready(users, service)
        assert users.url and service.url
        user_ids = [run.user(i) for i in range(args.users)]
        seed_rate = await asyncio.to_thread(seed_users, run, run.db("users"), user_ids)
        rec_db = run.db("recommendations")
        seeded = await asyncio.to_thread(
            recs.seed_activity, run, rec_db, user_ids, args.events_per_user
        )
        print(f"batch --all --no-notify over {args.users:,} users ...", flush=True)
        _, batch_seconds = await asyncio.to_thread(
            support.run_to_end,
            run,
            "batch",
            recs.cli("batch", "--all", "--no-notify"),
            recs.service_env(run),
            args.timeout,
        )
        gateway_env = {
            "users_url": users.url,
            "recommendations_url": service.url,
            # High for the benchmark: 50 connections over the users never reach it.
            "rate_limit_per_minute": 10_000_000,
            "service_timeout_seconds": 30,
        }
        tokens = [run.token(uid) for uid in user_ids]
        body = {"query": QUERY}

        def gql(i: int) -> tuple[str, str, Any, dict[str, str]]:
            return ("POST", "/graphql", body, support.bearer(tokens[i % len(tokens)]))

        def get(path: str) -> Any:
            return lambda i: ("GET", path, None, support.bearer(tokens[i % len(tokens)]))

        load = {"concurrency": args.concurrency, "seconds": args.seconds}
        results: dict[str, support.Load] = {}
        profiles: dict[str, Path] = {}
        services = {"users": users.pid, "recommendations": service.pid}
        with support.Sampler(dict(services)) as sampler:
            bare = ceilings.start_bare(run)
            assert bare.url
            results["bare"] = await ceilings.bare_http(bare.url, args.seconds, args.concurrency)
            bare.stop()
            results["users"] = await support.http_load(users.url, get("/v1/users/me"), **load)
            results["recommendations"] = await support.http_load(
                service.url, get("/v1/recommendations/me?first=10"), **load
            )
            for key, cache in (("cold", "false"), ("warm", "true")):
                name = f"gateway (cache {'on' if cache == 'true' else 'off'})"
                gateway = run.component(
                    "gateway", cache_enabled=cache, cache_ttl_seconds=600, **gateway_env
                )
                run.wait_ready(gateway)
                sampler.watch(name, gateway.pid)
                assert gateway.url
                await asyncio.to_thread(check_answer, gateway.url, tokens[0])
                if cache == "true":
                    await support.prime(gateway.url, tokens, body, args.concurrency)
                spies = []
                if args.py_spy:
                    for label, pid in (("gateway", gateway.pid), *services.items()):
                        out = run.dir / f"py-spy-{key}-{label}.txt"
                        spies.append(support.py_spy(args.py_spy, pid, args.seconds, out))
                        profiles[f"{label} during the {name} measure"] = out
                results[key] = await support.http_load(gateway.url, gql, **load)
                for spy in spies:
                    await asyncio.to_thread(spy.wait, 120)
                gateway.stop()
    finally:
        await asyncio.to_thread(run.close)
    return {
        "results": results,
        "profiles": profiles,
        "load": sampler.load_text(),
        "rss": sampler.rss_text(),
        "seed_rate": seed_rate,
        "seeded": seeded,
        "batch_seconds": batch_seconds,
    }


LABELS = {
    "bare": "bare FastAPI + uvicorn (ceiling)",
    "users": "users service: GET /v1/users/me",
    "recommendations": "recommendations service: GET /v1/recommendations/me?first=10",
    "cold": "gateway, me + recommendations, cache off",
    "warm": "gateway, me + recommendations, cache on",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=1800, help="for the batch, seconds")
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy binary: profile the measures")
    args = parser.parse_args(argv)
    out = asyncio.run(measure(args))
    results: dict[str, support.Load] = out["results"]
    bare_rate = results["bare"].rate
    rows = [support.load_row(LABELS[k], results[k], bare_rate) for k in LABELS]
    rows.append(["seeding: users, bulk insert", f"{out['seed_rate']:,.0f} docs/s", *[""] * 5])
    rows.append(
        [
            f"seeding: activity ({out['seeded']['events']:,} events), bulk insert",
            f"{out['seeded']['rate']:,.0f} users/s",
            *[""] * 5,
        ]
    )
    rows.append(
        ["recommendations batch --all (seeded users)", f"{out['batch_seconds']:.1f} s", *[""] * 5]
    )
    support.print_table("gateway", support.LOAD_HEADER, rows)
    for key, load in results.items():
        if load.errors:
            print(f"first error ({key}): {load.first_error}", file=sys.stderr)
    warm = results["warm"]
    p99 = support.latency_summary(warm.latencies)["p99"]
    met = warm.rate >= 1500 and p99 <= 50
    notes = [
        f"Goal {GOAL}: {'met' if met else 'missed'} ({warm.rate:,.0f} requests/s, p99 {p99:.0f} ms)."
    ]
    for label, path in out["profiles"].items():
        notes.append(support.py_spy_summary(label, path))
    support.append_results(
        "Gateway: me + recommendations",
        "python -m bench.gateway " + " ".join(sys.argv[1:] if argv is None else argv),
        f"`{QUERY}`; {args.users:,} users (users service) with recommendations from "
        f"{args.events_per_user} activity events each on average and a batch run; "
        f"{args.concurrency} connections, requests spread over the {args.users:,} users, "
        f"{args.seconds:g} s per measure, cache warmed for every user (TTL 600 s), rate "
        "limit 10,000,000/min through the gateway's settings; one gateway, one users and "
        "one recommendations process; peak RSS " + out["rss"],
        support.LOAD_HEADER,
        rows,
        load=out["load"],
        notes="\n\n".join(notes),
    )


if __name__ == "__main__":
    main()
