"""RabbitMQ messaging: topology, confirmed publishing, consumers with retry and DLQ.

Topology (all durable):

* ``herald.events`` — topic exchange; routing key = event type. Unroutable messages go
  to the alternate exchange ``herald.events.unrouted`` and its queue of the same name,
  so an event published before its consumers exist is kept, not dropped.
* per consuming service a queue ``<queue>`` (quorum by default) bound to the keys it
  needs, dead-lettering to ``herald.dlx`` with routing key ``<queue>``; a broker-side
  delivery limit catches a message that crashes its consumer over and over.
* ``<queue>.retry.<n>`` — one delay queue per back-off step (``x-message-ttl``) that
  dead-letters back into ``<queue>`` when the delay is over.
* ``<queue>.dlq`` — bound to ``herald.dlx`` with key ``<queue>``: what failed for good,
  with the reason in the ``x-herald-error`` header. Inspect and replay it with
  :meth:`Broker.dead_letters` and :meth:`Broker.replay_dead_letters`.

Publishing waits for the broker's confirm and retries through reconnects, so a call
that returned means the broker has the message on disk. Consumers ack only after the
handler returned, i.e. after its work is committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError, DeliveryError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from herald_common.events import Envelope, InvalidEvent, parse_event
from herald_common.logs import set_correlation_id
from herald_common.metrics import (
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    EVENTS_PUBLISHED,
    HANDLER_LATENCY,
)
from herald_common.settings import HeraldSettings
from herald_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

H_ATTEMPTS = "x-herald-attempts"
H_ERROR = "x-herald-error"
H_ROUTING_KEY = "x-herald-routing-key"
H_FAILED_AT = "x-herald-failed-at"
H_REPLAYS = "x-herald-replays"
H_CORRELATION = "x-correlation-id"

Handler = Callable[[Envelope[Any]], Awaitable[None]]
BatchHandler = Callable[[list[Envelope[Any]]], Awaitable[None]]

_TRANSIENT = (
    ConnectionError,
    asyncio.TimeoutError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ChannelInvalidStateError,
    DeliveryError,
    RuntimeError,  # aio-pika raises it for a channel that is closed mid-reconnect
)


class PermanentError(Exception):
    """Raised by a handler for a message that will never succeed: no retries, DLQ now."""


@dataclass(frozen=True)
class DeadLetter:
    """One message sitting in a dead-letter queue."""

    queue: str
    message_id: str | None
    type: str | None
    routing_key: str | None
    error: str | None
    attempts: int
    failed_at: str | None
    body: Any


@dataclass
class QueueSpec:
    """A consumer queue and what it listens to."""

    name: str
    bindings: Sequence[str]
    retry_delays_ms: Sequence[int] = field(default_factory=lambda: [1_000, 5_000, 30_000])
    delivery_limit: int = 20

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def retry_queue(self, step: int) -> str:
        return f"{self.name}.retry.{step}"


def _header_int(headers: dict[str, Any], key: str) -> int:
    value = headers.get(key, 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


class Broker:
    """One robust connection with a confirming publish channel, plus consumers."""

    def __init__(self, settings: HeraldSettings, *, source: str | None = None) -> None:
        self.settings = settings
        self.source = source or settings.service_name
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._dlx: AbstractExchange | None = None
        self._consumers: list[Consumer] = []
        self._publish_lock = asyncio.Lock()

    # --- lifecycle -------------------------------------------------------------------

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect (retrying until ``timeout``) and declare the shared exchanges."""
        url = self.settings.amqp_url.get_secret_value()
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.2, max=3),
            retry=retry_if_exception_type((ConnectionError, OSError, aiormq.AMQPError)),
            reraise=True,
        ):
            with attempt:
                self._connection = await aio_pika.connect_robust(
                    url, client_properties={"connection_name": self.source}
                )
        assert self._connection is not None
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._declare_exchanges(self._channel)

    async def _declare_exchanges(self, channel: AbstractChannel) -> None:
        s = self.settings
        unrouted_name = f"{s.events_exchange}.unrouted"
        unrouted = await channel.declare_exchange(
            unrouted_name, aio_pika.ExchangeType.FANOUT, durable=True
        )
        unrouted_q = await channel.declare_queue(unrouted_name, durable=True)
        await unrouted_q.bind(unrouted)
        self._events = await channel.declare_exchange(
            s.events_exchange,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": unrouted_name},
        )
        self._dlx = await channel.declare_exchange(
            s.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._connection

    async def close(self) -> None:
        for consumer in self._consumers:
            try:
                await asyncio.wait_for(consumer.stop(), timeout=10)
            except TimeoutError:
                log.warning("consumer of %s did not stop in time", consumer.spec.name)
        self._consumers.clear()
        if self._connection is not None and not self._connection.is_closed:
            try:
                # A robust connection that is reconnecting to an unreachable broker
                # must not keep shutdown waiting.
                await asyncio.wait_for(self._connection.close(), timeout=10)
            except (TimeoutError, ConnectionError, OSError, aiormq.AMQPError):
                log.warning("broker connection did not close cleanly", exc_info=True)
        self._connection = None

    # --- publishing ------------------------------------------------------------------

    async def publish(self, event: Envelope[Any], *, timeout: float = 60.0) -> None:
        """Publish an event persistently; returns once the broker confirmed it.

        Retries through connection loss until ``timeout``; a message may then reach the
        broker twice, which idempotent consumers absorb (same event id).
        """
        headers: dict[str, Any] = {}
        if event.correlation_id:
            headers[H_CORRELATION] = event.correlation_id
        await self.publish_raw(
            event.to_bytes(),
            routing_key=event.type,
            message_id=str(event.id),
            type_=event.type,
            headers=headers,
            timeout=timeout,
        )
        EVENTS_PUBLISHED.labels(self.source, event.type).inc()

    async def publish_many(self, events: Sequence[Envelope[Any]], *, timeout: float = 60.0) -> None:
        """Publish events concurrently (their confirms overlap); returns once every one
        is confirmed. Order between them is not guaranteed.

        One retry loop for the whole batch: an attempt sends every event not confirmed
        yet, so after a reconnect only those are sent again (duplicates are possible
        only for events whose confirm was lost, and carry the same id)."""
        pending = list(events)
        if not pending:
            return
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.1, max=2),
            retry=retry_if_exception_type(_TRANSIENT),
            reraise=True,
        ):
            with attempt:
                target = await self._exchange(None)
                results = await asyncio.gather(
                    *(
                        asyncio.wait_for(
                            target.publish(self._event_message(e), routing_key=e.type),
                            timeout=10,
                        )
                        for e in pending
                    ),
                    return_exceptions=True,
                )
                failed: list[Envelope[Any]] = []
                error: BaseException | None = None
                for event, result in zip(pending, results, strict=True):
                    if isinstance(result, aiormq.spec.Basic.Nack):
                        result = DeliveryError(None, result)
                    if isinstance(result, BaseException):
                        if not isinstance(result, _TRANSIENT):
                            raise result
                        failed.append(event)
                        error = error or result
                    else:
                        EVENTS_PUBLISHED.labels(self.source, event.type).inc()
                pending = failed
                if error is not None:
                    raise error

    def _event_message(self, event: Envelope[Any]) -> aio_pika.Message:
        headers: dict[str, Any] = {}
        if event.correlation_id:
            headers[H_CORRELATION] = event.correlation_id
        return self._message(
            event.to_bytes(), message_id=str(event.id), type_=event.type, headers=headers
        )

    def _message(
        self,
        body: bytes,
        *,
        message_id: str | None,
        type_: str | None,
        headers: dict[str, Any] | None,
    ) -> aio_pika.Message:
        return aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=type_,
            headers=headers or {},
            timestamp=datetime.now(UTC),
            app_id=self.source,
        )

    async def publish_raw(
        self,
        body: bytes,
        *,
        routing_key: str,
        exchange: str | None = None,
        message_id: str | None = None,
        type_: str | None = None,
        headers: dict[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> None:
        """Publish bytes to ``exchange`` (default: the events exchange; ``""`` = the
        default exchange, i.e. straight to a queue) and wait for the confirm."""
        message = self._message(body, message_id=message_id, type_=type_, headers=headers)
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.1, max=2),
            retry=retry_if_exception_type(_TRANSIENT),
            reraise=True,
        ):
            with attempt:
                target = await self._exchange(exchange)
                confirmation = await asyncio.wait_for(
                    target.publish(message, routing_key=routing_key), timeout=10
                )
                if isinstance(confirmation, aiormq.spec.Basic.Nack):
                    raise DeliveryError(None, confirmation)

    async def _exchange(self, name: str | None) -> AbstractExchange:
        if self._channel is None or self._events is None:
            raise RuntimeError("Broker.connect() was not called")
        if self._channel.is_closed:
            # A robust channel reopens itself; a closed one here means it was closed
            # by the broker (e.g. after an error) and must be replaced.
            self._channel = await self.connection.channel(publisher_confirms=True)
            await self._declare_exchanges(self._channel)
        if name is None:
            return self._events
        if name == "":
            return self._channel.default_exchange
        if name == self.settings.dead_letter_exchange and self._dlx is not None:
            return self._dlx
        return await self._channel.get_exchange(name, ensure=False)

    # --- topology --------------------------------------------------------------------

    async def declare_queue(
        self, spec: QueueSpec, channel: AbstractChannel | None = None
    ) -> AbstractQueue:
        """Declare ``spec``'s queue, its retry queues and its DLQ, and bind them."""
        s = self.settings
        ch = channel or self._channel
        assert ch is not None, "Broker.connect() was not called"
        args: dict[str, Any] = {
            "x-dead-letter-exchange": s.dead_letter_exchange,
            "x-dead-letter-routing-key": spec.name,
        }
        if s.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
            args["x-delivery-limit"] = spec.delivery_limit
        queue = await ch.declare_queue(spec.name, durable=True, arguments=args)
        for key in spec.bindings:
            await queue.bind(s.events_exchange, routing_key=key)
        for step, delay in enumerate(spec.retry_delays_ms):
            await ch.declare_queue(
                spec.retry_queue(step),
                durable=True,
                arguments={
                    "x-message-ttl": int(delay),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": spec.name,
                },
            )
        dlq_args: dict[str, Any] = {"x-queue-type": "quorum"} if s.queue_type == "quorum" else {}
        dlq = await ch.declare_queue(spec.dlq, durable=True, arguments=dlq_args)
        await dlq.bind(s.dead_letter_exchange, routing_key=spec.name)
        return queue

    async def consume(
        self,
        queue: str,
        bindings: Iterable[str],
        handler: Handler,
        *,
        prefetch: int | None = None,
        retry_delays_ms: Sequence[int] | None = None,
    ) -> Consumer:
        """Start consuming ``queue`` (declared with its retry queues and DLQ)."""
        spec = QueueSpec(
            name=queue,
            bindings=list(bindings),
            retry_delays_ms=list(
                self.settings.retry_delays_ms if retry_delays_ms is None else retry_delays_ms
            ),
        )
        consumer = Consumer(self, spec, handler, prefetch or self.settings.prefetch)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def consume_batch(
        self,
        queue: str,
        bindings: Iterable[str],
        handler: BatchHandler,
        *,
        max_batch: int = 100,
        max_wait_ms: int = 50,
        prefetch: int | None = None,
        retry_delays_ms: Sequence[int] | None = None,
        concurrency: int = 1,
    ) -> BatchConsumer:
        """Consume ``queue`` in batches: ``handler`` gets up to ``max_batch`` events at
        once, collected for at most ``max_wait_ms`` after the first one arrived. Up to
        ``concurrency`` batches are in progress at once (the next one is collected
        while earlier ones are handled; their order is not kept).

        Same guarantees as :meth:`consume`, per message: a malformed message is
        dead-lettered on its own (the others still form the batch); when the handler
        fails for a batch, every event of it is handed to the handler again alone, so
        only the ones that fail by themselves are retried or dead-lettered. The
        handler must therefore be idempotent (it is anyway: redelivery is normal).
        """
        spec = QueueSpec(
            name=queue,
            bindings=list(bindings),
            retry_delays_ms=list(
                self.settings.retry_delays_ms if retry_delays_ms is None else retry_delays_ms
            ),
        )
        consumer = BatchConsumer(
            self,
            spec,
            handler,
            # A prefetch below the batches in progress could never fill them.
            max(prefetch or self.settings.prefetch, max_batch * concurrency),
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            concurrency=concurrency,
        )
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    # --- dead letters ------------------------------------------------------------------

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (0 when it does not exist)."""
        channel = await self.connection.channel()
        try:
            q = await channel.declare_queue(queue, passive=True)
            return int(q.declaration_result.message_count or 0)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return 0
        finally:
            if not channel.is_closed:
                await channel.close()

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Look at up to ``limit`` messages in ``<queue>.dlq`` without removing them."""
        channel = await self.connection.channel()
        held: list[AbstractIncomingMessage] = []
        result: list[DeadLetter] = []
        try:
            dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
            while len(held) < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                held.append(message)
                result.append(self._describe_dead_letter(queue, message))
        except aiormq.exceptions.ChannelNotFoundEntity:
            return []
        finally:
            for message in held:
                await message.nack(requeue=True)
            if not channel.is_closed:
                await channel.close()
        return result

    @staticmethod
    def _describe_dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
        headers: dict[str, Any] = dict(message.headers or {})
        error = _text(headers.get(H_ERROR))
        if error is None and "x-death" in headers:
            deaths = headers["x-death"] or []
            first = deaths[0] if deaths else {}
            error = f"dead-lettered by the broker: {_text(first.get('reason'))}"
        try:
            body: Any = json.loads(message.body)
        except ValueError:
            body = message.body.decode(errors="replace")
        return DeadLetter(
            queue=queue,
            message_id=message.message_id,
            type=message.type,
            routing_key=_text(headers.get(H_ROUTING_KEY)) or message.type,
            error=error,
            attempts=_header_int(headers, H_ATTEMPTS),
            failed_at=_text(headers.get(H_FAILED_AT)),
            body=body,
        )

    async def replay_dead_letters(self, queue: str, limit: int = 100) -> int:
        """Move up to ``limit`` messages from ``<queue>.dlq`` back into ``<queue>``.

        Each is re-published (confirmed) before it is removed from the DLQ, so a crash
        in between duplicates rather than loses it. Returns how many were replayed.
        """
        channel = await self.connection.channel()
        moved = 0
        try:
            dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
            while moved < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                headers: dict[str, Any] = dict(message.headers or {})
                headers.pop("x-death", None)
                headers.pop(H_ERROR, None)
                headers[H_ATTEMPTS] = 0
                headers[H_REPLAYS] = _header_int(headers, H_REPLAYS) + 1
                try:
                    await self.publish_raw(
                        message.body,
                        exchange="",
                        routing_key=queue,
                        message_id=message.message_id,
                        type_=message.type,
                        headers=headers,
                    )
                except Exception:
                    await message.nack(requeue=True)
                    raise
                await message.ack()
                moved += 1
        except aiormq.exceptions.ChannelNotFoundEntity:
            return 0
        finally:
            if not channel.is_closed:
                await channel.close()
        log.info("replayed dead letters", extra={"queue": queue, "count": moved})
        return moved


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
            message.redelivered or "x-death" in headers or _header_int(headers, H_ATTEMPTS)
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

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        try:
            await message.ack()
        except Exception:
            # The channel went away (reconnect): the broker redelivers the message and
            # the idempotent handler absorbs the repeat.
            log.warning("ack failed; the message will be redelivered", exc_info=True)

    async def _retry(
        self, message: AbstractIncomingMessage, headers: dict[str, Any], reason: str
    ) -> None:
        attempts = _header_int(headers, H_ATTEMPTS) + 1
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
                H_ATTEMPTS: attempts if attempts is not None else _header_int(headers, H_ATTEMPTS),
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
            await message.nack(requeue=True)
            return
        await message.ack()


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

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._run(), name=f"batch-consumer-{self.spec.name}")
        await super().start()

    async def stop(self) -> None:
        await cancel_and_wait(self._flusher, *self._in_progress)
        self._flusher = None
        self._in_progress.clear()
        # Unacknowledged messages still buffered return to the queue with the channel.
        self._pending.clear()
        await super().stop()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
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
        for message, _, event in batch:
            await self._ack(message)
            EVENTS_CONSUMED.labels(svc, queue, event.type, "ok").inc()
