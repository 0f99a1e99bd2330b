"""Removing what tests declared on the shared RabbitMQ.

Every test names its queues and exchanges after its id (``make_settings``:
``herald.events.t<id>``, ``notifications.requests.t<id>``, ``observer.<id>``...). Quorum
queues left behind cost the broker CPU even when empty (each is a Raft group with its
own timers: thousands of them kept RabbitMQ at 10-20 % of a core), so:

* :class:`Declarations` records, while a test runs, every queue and exchange declared
  in the test process; at the end the ones named after the test's id are deleted
  (:func:`delete`), together with the names its settings imply (queues declared by
  processes the test started);
* ``python -m herald_testing.prune`` removes what interrupted sessions left.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# A dot-separated part that is a test id: 10 hex digits, optionally after a "t".
TEST_ID_PART = re.compile(r"(?:^|\.)t?[0-9a-f]{10}(?:\.|$)")
# Retry steps a test's queue may have (settings.retry_delays_ms has 2-3 entries).
RETRY_STEPS = 4


def named_after(name: str, test_id: str) -> bool:
    """True when ``name`` contains the test id as one of its dot-separated parts."""
    return any(part in (test_id, f"t{test_id}") for part in name.split("."))


def looks_like_a_test_name(name: str) -> bool:
    """True for names built from a test id (what :mod:`herald_testing.prune` removes)."""
    return TEST_ID_PART.search(name) is not None


def implied_names(settings: Any) -> tuple[set[str], set[str]]:
    """Queues and exchanges a component with ``settings`` declares: every ``*_queue``
    setting with its retry queues and DLQ, the events exchange with its unrouted
    exchange and queue, the dead-letter exchange."""
    queues: set[str] = set()
    for field in type(settings).model_fields:
        value = getattr(settings, field, None)
        if field.endswith("_queue") and isinstance(value, str) and value:
            queues |= {value, f"{value}.dlq", *(f"{value}.retry.{n}" for n in range(RETRY_STEPS))}
    events = getattr(settings, "events_exchange", "")
    exchanges = {events, f"{events}.unrouted", getattr(settings, "dead_letter_exchange", "")}
    queues.add(f"{events}.unrouted")
    return queues, {x for x in exchanges if x}


class Declarations:
    """Names of the queues and exchanges declared in this process while recording."""

    def __init__(self) -> None:
        self.queues: set[str] = set()
        self.exchanges: set[str] = set()

    @contextmanager
    def recording(self) -> Iterator[Declarations]:
        from aio_pika.channel import Channel

        declare_queue, declare_exchange = Channel.declare_queue, Channel.declare_exchange
        queues, exchanges = self.queues, self.exchanges

        async def record_queue(self: Any, name: str | None = None, *args: Any, **kw: Any) -> Any:
            if name:
                queues.add(name)
            return await declare_queue(self, name, *args, **kw)

        async def record_exchange(self: Any, name: str, *args: Any, **kw: Any) -> Any:
            if name:
                exchanges.add(name)
            return await declare_exchange(self, name, *args, **kw)

        Channel.declare_queue = record_queue  # type: ignore[method-assign]
        Channel.declare_exchange = record_exchange  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Channel.declare_queue = declare_queue  # type: ignore[method-assign]
            Channel.declare_exchange = declare_exchange  # type: ignore[method-assign]


async def delete_async(amqp_url: str, queues: Iterable[str], exchanges: Iterable[str]) -> int:
    """Delete the queues, then the exchanges (missing ones are skipped); returns how
    many names were deleted."""
    import aio_pika
    import aiormq

    deleted = 0
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        for kind, names in (("queue", sorted(set(queues))), ("exchange", sorted(set(exchanges)))):
            for name in names:
                try:
                    if kind == "queue":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
                    deleted += 1
                except aiormq.exceptions.AMQPError:
                    # The broker closes the channel on an error: open another.
                    channel = await connection.channel()
    finally:
        await connection.close()
    return deleted


def delete(amqp_url: str, queues: Iterable[str], exchanges: Iterable[str]) -> int:
    """:func:`delete_async` from synchronous code, also when an event loop runs in this
    thread (it runs in a thread of its own)."""
    result: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(delete_async(amqp_url, queues, exchanges)))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    thread = threading.Thread(target=run, name="amqp-cleanup")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
