"""Probes for the operator's pod: ``/healthz`` (the event loop answers) and ``/readyz``
(this replica leads and operates; a standby is alive but not ready), and its
Prometheus metrics on ``/metrics`` (:mod:`herald_operator.metrics`).

Served on ``HEALTH_PORT`` while the process runs, standby time included, so that
liveness probes do not restart a replica that is only waiting for the Lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from herald_operator.metrics import REGISTRY


async def start_health_server(
    port: int, *, leading: Callable[[], bool], host: str = "0.0.0.0"
) -> web.AppRunner:
    """Start serving the probes; stop with ``await runner.cleanup()``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = leading()
        return web.Response(
            status=200 if ready else 503,
            text=json.dumps({"leading": ready}),
            content_type="application/json",
        )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
