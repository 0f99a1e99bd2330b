"""``herald-operator``: run the operator (one active replica, the settings' namespaces).

    herald-operator            # settings from HERALD_OPERATOR_* (see the README)

Serves ``/healthz`` and ``/readyz`` on ``HERALD_OPERATOR_HEALTH_PORT`` when set. Waits
for the leader Lease (``HERALD_OPERATOR_LEADER_ELECTION``, on by default), then runs kopf
standalone on the watched namespaces (all when none is set) until SIGTERM, or
until the Lease is lost. Exit codes: 0 stopped, 1 lost the Lease (the Deployment
restarts it as a standby), 2 invalid settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

import kopf
from herald_common.logs import configure_logging
from pydantic import ValidationError

from herald_operator import __version__
from herald_operator.config import OperatorSettings
from herald_operator.context import Context, make_context
from herald_operator.health import start_health_server
from herald_operator.leader import LeaseElector

log = logging.getLogger("herald_operator")


async def run(
    settings: OperatorSettings, stop: asyncio.Event | None = None, ctx: Context | None = None
) -> int:
    """Lead (or wait to), then operate until ``stop`` is set or the Lease is lost
    (``ctx``: a prepared context, e.g. to read its counters afterwards)."""
    import herald_operator.main  # noqa: F401 - registers the handlers

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    state = {"operating": False}
    health = None
    if settings.health_port:
        health = await start_health_server(settings.health_port, leading=lambda: state["operating"])
    try:
        return await _operate(settings, stop, ctx or make_context(settings), state)
    finally:
        if health is not None:
            await health.cleanup()


async def _operate(
    settings: OperatorSettings, stop: asyncio.Event, ctx: Context, state: dict[str, bool]
) -> int:
    elector: LeaseElector | None = None
    if settings.leader_election:
        elector = LeaseElector(
            ctx.kube.api,
            name=settings.lease_name,
            namespace=settings.lease_namespace,
            identity=settings.identity,
            duration=settings.lease_duration_seconds,
        )
        if not await elector.acquire(stop, settings.retry_seconds):
            return 0
    lost = asyncio.Event()
    stop_flag = asyncio.Event()
    tasks = [asyncio.create_task(_relay(stop, lost, stop_flag))]
    if elector is not None:
        tasks.append(asyncio.create_task(elector.hold(lost, settings.renew_seconds)))
    log.info(
        "operating",
        extra={"namespaces": settings.namespaces or "all", "identity": settings.identity},
    )
    state["operating"] = True
    try:
        await kopf.operator(
            clusterwide=settings.clusterwide,
            namespaces=settings.watched_namespaces,
            standalone=True,
            stop_flag=stop_flag,
            memo=kopf.Memo(ctx=ctx),
        )
    finally:
        state["operating"] = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if elector is not None:
            await asyncio.to_thread(elector.release)
    return 1 if lost.is_set() else 0


async def _relay(stop: asyncio.Event, lost: asyncio.Event, stop_flag: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    stop_flag.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald-operator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"herald-operator {__version__}")
    parser.parse_args(argv)
    try:
        settings = OperatorSettings()
    except ValidationError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging("operator", settings.log_level, settings.log_json)
    return asyncio.run(run(settings))
