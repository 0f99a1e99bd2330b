"""Time: the one clock type of every component.

Code that needs the time takes a :data:`Clock` (a function returning an aware UTC
``datetime``) and defaults to :func:`utcnow`, so tests move time by passing their own.
Loops that wait for a moment take a :class:`SleepingClock` (``now`` plus ``sleep``), so a
test can advance time without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def to_millis(value: datetime) -> datetime:
    """``value`` cut to milliseconds: MongoDB keeps no more, so an event carrying a
    stored time must carry exactly what was stored."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def utc_day(value: datetime) -> str:
    """The UTC date of ``value`` (naive values are UTC), as ``YYYY-MM-DD``: the day key
    of records that retention and expiry sweeps delete a whole day at a time."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).date().isoformat()


class SleepingClock(Protocol):
    """A clock that can also wait (the local schedule runner's loop)."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The wall clock and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return utcnow()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
