"""Incremental refresh: fresh purchases and bursts of views update a user within seconds.

A user is refreshed when an ingested batch holds, for that user, a purchase or a view
that makes ``burst_views`` (3) views within ``burst_window_seconds`` (10 min) — and
the activity is fresh (``incremental_max_age_seconds``, 15 min, by the service clock),
so bulk imports of historical activity do not set off a storm of recomputations.

Refreshes are debounced per user: the first trigger schedules a recompute
``incremental_debounce_seconds`` later, triggers arriving meanwhile join it. A user
refreshed less than ``incremental_min_interval_seconds`` (10 s) ago waits for the rest
of that interval: a shopper browsing steadily is refreshed about once per interval, each
time with everything stored so far, instead of after every view. The recompute may stage
a notification (see the rules in :mod:`.engine`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from herald_common.db import run_db
from herald_common.events import Activity
from herald_common.lru import MISSING, ExpiringLRU
from herald_common.tasks import cancel_and_wait

from herald_recommendations import activity_store, storage
from herald_recommendations.engine import RecommendationEngine

log = logging.getLogger(__name__)

RECENT_USERS = 100_000  # users whose next allowed refresh start is kept


class IncrementalRefresher:
    """Decides which users need a refresh and runs the debounced recomputes."""

    def __init__(
        self, engine: RecommendationEngine, outbox_written: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.outbox_written = outbox_written
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(self.settings.incremental_concurrency)
        # When each recently refreshed user's interval ends (monotonic), kept until then.
        self._interval_ends: ExpiringLRU[str, float] = ExpiringLRU(RECENT_USERS)
        self.refreshed = 0

    def triggered_users(
        self, activities: Sequence[Activity], merged: activity_store.Merged | None = None
    ) -> list[str]:
        """Users among ``activities`` whose fresh activity calls for a refresh: a
        purchase, or a burst of views counted in the user's stored entries (``merged``,
        what storing these activities left, else read from storage: sync)."""
        s = self.settings
        now = self.engine.clock()
        fresh_after = now - timedelta(seconds=s.incremental_max_age_seconds)
        purchases: set[str] = set()
        latest_view: dict[str, datetime] = {}
        for activity in activities:
            if activity.occurred_at < fresh_after:
                continue
            if activity.kind == "purchase":
                purchases.add(activity.user_id)
            elif activity.kind == "view":
                previous = latest_view.get(activity.user_id)
                if previous is None or activity.occurred_at > previous:
                    latest_view[activity.user_id] = activity.occurred_at
        users = set(purchases)
        viewers = [user_id for user_id in latest_view if user_id not in users]
        if merged is not None:
            stored = {user_id: merged.interactions(user_id) for user_id in viewers}
        else:
            stored = storage.load_interactions(viewers)  # one concurrent read for the batch
        for user_id in viewers:
            since = latest_view[user_id] - timedelta(seconds=s.burst_window_seconds)
            recent = sum(
                1 for i in stored.get(user_id, []) if i.kind == "view" and i.at >= since.timestamp()
            )
            if recent >= s.burst_views:
                users.add(user_id)
        return sorted(users)

    def schedule(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            if user_id not in self._pending:
                self._pending[user_id] = asyncio.create_task(
                    self._run(user_id), name=f"refresh:{user_id}"
                )

    async def _run(self, user_id: str) -> None:
        # At most ``incremental_concurrency`` refreshes run at once, so a burst of
        # triggers never queues the ingestion's own storage calls behind them; a user
        # triggered again while waiting is refreshed once.
        try:
            await asyncio.sleep(self._delay(user_id))
            await self._slots.acquire()
        finally:
            # From here on a new trigger schedules a new run (it may see newer data).
            self._pending.pop(user_id, None)
        self._note_started(user_id)
        try:
            outcome = await run_db(
                self.engine.refresh_user, user_id, trigger="incremental", notify="incremental"
            )
        except Exception:
            log.exception("incremental refresh failed", extra={"user_id": user_id})
            return
        finally:
            self._slots.release()
        self.refreshed += 1
        if outcome.notified and self.outbox_written:
            self.outbox_written()
        log.info(
            "recommendations refreshed",
            extra={"user_id": user_id, "items": outcome.items, "notified": outcome.notified},
        )

    def _delay(self, user_id: str) -> float:
        """The debounce, or the rest of the user's interval since the last refresh."""
        debounce = self.settings.incremental_debounce_seconds
        ends = self._interval_ends.get(user_id)
        return debounce if ends is MISSING else max(debounce, ends - time.monotonic())

    def _note_started(self, user_id: str) -> None:
        ends = time.monotonic() + self.settings.incremental_min_interval_seconds
        self._interval_ends.put(user_id, ends, ends)

    async def stop(self) -> None:
        await cancel_and_wait(*self._pending.values())
        self._pending.clear()
