"""Queue topology, message headers and dead letters (used by :mod:`herald_common.messaging`).

* ``<queue>`` (quorum by default) bound to the keys it needs, dead-lettering to
  ``herald.dlx`` with routing key ``<queue>``; a broker-side delivery limit catches a
  message that crashes its consumer over and over;
* ``<queue>.retry.<n>``: one delay queue per back-off step (``x-message-ttl``) that
  dead-letters back into ``<queue>`` when the delay is over;
* ``<queue>.dlq``: what failed for good, with the reason in the ``x-herald-error``
  header; :func:`dead_letters` looks at it, :func:`replay_dead_letters` moves it back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from herald_common.settings import HeraldSettings

if TYPE_CHECKING:
    from herald_common.messaging import Broker

log = logging.getLogger(__name__)

H_ATTEMPTS = "x-herald-attempts"
H_ERROR = "x-herald-error"
H_ROUTING_KEY = "x-herald-routing-key"
H_FAILED_AT = "x-herald-failed-at"
H_REPLAYS = "x-herald-replays"
H_CORRELATION = "x-correlation-id"


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


def header_int(headers: dict[str, Any], key: str) -> int:
    value = headers.get(key, 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


async def declare_queue(
    channel: AbstractChannel, settings: HeraldSettings, spec: QueueSpec
) -> AbstractQueue:
    """Declare ``spec``'s queue, its retry queues and its DLQ, and bind them."""
    s, ch = settings, channel
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


async def dead_letters(broker: Broker, queue: str, limit: int = 100) -> list[DeadLetter]:
    """Look at up to ``limit`` messages in ``<queue>.dlq`` without removing them."""
    channel = await broker.connection.channel()
    held: list[AbstractIncomingMessage] = []
    result: list[DeadLetter] = []
    try:
        dlq = await channel.declare_queue(f"{queue}.dlq", passive=True)
        while len(held) < limit:
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            result.append(describe_dead_letter(queue, message))
    except aiormq.exceptions.ChannelNotFoundEntity:
        return []
    finally:
        for message in held:
            await message.nack(requeue=True)
        if not channel.is_closed:
            await channel.close()
    return result


def describe_dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers: dict[str, Any] = dict(message.headers or {})
    error = text(headers.get(H_ERROR))
    if error is None and "x-death" in headers:
        deaths = headers["x-death"] or []
        first = deaths[0] if deaths else {}
        error = f"dead-lettered by the broker: {text(first.get('reason'))}"
    try:
        body: Any = json.loads(message.body)
    except ValueError:
        body = message.body.decode(errors="replace")
    return DeadLetter(
        queue=queue,
        message_id=message.message_id,
        type=message.type,
        routing_key=text(headers.get(H_ROUTING_KEY)) or message.type,
        error=error,
        attempts=header_int(headers, H_ATTEMPTS),
        failed_at=text(headers.get(H_FAILED_AT)),
        body=body,
    )


async def replay_dead_letters(broker: Broker, queue: str, limit: int = 100) -> int:
    """Move up to ``limit`` messages from ``<queue>.dlq`` back into ``<queue>``.

    Each is re-published (confirmed) before it is removed from the DLQ, so a crash
    in between duplicates rather than loses it. Returns how many were replayed.
    """
    channel = await broker.connection.channel()
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
            headers[H_REPLAYS] = header_int(headers, H_REPLAYS) + 1
            try:
                await broker.publish_raw(
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
