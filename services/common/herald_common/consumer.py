"""Consumers of one queue: parse → handler → ack; failures retry with back-off, then DLQ.

:class:`Consumer` hands each event to its handler; :class:`BatchConsumer` collects
events into batches for a handler of ``list[Envelope]`` and falls back to one event at
a time when a batch fails. Both are started by :meth:`herald_common.messaging.Broker.consume`
and :meth:`~herald_common.messaging.Broker.consume_batch`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from herald_common.events import Envelope, InvalidEvent, parse_event
from herald_common.logs import set_correlation_id
from herald_common.metrics import (
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    HANDLER_LATENCY,
)
from herald_common.queues import (
    H_ATTEMPTS,
    H_ERROR,
    H_FAILED_AT,
    H_ROUTING_KEY,
    QueueSpec,
    header_int,
)
from herald_common.tasks import cancel_and_wait

if TYPE_CHECKING:
    from herald_common.messaging import Broker

log = logging.getLogger(__name__)

Handler = Callable[[Envelope[Any]], Awaitable[None]]
BatchHandler = Callable[[list[Envelope[Any]]], Awaitable[None]]


class PermanentError(Exception):
    """Raised by a handler for a message that will never succeed: no retries, DLQ now."""


class Consumer:
    """Consumes one queue: parse → handler → ack; failures retry with back-off then DLQ."""

    def __init__(self, broker: Broker, spec: QueueSpec, handler: Handler, prefetch: int) -> None:
        self.broker = broker
        self.spec = spec
        self.handler = handler
        self.prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._tag: str | None = None
        self._queue: AbstractQueue | None = None

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await self.broker.declare_queue(self.spec, self._channel)
        self._tag = await self._queue.consume(self._on_message, no_ack=False)

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception:
                log.debug("cancel failed", exc_info=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        self._tag = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        parsed = await self._parse(message)
        if parsed is not None:
            await self._handle(message, *parsed)

    async def _parse(
        self, message: AbstractIncomingMessage
    ) -> tuple[dict[str, Any], Envelope[Any]] | None:
        """The message's headers and event; a malformed message goes to the DLQ at once."""
        headers: dict[str, Any] = dict(message.headers or {})
        try:
            event = parse_event(message.body)
        except InvalidEvent as exc:
            await self._dead_letter(message, headers, f"invalid event: {exc}", "invalid")
            EVENTS_CONSUMED.labels(
                self.broker.source, self.spec.name, message.type or "unknown", "dead_lettered"
            ).inc()
            return None
        # A retry comes back through a delay queue as a new message: only its headers
        # tell that it was delivered before.
        event._maybe_seen = bool(
            message.redelivered or "x-death" in headers or header_int(headers, H_ATTEMPTS)
        )
        return headers, event

    async def _handle(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], event: Envelope[Any]
    ) -> None:
        """Run the handler for one event: ack on success, else retry or dead-letter."""
        svc, queue = self.broker.source, self.spec.name
        set_correlation_id(event.correlation_id or str(event.id))
        started = time.perf_counter()
        try:
            await self.handler(event)
        except PermanentError as exc:
            EVENTS_FAILED.labels(svc, queue, event.type).inc()
            await self._dead_letter(message, headers, f"{type(exc).__name__}: {exc}", "permanent")
            EVENTS_CONSUMED.labels(svc, queue, event.type, "dead_lettered").inc()
            return
        except Exception as exc:
            EVENTS_FAILED.labels(svc, queue, event.type).inc()
            log.warning(
                "handler failed",
                extra={"queue": queue, "event_type": event.type, "event_id": str(event.id)},
                exc_info=True,
            )
            await self._retry(message, headers, f"{type(exc).__name__}: {exc}")
            return
        finally:
            HANDLER_LATENCY.labels(svc, queue, event.type).observe(time.perf_counter() - started)
        await self._ack(message)
        EVENTS_CONSUMED.labels(svc, queue, event.type, "ok").inc()

    def _settled(self, message: AbstractIncomingMessage) -> None:
        """``message`` was acked or rejected (subclasses track what is outstanding)."""

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        self._settled(message)
        try:
            await message.ack()
        except Exception:
            # The channel went away (reconnect): the broker redelivers the message and
            # the idempotent handler absorbs the repeat.
            log.warning("ack failed; the message will be redelivered", exc_info=True)

    async def _retry(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], reason: str
    ) -> None:
        attempts = header_int(headers, H_ATTEMPTS) + 1
        delays = self.spec.retry_delays_ms
        type_ = message.type or "unknown"
        if attempts > len(delays):
            await self._dead_letter(
                message,
                headers,
                f"{reason} (gave up after {attempts} attempts)",
                "exhausted",
                attempts=attempts,
            )
            EVENTS_CONSUMED.labels(self.broker.source, self.spec.name, type_, "dead_lettered").inc()
            return
        headers.update({H_ATTEMPTS: attempts, H_ERROR: reason[:1000]})
        headers.setdefault(H_ROUTING_KEY, message.routing_key or "")
        retry_queue = self.spec.retry_queue(attempts - 1)
        await self._forward(message, headers, exchange="", routing_key=retry_queue)
        EVENTS_CONSUMED.labels(self.broker.source, self.spec.name, type_, "retried").inc()

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        reason: str,
        kind: str,
        attempts: int | None = None,
    ) -> None:
        headers.update(
            {
                H_ERROR: reason[:2000],
                H_ATTEMPTS: attempts if attempts is not None else header_int(headers, H_ATTEMPTS),
                H_FAILED_AT: datetime.now(UTC).isoformat(),
            }
        )
        headers.setdefault(H_ROUTING_KEY, message.routing_key or "")
        log.error("dead-lettered", extra={"queue": self.spec.name, "reason": reason[:500]})
        await self._forward(
            message,
            headers,
            exchange=self.broker.settings.dead_letter_exchange,
            routing_key=self.spec.name,
        )
        EVENTS_DEAD_LETTERED.labels(self.broker.source, self.spec.name, kind).inc()

    async def _forward(
        self,
        message: AbstractIncomingMessage,
        headers: dict[str, Any],
        *,
        exchange: str,
        routing_key: str,
    ) -> None:
        """Re-publish (confirmed) then ack; if re-publishing fails, requeue instead."""
        try:
            await self.broker.publish_raw(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                message_id=message.message_id,
                type_=message.type,
                headers=headers,
                timeout=15,
            )
        except Exception:
            log.exception("could not forward message; requeueing it")
            self._settled(message)
            await message.nack(requeue=True)
            return
        await self._ack(message)


