"""Idempotent consumers.

RabbitMQ delivers at least once, and a consumer handles up to ``prefetch`` messages at
a time, so a handler may see the same event twice, even concurrently. Two tools:

* Make the effect itself idempotent with a unique key (a notification's
  ``idempotency_key`` has a unique index: a second insert is a no-op). Preferred when
  the effect is a single write: it is atomic with the effect.
* :class:`ProcessedEvents` for effects that are not one write: a claim with a lease.
  The first delivery claims the key, runs the effect and marks it done; a concurrent
  duplicate finds the claim and is retried later (:class:`AlreadyInProgress`); a later
  duplicate finds it done and is skipped. If the worker dies mid-effect its lease
  expires and a redelivery takes over, so the effect is never lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import mongoengine
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from herald_common.db import run_db


class AlreadyInProgress(Exception):
    """Another worker holds the claim on this key; retry the message later."""


class ProcessedEvents:
    """A per-service collection of ``(consumer, key)`` claims."""

    def __init__(
        self,
        consumer: str,
        collection: str = "processed_events",
        alias: str = "default",
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.consumer = consumer
        self.collection_name = collection
        self.alias = alias
        self.lease = lease
        self._indexed = False

    @property
    def _coll(self) -> Any:
        coll = mongoengine.get_db(self.alias)[self.collection_name]
        if not self._indexed:
            coll.create_index([("consumer", ASCENDING), ("key", ASCENDING)], unique=True)
            self._indexed = True
        return coll

    def _id(self, key: str) -> dict[str, str]:
        return {"consumer": self.consumer, "key": key}

    def seen(self, key: str) -> bool:
        """Whether ``key`` was completed."""
        return self._coll.find_one({**self._id(key), "state": "done"}, {"_id": 1}) is not None

    def claim(self, key: str, now: datetime | None = None) -> bool:
        """Claim ``key``: True to go ahead, False when already done.

        Raises :class:`AlreadyInProgress` while another worker's lease is live.
        """
        now = now or datetime.now(UTC)
        until = now + self.lease
        try:
            self._coll.insert_one({**self._id(key), "state": "processing", "lease_until": until})
            return True
        except DuplicateKeyError:
            pass
        taken = self._coll.update_one(
            {**self._id(key), "state": "processing", "lease_until": {"$lt": now}},
            {"$set": {"lease_until": until}},
        )
        if taken.modified_count:
            return True
        doc = self._coll.find_one(self._id(key), {"state": 1})
        if doc is not None and doc.get("state") == "done":
            return False
        raise AlreadyInProgress(f"{self.consumer}: {key} is being processed elsewhere")

    def complete(self, key: str) -> None:
        self._coll.update_one(
            self._id(key), {"$set": {"state": "done", "done_at": datetime.now(UTC)}}
        )

    def release(self, key: str) -> None:
        """Give a claim up after a failed effect so a redelivery can retry at once."""
        self._coll.delete_one({**self._id(key), "state": "processing"})

    def remember(self, key: str) -> bool:
        """Record ``key`` as done without a claim; False when it was already recorded."""
        try:
            self._coll.insert_one({**self._id(key), "state": "done", "done_at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True

    async def run_once(self, key: str, effect: Callable[[], Awaitable[Any]]) -> bool:
        """Run ``effect`` unless ``key`` was already handled; True when it ran."""
        if not await run_db(self.claim, key):
            return False
        try:
            await effect()
        except BaseException:
            await run_db(self.release, key)
            raise
        await run_db(self.complete, key)
        return True
