"""Pytest plugins and helpers for Herald's tests: real servers, isolated per test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; return it.

    Fails after ``timeout`` seconds. For asynchronous effects only, never for timing
    assertions.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(interval)


__all__ = ["eventually"]
