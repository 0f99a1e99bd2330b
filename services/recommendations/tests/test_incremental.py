"""The incremental refresher's scheduling (pure logic: the engine is a stand-in)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.incremental import IncrementalRefresher
from herald_testing import eventually


@dataclass
class Outcome:
    items: int = 3
    notified: bool = False


class CountingEngine:
    """Records how many refreshes run at once and for whom."""

    def __init__(self, settings: RecommendationsSettings) -> None:
        self.settings = settings
        self.clock = lambda: datetime.now(UTC)
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.refreshed: list[str] = []

    def refresh_user(self, user_id: str, **_: object) -> Outcome:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
            self.refreshed.append(user_id)
        return Outcome()


async def test_refreshes_run_a_bounded_number_at_once_each_user_once():
    settings = RecommendationsSettings(
        incremental_debounce_seconds=0.01,
        incremental_concurrency=2,
        incremental_min_interval_seconds=0,
    )
    engine = CountingEngine(settings)
    refresher = IncrementalRefresher(engine)  # type: ignore[arg-type]
    users = [f"u{n}" for n in range(12)]
    refresher.schedule(users)
    await asyncio.sleep(0.05)
    # In order of their triggers: the finished ones, and at most two holding a slot.
    started = set(users[: len(engine.refreshed) + 2])
    # Triggered again: a user whose refresh began is refreshed again (it may see newer
    # data); one still waiting for a slot only once.
    refresher.schedule(users)

    async def everyone_refreshed() -> bool:
        return set(engine.refreshed) == set(users)

    await eventually(everyone_refreshed)
    await asyncio.sleep(0.2)
    await refresher.stop()
    assert engine.most == 2
    assert set(engine.refreshed) == set(users)
    twice = {u for u in users if engine.refreshed.count(u) == 2}
    assert twice <= started and len(twice) < len(users) // 2
    assert all(engine.refreshed.count(u) <= 2 for u in users)


async def test_a_user_is_refreshed_at_most_once_per_interval_with_the_last_trigger_kept():
    settings = RecommendationsSettings(
        incremental_debounce_seconds=0.01, incremental_min_interval_seconds=0.5
    )
    engine = CountingEngine(settings)
    refresher = IncrementalRefresher(engine)  # type: ignore[arg-type]
    refresher.schedule(["u1", "u2"])
    await eventually(lambda: len(engine.refreshed) == 2)
    first = time.monotonic()
    # Triggered again and again within the interval: one more refresh, after it.
    for _ in range(5):
        refresher.schedule(["u1"])
        await asyncio.sleep(0.05)
    assert engine.refreshed.count("u1") == 1
    await eventually(lambda: engine.refreshed.count("u1") == 2)
    assert time.monotonic() - first >= 0.4
    await asyncio.sleep(0.6)
    await refresher.stop()
    assert sorted(engine.refreshed) == ["u1", "u1", "u2"]
