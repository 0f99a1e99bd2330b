"""Idempotent consumers.

RabbitMQ delivers at least once, so every handler must tolerate seeing an event again.
Two tools, use what fits:

* Make the effect itself idempotent with a unique key (a notification's
  ``idempotency_key`` has a unique index: a second insert is a no-op). Preferred: it is
  atomic with the effect.
* :class:`ProcessedEvents` remembers handled event ids per consumer, for effects that
  are naturally idempotent when replayed but expensive (recomputations), or to skip
  work early. Mark *after* the effect is committed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import mongoengine
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError


class ProcessedEvents:
    """A per-service collection of ``(consumer, key)`` pairs already handled."""

    def __init__(self, consumer: str, collection: str = "processed_events", alias: str = "default"):
        self.consumer = consumer
        self.collection_name = collection
        self.alias = alias
        self._indexed = False

    @property
    def _coll(self) -> Any:
        coll = mongoengine.get_db(self.alias)[self.collection_name]
        if not self._indexed:
            coll.create_index([("consumer", ASCENDING), ("key", ASCENDING)], unique=True)
            self._indexed = True
        return coll

    def seen(self, key: str) -> bool:
        return self._coll.find_one({"consumer": self.consumer, "key": key}, {"_id": 1}) is not None

    def remember(self, key: str) -> bool:
        """Record ``key``; False when it was already recorded."""
        try:
            self._coll.insert_one({"consumer": self.consumer, "key": key, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True
