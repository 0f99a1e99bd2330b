"""A small per-request DataLoader: lookups made in the same tick go out as one call.

Resolvers of a list (e.g. every ``OrderItem.product`` of a response) ask for one key
each; the loader waits for the current batch of resolvers to run, then fetches all
keys with one service call, so a list never causes N+1 requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

BatchFn = Callable[[list[K]], Awaitable[dict[K, V]]]


class DataLoader(Generic[K, V]):
    """Batches and de-duplicates ``load(key)`` calls; caches results for the request."""

    def __init__(self, batch_fn: BatchFn[K, V], max_batch: int = 100) -> None:
        self.batch_fn = batch_fn
        self.max_batch = max_batch
        self._cache: dict[K, asyncio.Future[V | None]] = {}
        self._queue: list[K] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0

    def load(self, key: K) -> Awaitable[V | None]:
        if key in self._cache:
            return self._cache[key]
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._cache[key] = future
        self._queue.append(key)
        if not self._scheduled:
            self._scheduled = True
            # Let every sibling resolver enqueue its key before dispatching.
            asyncio.get_running_loop().call_soon(self._dispatch)
        return future

    async def load_many(self, keys: list[K]) -> list[V | None]:
        return list(await asyncio.gather(*(self.load(k) for k in keys)))

    def prime(self, key: K, value: V) -> None:
        if key not in self._cache:
            future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
            future.set_result(value)
            self._cache[key] = future

    def _dispatch(self) -> None:
        keys, self._queue, self._scheduled = self._queue, [], False
        for i in range(0, len(keys), self.max_batch):
            task = asyncio.ensure_future(self._run(keys[i : i + self.max_batch]))
            # Keep a reference until it finishes (the loop holds tasks only weakly).
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, keys: list[K]) -> None:
        self.calls += 1
        try:
            found = await self.batch_fn(keys)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the error
            for key in keys:
                future = self._cache.pop(key, None)
                if future is not None and not future.done():
                    future.set_exception(exc)
            return
        for key in keys:
            future = self._cache[key]
            if not future.done():
                future.set_result(found.get(key))


def batch_results(items: list[Any], key: str = "id") -> dict[str, Any]:
    return {str(item[key]): item for item in items if isinstance(item, dict) and key in item}
