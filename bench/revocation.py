"""Revocation: logout → the WebSocket holding that token closed with 4401.

    python -m bench.revocation [--sockets 50] [--others 20]

Real users service and gateway processes (own virtual host, databases, ports; the
users service signs with the run's key). ``--sockets`` accounts each register and
hold a ``notificationAdded`` subscription on the gateway (graphql-transport-ws) with
their access token, beside ``--others`` subscribed sockets of other accounts that stay
open. Then, one after another, each account logs out through GraphQL (``logout`` with
its refresh token): the users service deny-lists the token and announces it on
``herald:revocations`` in one pipeline, and the gateway's listener wakes that socket's
watch, which closes it with 4401 ``token revoked``. Measured per socket: from sending
the logout until the close frame arrives, and from the logout's HTTP answer until then
(the close often arrives first: the announcement is made before the users service
answers). Printed with p50/p95/p99/max beside the ceiling of the same hop in the same
run (bare Redis publish → subscribe) and the logout's own round trip; nothing is
asserted; results go to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench import ceilings, support

SUBSCRIPTION = "subscription { notificationAdded { id } }"
LOGOUT = "mutation($r: String) { logout(refreshToken: $r) }"
PASSWORD = "Correct-Horse-42"


@dataclass
class Held:
    """One account's subscribed socket and when (and how) it was closed."""

    access: str
    refresh: str
    ws: ClientConnection
    closed: asyncio.Event
    closed_at: float = 0.0
    code: int | None = None
    reason: str = ""
    watcher: asyncio.Task[None] | None = None


async def _hold(url: str, access: str, refresh: str) -> Held:
    ws = await connect(url, subprotocols=[Subprotocol("graphql-transport-ws")])
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {access}"}}
    await ws.send(json.dumps(init))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"WebSocket refused: {ack}")
    await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
    held = Held(access, refresh, ws, asyncio.Event())

    async def watch() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass  # nobody publishes to these users: nothing but the close arrives
        held.closed_at = time.perf_counter()
        held.code, held.reason = ws.close_code, ws.close_reason or ""
        held.closed.set()

    held.watcher = asyncio.create_task(watch())
    return held


async def _register(client: httpx.AsyncClient, users_url: str, run_id: str, n: int) -> Any:
    email = f"revoke-{run_id}-{n}@example.com"
    body = {"name": f"Revoke {n}", "email": email, "password": PASSWORD}
    r = await client.post(f"{users_url}/v1/auth/register", json=body)
    r.raise_for_status()
    return r.json()


async def run(sockets: int, others: int) -> tuple[list[list[str]], dict[str, Any]]:
    bench = support.Run("revocation")
    try:
        bench.own_vhost()
        users = bench.component(
            "users",
            private_key_pem=bench.private_pem,
            # Registering is set-up, not what is measured: a light password hash.
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            argon2_parallelism=1,
        )
        await asyncio.to_thread(bench.wait_ready, users)
        gateway = bench.component(
            "gateway",
            users_url=users.url,
            rate_limit_per_minute=0,
            # The fallback re-check is an hour away: only the announcement can close.
            websocket_token_recheck_seconds=3600,
        )
        await asyncio.to_thread(bench.wait_ready, gateway)
        assert users.url and gateway.url
        ws_url = gateway.url.replace("http://", "ws://") + "/graphql"
        async with httpx.AsyncClient(timeout=60) as client:
            accounts = [
                await _register(client, users.url, bench.run_id, n) for n in range(sockets + others)
            ]
            held = [await _hold(ws_url, a["access_token"], a["refresh_token"]) for a in accounts]
            measured, kept = held[:sockets], held[sockets:]
            await asyncio.sleep(1)  # every subscription attached, every watch registered
            to_close: list[float] = []
            after_answer: list[float] = []
            round_trips: list[float] = []
            for h in measured:
                sent = time.perf_counter()
                r = await client.post(
                    f"{gateway.url}/graphql",
                    json={"query": LOGOUT, "variables": {"r": h.refresh}},
                    headers={"authorization": f"Bearer {h.access}"},
                )
                answered = time.perf_counter()
                if r.json().get("data") != {"logout": True}:
                    raise RuntimeError(f"logout failed: {r.text}")
                await asyncio.wait_for(h.closed.wait(), 60)
                if (h.code, h.reason) != (4401, "Unauthorized: token revoked"):
                    raise RuntimeError(f"closed with {h.code} {h.reason!r}")
                to_close.append(h.closed_at - sent)
                after_answer.append(h.closed_at - answered)
                round_trips.append(answered - sent)
            still_open = sum(1 for h in kept if not h.closed.is_set())
            for h in held:
                await h.ws.close()
            await asyncio.gather(*(h.watcher for h in held if h.watcher is not None))
        hop = await ceilings.redis_pubsub(max(50, sockets))
    finally:
        await asyncio.to_thread(bench.close)

    def row(name: str, values: list[float] | dict[str, float]) -> list[str]:
        summary = values if isinstance(values, dict) else support.latency_summary(values)
        return [name] + [f"{summary[k]:.1f}" for k in ("p50", "p95", "p99", "max")]

    before_answer = sum(1 for v in after_answer if v < 0)
    rows = [
        row("logout sent → socket closed 4401", to_close),
        row("logout answered → socket closed (negative: closed first)", after_answer),
        row("logout round trip (GraphQL → users service → answer)", round_trips),
        row("ceiling: bare Redis publish → subscriber", hop),
    ]
    facts = {
        "closed_before_answer": before_answer,
        "measured": len(to_close),
        "others_still_open": still_open,
        "others": others,
    }
    return rows, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=50, help="sockets closed by a logout")
    # Each open subscription holds one connection of the gateway's Redis pool (redis-py's
    # default of 100 per process): the sockets, the others and the revocation listener
    # stay below it.
    parser.add_argument("--others", type=int, default=20, help="other sockets kept open")
    args = parser.parse_args()
    with support.Sampler({}) as sampler:
        rows, facts = asyncio.run(run(args.sockets, args.others))
    header = ["measure", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    notes = (
        f"{facts['measured']} sockets closed with 4401 `token revoked`, one logout at a "
        f"time; {facts['closed_before_answer']} of them before the logout's HTTP answer "
        f"arrived; {facts['others_still_open']} of {facts['others']} other accounts' "
        "sockets still open at the end. The periodic re-check was an hour away, so every "
        "close came from the announcement."
    )
    support.print_table("Logout → WebSocket closed", header, rows)
    print(notes)
    support.append_results(
        "Revocation: logout → WebSocket closed",
        "python -m bench.revocation " + " ".join(sys.argv[1:]),
        f"{args.sockets} subscribed sockets closed by their account's logout through "
        f"GraphQL, one at a time, {args.others} other subscribed sockets open; users "
        "service and gateway processes; the ceiling is a bare Redis publish → subscribe "
        "in the same run",
        header,
        rows,
        load=sampler.load_text(),
        notes=notes,
    )


if __name__ == "__main__":
    main()