class BatchConsumer(Consumer):
    """Collects messages into batches for a handler of ``list[Envelope]``.

    Messages are parsed as they arrive (malformed ones go to the DLQ at once); a single
    flusher task cuts batches in arrival order and hands each to the handler once one of
    ``concurrency`` slots is free (1: one batch at a time, in order).
    """

    def __init__(
        self,
        broker: Broker,
        spec: QueueSpec,
        handler: BatchHandler,
        prefetch: int,
        *,
        max_batch: int = 100,
        max_wait_ms: int = 50,
        concurrency: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")

        async def single(event: Envelope[Any]) -> None:
            await handler([event])

        super().__init__(broker, spec, single, prefetch)
        self.batch_handler = handler
        self.max_batch = max_batch
        self.max_wait = max(0, max_wait_ms) / 1000
        self._pending: list[tuple[AbstractIncomingMessage, dict[str, Any], Envelope[Any]]] = []
        self._arrived = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.concurrency = concurrency
        self._in_progress: set[asyncio.Task[None]] = set()
        # Delivery tags of this channel not yet acked or rejected: a batch that holds
        # every one of them up to its last tag is acked with one multiple-ack.
        self._unsettled: set[int] = set()

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._run(), name=f"batch-consumer-{self.spec.name}")
        await super().start()

    async def stop(self) -> None:
        await cancel_and_wait(self._flusher, *self._in_progress)
        self._flusher = None
        self._in_progress.clear()
        # Unacknowledged messages still buffered return to the queue with the channel.
        self._pending.clear()
        self._unsettled.clear()
        await super().stop()

    def _settled(self, message: AbstractIncomingMessage) -> None:
        if message.delivery_tag is not None:
            self._unsettled.discard(message.delivery_tag)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if message.delivery_tag is not None:
            self._unsettled.add(message.delivery_tag)
        parsed = await self._parse(message)
        if parsed is not None:
            self._pending.append((message, *parsed))
            self._arrived.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            # Collect the next batch only once it can start: meanwhile messages keep
            # arriving (up to the prefetch), so it is cut full.
            await slots.acquire()
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + self.max_wait
            while len(self._pending) < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout=remaining)
                except TimeoutError:
                    break
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            task = asyncio.create_task(self._process_in_slot(batch, slots))
            self._in_progress.add(task)
            task.add_done_callback(self._in_progress.discard)

    async def _process_in_slot(
        self,
        batch: list[tuple[AbstractIncomingMessage, dict[str, Any], Envelope[Any]]],
        slots: asyncio.Semaphore,
    ) -> None:
        try:
            await self._process(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never let a failure stop the consumer: the messages stay unacked and come
            # back with the channel (or after a reconnect).
            log.exception("batch processing failed", extra={"queue": self.spec.name})
        finally:
            slots.release()

    async def _process(
        self, batch: list[tuple[AbstractIncomingMessage, dict[str, Any], Envelope[Any]]]
    ) -> None:
        svc, queue = self.broker.source, self.spec.name
        if len(batch) == 1:
            await self._handle(*batch[0])
            return
        set_correlation_id(batch[0][2].correlation_id or str(batch[0][2].id))
        started = time.perf_counter()
        try:
            await self.batch_handler([event for _, _, event in batch])
        except Exception:
            log.warning(
                "batch handler failed; handling its %d events one by one",
                len(batch),
                extra={"queue": queue},
                exc_info=True,
            )
            for message, headers, event in batch:
                event._maybe_seen = True  # the failed batch may have done part of its work
                await self._handle(message, headers, event)
            return
        finally:
            HANDLER_LATENCY.labels(svc, queue, "batch").observe(time.perf_counter() - started)
        await self._ack_batch([message for message, _, _ in batch])
        for _, _, event in batch:
            EVENTS_CONSUMED.labels(svc, queue, event.type, "ok").inc()

    async def _ack_batch(self, messages: list[AbstractIncomingMessage]) -> None:
        """One multiple-ack when the batch holds every unsettled delivery up to its last
        tag (one batch at a time, no message of another batch in between); else one ack
        per message."""
        tags = {m.delivery_tag for m in messages if m.delivery_tag is not None}
        last = max(tags, default=0)
        if len(tags) != len(messages) or {t for t in self._unsettled if t <= last} != tags:
            for message in messages:
                await self._ack(message)
            return
        try:
            await next(m for m in messages if m.delivery_tag == last).ack(multiple=True)
        except Exception:
            log.warning("ack failed; the messages will be redelivered", exc_info=True)
        self._unsettled.difference_update(tags)
