"""What one request, and one caller, may spend on service calls.

* :class:`CallBudget` — per request: at most ``max_calls`` service calls. The static
  estimate (:func:`herald_gateway.limits.enforce_calls`) refuses most costly documents
  before they run; this counter is the backstop for what the estimate cannot see
  (loader batches, cache misses).
* :class:`CallerSlots` — per caller (user id, or client address when anonymous) and
  gateway process: at most ``per_caller`` things in flight; the caller's further ones
  wait for one of their own to finish. Used twice: for service calls (one caller never
  holds more than ``max_concurrent_calls_per_caller`` of a service's pooled
  connections, and another caller's call never queues behind them in the gateway) and
  for executing operations (one caller's documents never take more than
  ``max_concurrent_requests_per_caller`` shares of the event loop; beyond
  ``max_waiting`` queued ones, the caller gets ``RATE_LIMITED``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import Histogram

from herald_gateway.errors import GraphQLFailure

SLOT_WAIT = Histogram(
    "herald_gateway_call_slot_wait_seconds",
    "Time a service call waited for one of its caller's slots",
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0),
)


@dataclass
class _Slots:
    semaphore: asyncio.Semaphore
    holders: int = 0


class CallerSlots:
    """Per-caller concurrency limit for service calls (one per gateway process)."""

    def __init__(self, per_caller: int, max_waiting: int | None = None) -> None:
        self.per_caller = per_caller
        self.max_waiting = max_waiting
        self._slots: dict[str, _Slots] = {}

    def active_callers(self) -> int:
        """Callers with a call waiting or in flight (entries are dropped when idle)."""
        return len(self._slots)

    @asynccontextmanager
    async def hold(self, caller: str) -> AsyncIterator[None]:
        """Run the block while holding one of ``caller``'s slots."""
        entry = self._slots.get(caller)
        if entry is None:
            entry = self._slots[caller] = _Slots(asyncio.Semaphore(self.per_caller))
        if self.max_waiting is not None and entry.holders >= self.per_caller + self.max_waiting:
            raise GraphQLFailure(
                f"too many requests in flight: at most {self.per_caller} run at once, "
                f"{self.max_waiting} more wait",
                "RATE_LIMITED",
                retry_after=1,
            )
        entry.holders += 1
        try:
            started = time.perf_counter()
            async with entry.semaphore:
                SLOT_WAIT.observe(time.perf_counter() - started)
                yield
        finally:
            entry.holders -= 1
            if entry.holders == 0 and self._slots.get(caller) is entry:
                del self._slots[caller]


class CallBudget:
    """Service calls of one request: counted, capped, and run in the caller's slots."""

    def __init__(self, max_calls: int, caller: str, slots: CallerSlots | None = None) -> None:
        self.max_calls = max_calls
        self.caller = caller
        self.slots = slots
        self.used = 0

    def spend(self, service: str) -> None:
        """Count one call to ``service``; refuse it once the budget is spent."""
        if self.used >= self.max_calls:
            raise GraphQLFailure(
                f"this request needs more than {self.max_calls} service calls; "
                "split it into several requests",
                "BAD_USER_INPUT",
                field="query",
            )
        self.used += 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the caller's slots for the duration of a call."""
        if self.slots is None:
            yield
            return
        async with self.slots.hold(self.caller):
            yield
