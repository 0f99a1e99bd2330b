"""ExpiringLRU: the bounded, expiring map under the process-local caches (pure logic)."""

from __future__ import annotations

from herald_common.lru import MISSING, ExpiringLRU


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_live_until_their_expiry_and_are_dropped_after() -> None:
    clock = Clock()
    lru: ExpiringLRU[str, int | None] = ExpiringLRU(10, clock)
    lru.put("a", 1, clock.now + 5)
    lru.put("absent", None, clock.now + 5)  # None is a value, not a miss
    assert lru.get("a") == 1 and lru.get("absent") is None
    assert lru.get("b") is MISSING
    clock.now += 5
    assert lru.get("a") is MISSING and "a" not in lru
    assert lru.peek("absent") is MISSING and len(lru) == 1  # peek leaves it
    assert lru.get("absent", now=clock.now - 1) is None  # the caller's own "now"


def test_the_least_recently_used_goes_first_and_peek_does_not_count_as_use() -> None:
    clock = Clock()
    lru: ExpiringLRU[str, int] = ExpiringLRU(2, clock)
    lru.put("a", 1, 1e9)
    lru.put("b", 2, 1e9)
    assert lru.get("a") == 1  # a is now the most recent
    assert lru.peek("b") == 2  # b stays the least recent
    lru.put("c", 3, 1e9)
    assert "b" not in lru and lru.get("a") == 1 and lru.get("c") == 3
    lru.put("a", 10, 1e9)  # replacing makes it the most recent too
    lru.put("d", 4, 1e9)
    assert sorted(k for k in "abcd" if k in lru) == ["a", "d"] and lru.get("a") == 10
    lru.pop("a")
    lru.pop("never")
    assert len(lru) == 1
    lru.clear()
    assert len(lru) == 0
