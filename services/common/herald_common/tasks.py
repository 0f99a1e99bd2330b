"""Background tasks of a service process: periodic jobs and orderly cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def run_every(interval: float, job: Callable[[], Awaitable[Any]], *, name: str) -> None:
    """Run ``job`` now and then every ``interval`` seconds, forever.

    A failing run is logged and the next one happens on schedule: one bad round must
    not stop a sweep for the life of the process.
    """
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic job failed; trying again next round", extra={"job": name})
        await asyncio.sleep(interval)


def start_periodic(
    interval: float, job: Callable[[], Awaitable[Any]], *, name: str
) -> asyncio.Task[None]:
    return asyncio.create_task(run_every(interval, job, name=name), name=name)


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` and wait until each has finished (their errors are not raised)."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
