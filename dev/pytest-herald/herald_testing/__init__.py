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


async def serve_app(
    app: Any, port: int, timeout: float = 60.0, *, lifespan: bool = True
) -> tuple[Any, asyncio.Task[None]]:
    """Serve the ASGI ``app`` with uvicorn on ``127.0.0.1:port`` in this event loop (its
    lifespan included, unless ``lifespan`` is False: an app already started elsewhere);
    returns the server and its task once it listens, within ``timeout`` seconds. Stop
    it with ``server.should_exit = True`` and ``await task``."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on" if lifespan else "off",
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + timeout
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"the server on port {port} did not start")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the server on port {port} did not start within {timeout}s")
        await asyncio.sleep(0.02)
    return server, task


__all__ = ["eventually", "serve_app"]
