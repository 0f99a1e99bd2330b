"""A bounded map whose entries expire: what every process-local cache here keeps.

At most ``size`` entries, the least recently used out first; each entry lives until the
expiry it was put with. Not thread-safe: a cache read from worker threads holds its own
lock around it (``herald_common.replica_cache``).
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Missing(enum.Enum):
    MISSING = "MISSING"


MISSING: Final = _Missing.MISSING  # what ``get`` answers for an absent or expired key


class ExpiringLRU(Generic[K, V]):
    """``get`` answers live entries only (and drops an expired one); ``put`` makes the
    entry the most recent and evicts the least recent beyond ``size``."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is held, live or expired but not dropped yet."""
        return key in self._entries

    def get(self, key: K, now: float | None = None) -> V | _Missing:
        """The live value of ``key`` (now the most recent), else :data:`MISSING`."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        if entry[0] <= (self._clock() if now is None else now):
            del self._entries[key]
            return MISSING
        self._entries.move_to_end(key)
        return entry[1]

    def peek(self, key: K) -> V | _Missing:
        """The value of ``key`` if it is live, without making it the most recent."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return MISSING
        return entry[1]

    def put(self, key: K, value: V, expires_at: float) -> None:
        self._entries[key] = (expires_at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
