"""Transactional outbox on single-document atomicity.

MongoDB-compatible servers used here (FerretDB, standalone mongod) have no
multi-document transactions, so an event is stored *inside the document it describes*,
in the same write as the state change::

    class User(OutboxDocument):
        ...

    user.stage(event)          # on a new document, before save()
    user.save()                # state + event: one atomic insert

    User.objects(id=uid).update_one(set__name="Ann", **outbox_update(event))

:class:`OutboxRelay` publishes staged events (confirmed) in the order they were
staged per document, then removes them. A crash after publishing and before removal
publishes the event again with the same event id, which consumers de-duplicate; a crash
before publishing leaves it staged for the next relay pass. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from mongoengine import BooleanField, DictField, Document, ListField
from pymongo import ASCENDING, UpdateOne

from herald_common.db import bulk_write, run_db
from herald_common.events import Envelope
from herald_common.messaging import H_CORRELATION, Broker
from herald_common.metrics import OUTBOX_PENDING, OUTBOX_RELAYED
from herald_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def outbox_entry(event: Envelope[Any]) -> dict[str, Any]:
    """How a staged event is stored: the exact wire bytes, as a string."""
    return {
        "id": str(event.id),
        "type": event.type,
        "routing_key": event.routing_key,
        "body": event.model_dump_json(),
        "correlation_id": event.correlation_id,
        "staged_at": datetime.now(UTC),
    }


def outbox_update(*events: Envelope[Any]) -> dict[str, Any]:
    """mongoengine update kwargs that stage ``events`` with the caller's state change."""
    return {
        "push_all__outbox": [outbox_entry(e) for e in events],
        "set__outbox_pending": True,
    }


def staged_update(changes: dict[str, Any], *events: Envelope[Any]) -> dict[str, Any]:
    """The same staging as a pymongo update document: ``$set`` of ``changes`` with
    ``events`` pushed onto the outbox, in one atomic update."""
    return {
        "$set": {**changes, "outbox_pending": True},
        "$push": {"outbox": {"$each": [outbox_entry(e) for e in events]}},
    }


class OutboxDocument(Document):
    """Base for documents whose changes publish events."""

    meta: dict[str, Any] = {"abstract": True}

    outbox = ListField(DictField(), default=list)
    outbox_pending = BooleanField(default=False)

    def stage(self, *events: Envelope[Any]) -> None:
        """Stage events on an unsaved (or about to be saved) document."""
        self.outbox = [*(self.outbox or []), *(outbox_entry(e) for e in events)]
        self.outbox_pending = True


def _clear_ops(docs: list[dict[str, Any]]) -> list[UpdateOne]:
    """Remove the published entries (exact stored values: FerretDB's ``$pull`` matches
    whole values only), then clear the flag only if nothing new was staged meanwhile."""
    ops = []
    for doc in docs:
        if doc.get("outbox"):
            ops.append(UpdateOne({"_id": doc["_id"]}, {"$pullAll": {"outbox": doc["outbox"]}}))
        ops.append(
            UpdateOne(
                {"_id": doc["_id"], "outbox": {"$size": 0}}, {"$set": {"outbox_pending": False}}
            )
        )
    return ops


class OutboxRelay:
    """Publishes staged events of the given document classes and clears them."""

    def __init__(
        self,
        broker: Broker,
        documents: Sequence[type[OutboxDocument]],
        *,
        poll_interval: float = 10.0,
        batch_size: int = 200,
    ) -> None:
        self.broker = broker
        self.documents = list(documents)
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._reported = True  # report the gauge after the first pass

    def ensure_indexes(self) -> None:
        for cls in self.documents:
            cls._get_collection().create_index([("outbox_pending", ASCENDING)])

    def _pending(self, coll: Any) -> list[dict[str, Any]]:
        return list(coll.find({"outbox_pending": True}, {"outbox": 1}).limit(self.batch_size))

    def wake(self) -> None:
        """Ask for a pass now (call after staging) instead of at the next poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish everything staged right now; returns how many events were published.

        Per batch of documents: their events are published concurrently (in staging
        order within a document) and confirmed, then one bulk write removes them and
        clears each document's flag unless something new was staged meanwhile."""
        published = 0
        pending = 0
        for cls in self.documents:
            coll = cls._get_collection()
            while True:
                docs = await run_db(self._pending, coll)
                if not docs:
                    break
                pending += len(docs)
                counts = await asyncio.gather(*(self._publish_entries(doc) for doc in docs))
                published += sum(counts)
                await run_db(bulk_write, coll, _clear_ops(docs), ordered=True)
                if len(docs) < self.batch_size:
                    break
        if pending or self._reported:
            # What is staged now (index-served); skipped while idle.
            pending = 0
            for cls in self.documents:
                pending += await run_db(
                    cls._get_collection().count_documents, {"outbox_pending": True}
                )
            OUTBOX_PENDING.labels(self.broker.source).set(pending)
            self._reported = pending > 0
        return published

    async def _publish_entries(self, doc: dict[str, Any]) -> int:
        entries = doc.get("outbox") or []
        for entry in entries:
            headers = {}
            if entry.get("correlation_id"):
                headers[H_CORRELATION] = entry["correlation_id"]
            await self.broker.publish_raw(
                entry["body"].encode(),
                routing_key=entry.get("routing_key") or entry["type"],
                message_id=entry["id"],
                type_=entry["type"],
                headers=headers,
            )
            OUTBOX_RELAYED.labels(self.broker.source, entry["type"]).inc()
        return len(entries)

    async def run(self) -> None:
        """Relay until stopped: on every wake-up and at least every ``poll_interval``."""
        while not self._stopping:
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
            if self._stopping:
                break
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that coincides with the wake-up, and stop() then hangs.
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def start(self) -> asyncio.Task[None]:
        self.ensure_indexes()
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="outbox-relay")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            # The flag ends the loop even if a cancellation gets lost in a library.
            self._stopping = True
            self._wake.set()
            await cancel_and_wait(self._task)
            self._task = None
