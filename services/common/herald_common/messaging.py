"""RabbitMQ messaging: the :class:`Broker` (one robust connection, confirmed publishing,
topology, consumers with retry and DLQ).

Topology (all durable):

* ``herald.events`` — topic exchange; routing key = event type. Unroutable messages go
  to the alternate exchange ``herald.events.unrouted`` and its queue of the same name,
  so an event published before its consumers exist is kept, not dropped.
* per consuming service a queue ``<queue>`` with its retry queues and its DLQ
  (:mod:`herald_common.queues`); inspect and replay the DLQ with
  :meth:`Broker.dead_letters` and :meth:`Broker.replay_dead_letters`.

Publishing waits for the broker's confirm and retries through reconnects, so a call
that returned means the broker has the message on disk. Consumers
(:mod:`herald_common.consumer`) ack only after the handler returned, i.e. after its work
is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
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

from herald_common import queues
from herald_common.consumer import BatchConsumer, BatchHandler, Consumer, Handler, PermanentError
from herald_common.events import Envelope
from herald_common.metrics import EVENTS_PUBLISHED
from herald_common.queues import H_CORRELATION, DeadLetter, QueueSpec
from herald_common.settings import HeraldSettings

__all__ = [
    "H_CORRELATION",
    "BatchConsumer",
    "BatchHandler",
    "Broker",
    "Consumer",
    "DeadLetter",
    "Handler",
    "PermanentError",
    "QueueSpec",
]

log = logging.getLogger(__name__)

_TRANSIENT = (
    ConnectionError,
    asyncio.TimeoutError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ChannelInvalidStateError,
    DeliveryError,
    RuntimeError,  # aio-pika raises it for a channel that is closed mid-reconnect
)


# How long one publish attempt (a message, or a batch whose confirms overlap) may wait
# for the broker's confirms before it counts as failed and is tried again.
CONFIRM_TIMEOUT = 10.0


def _retrying_publish(timeout: float) -> AsyncRetrying:
    """The retry loop of a publish: transient errors are tried again, backing off, for
    up to ``timeout`` seconds; then the last error is raised."""
    return AsyncRetrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.1, max=2),
        retry=retry_if_exception_type(_TRANSIENT),
        reraise=True,
    )


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
            routing_key=event.routing_key,
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
        yet, so after a reconnect only those are sent again; an attempt that outlives
        :data:`CONFIRM_TIMEOUT` sends all of its events again (duplicates are possible
        only for events whose confirm was lost or late, and carry the same id)."""
        pending = list(events)
        if not pending:
            return
        async for attempt in _retrying_publish(timeout):
            with attempt:
                target = await self._exchange(None)
                # One deadline for the attempt: the confirms overlap, so a batch takes
                # about as long as one publish (no timer task per message).
                async with asyncio.timeout(CONFIRM_TIMEOUT):
                    results = await asyncio.gather(
                        *(
                            target.publish(self._event_message(e), routing_key=e.routing_key)
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
        try:  # the common case, without the retry loop's cost
            await self._publish_once(message, routing_key, exchange)
            return
        except _TRANSIENT:
            log.info("publish failed; retrying", exc_info=True)
        async for attempt in _retrying_publish(timeout):
            with attempt:
                await self._publish_once(message, routing_key, exchange)

    async def _publish_once(
        self, message: aio_pika.Message, routing_key: str, exchange: str | None
    ) -> None:
        target = await self._exchange(exchange)
        async with asyncio.timeout(CONFIRM_TIMEOUT):
            confirmation = await target.publish(message, routing_key=routing_key)
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
        ch = channel or self._channel
        assert ch is not None, "Broker.connect() was not called"
        return await queues.declare_queue(ch, self.settings, spec)

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
        return await queues.dead_letters(self, queue, limit)

    async def replay_dead_letters(self, queue: str, limit: int = 100) -> int:
        """Move up to ``limit`` messages from ``<queue>.dlq`` back into ``<queue>``
        (each re-published, confirmed, before it leaves the DLQ); returns how many."""
        return await queues.replay_dead_letters(self, queue, limit)
