"""Batch consumption against the real RabbitMQ: batching, per-message DLQ and retry."""

import json
from datetime import UTC, datetime

import pytest
from aio_pika.message import IncomingMessage
from herald_common.events import Envelope, NotificationRequested, make_event
from herald_common.messaging import PermanentError, QueueSpec
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _request(key: str) -> Envelope:
    return make_event(
        "notification.requested",
        NotificationRequested(
            idempotency_key=key,
            user_id="u1",
            type="promotion",
            content="hello",
            source="test",
            requested_at=datetime.now(UTC),
        ),
        source="test",
    )


async def test_a_backlog_arrives_in_batches_each_message_once(broker_for, unique):
    broker = await broker_for()
    queue = f"batch.{unique}"
    # Fill the queue before anyone consumes it, so the consumer sees a burst.
    await broker.declare_queue(
        QueueSpec(queue, ["notification.requested"], broker.settings.retry_delays_ms)
    )
    for i in range(250):
        await broker.publish(_request(f"k{i}"))
    batches: list[list[str]] = []

    async def handler(events: list[Envelope]) -> None:
        batches.append([e.payload.idempotency_key for e in events])

    await broker.consume_batch(
        queue, ["notification.requested"], handler, max_batch=100, max_wait_ms=500
    )
    await eventually(lambda: sum(map(len, batches)) >= 250)
    keys = [k for batch in batches for k in batch]
    assert sorted(keys) == sorted(f"k{i}" for i in range(250))  # each exactly once
    assert keys == [f"k{i}" for i in range(250)]  # in queue order
    assert max(len(b) for b in batches) == 100
    assert all(len(b) <= 100 for b in batches)
    assert await broker.queue_depth(queue) == 0


async def test_a_batch_is_acked_with_one_multiple_ack(broker_for, unique, monkeypatch):
    acks: list[bool] = []
    real_ack = IncomingMessage.ack

    async def ack(self: IncomingMessage, multiple: bool = False) -> None:
        acks.append(multiple)
        await real_ack(self, multiple=multiple)

    monkeypatch.setattr(IncomingMessage, "ack", ack)
    broker = await broker_for()
    queue = f"batch-ack.{unique}"
    await broker.declare_queue(
        QueueSpec(queue, ["notification.requested"], broker.settings.retry_delays_ms)
    )
    for i in range(250):
        if i == 120:  # dead-lettered (and acked) on its own as it arrives
            bad = json.loads(_request("bad").to_bytes())
            bad["payload"]["type"] = "carrier-pigeon"
            await broker.publish_raw(json.dumps(bad).encode(), routing_key="notification.requested")
        await broker.publish(_request(f"k{i}"))
    batches: list[int] = []

    async def handler(events: list[Envelope]) -> None:
        batches.append(len(events))

    await broker.consume_batch(
        queue, ["notification.requested"], handler, max_batch=100, max_wait_ms=500
    )
    await eventually(lambda: sum(batches) >= 250)
    await eventually(lambda: len(acks) >= len(batches) + 1)
    assert acks.count(True) == len(batches) and acks.count(False) == 1, (acks, batches)
    # Really acknowledged: with the consumer gone nothing comes back to the queue.
    await broker.close()
    other = await broker_for()
    assert await other.queue_depth(queue) == 0
    assert await other.queue_depth(f"{queue}.dlq") == 1


async def test_malformed_message_is_dead_lettered_alone(broker_for, unique):
    broker = await broker_for()
    queue = f"batch-bad.{unique}"
    await broker.declare_queue(
        QueueSpec(queue, ["notification.requested"], broker.settings.retry_delays_ms)
    )
    await broker.publish(_request("before"))
    bad = json.loads(_request("bad").to_bytes())
    bad["payload"]["type"] = "carrier-pigeon"
    await broker.publish_raw(json.dumps(bad).encode(), routing_key="notification.requested")
    await broker.publish(_request("after"))
    handled: list[str] = []

    async def handler(events: list[Envelope]) -> None:
        handled.extend(e.payload.idempotency_key for e in events)

    await broker.consume_batch(queue, ["notification.requested"], handler, max_wait_ms=300)
    await eventually(lambda: handled == ["before", "after"])
    await eventually(lambda: broker.queue_depth(f"{queue}.dlq"))
    [letter] = await broker.dead_letters(queue)
    assert "invalid event" in (letter.error or "") and "payload.type" in (letter.error or "")
    assert letter.attempts == 0


async def test_failed_batch_is_retried_per_message(broker_for, unique):
    broker = await broker_for()
    queue = f"batch-fail.{unique}"
    await broker.declare_queue(
        QueueSpec(queue, ["notification.requested"], retry_delays_ms=[50, 100])
    )
    for key in ("a", "poison", "b", "fatal", "c"):
        await broker.publish(_request(key))
    handled: list[str] = []
    calls: list[list[str]] = []

    async def handler(events: list[Envelope]) -> None:
        keys = [e.payload.idempotency_key for e in events]
        calls.append(keys)
        if "poison" in keys:
            raise RuntimeError("cannot store poison")
        if "fatal" in keys:
            raise PermanentError("fatal is never valid")
        handled.extend(keys)

    await broker.consume_batch(
        queue, ["notification.requested"], handler, max_wait_ms=300, retry_delays_ms=[50, 100]
    )

    async def two_dead() -> bool:
        return await broker.queue_depth(f"{queue}.dlq") == 2

    await eventually(two_dead)
    assert sorted(handled) == ["a", "b", "c"]  # the healthy ones, once each
    assert calls[0] == ["a", "poison", "b", "fatal", "c"]  # first as one batch
    assert calls.count(["fatal"]) == 1  # permanent: no retry
    assert calls.count(["poison"]) == 3  # alone, then two retries
    letters = {d.body["payload"]["idempotency_key"]: d for d in await broker.dead_letters(queue)}
    assert "gave up after 3 attempts" in (letters["poison"].error or "")
    assert letters["fatal"].error == "PermanentError: fatal is never valid"
