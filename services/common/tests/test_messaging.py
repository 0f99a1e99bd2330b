"""Messaging against the real RabbitMQ: fan-out, retry, DLQ, replay, idempotency, loss."""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from herald_common.events import Envelope, NotificationRequested, UserDeleted, make_event
from herald_common.messaging import PermanentError
from herald_testing import eventually
from herald_testing.faults import TcpProxy
from pydantic import SecretStr

pytestmark = pytest.mark.integration


def _request(key: str) -> Envelope:
    return make_event(
        "notification.requested",
        NotificationRequested(
            idempotency_key=key,
            user_id="u1",
            type="promotion",
            content={"title": "Sale", "body": "Everything -20%"},
            source="test",
            requested_at=datetime.now(UTC),
        ),
        source="test",
    )


async def test_publish_reaches_every_consumer_queue(broker_for, unique) -> None:
    broker = await broker_for()
    got_a: list[str] = []
    got_b: list[str] = []

    async def handle_a(event: Envelope) -> None:
        got_a.append(str(event.id))

    async def handle_b(event: Envelope) -> None:
        got_b.append(str(event.id))

    await broker.consume(f"a.{unique}", ["notification.*"], handle_a)
    await broker.consume(f"b.{unique}", ["notification.requested", "user.*"], handle_b)
    sent = [_request(f"k{i}") for i in range(5)]
    for event in sent:
        await broker.publish(event)
    await broker.publish(
        make_event("user.deleted", UserDeleted(user_id="u", revision=1), source="t")
    )

    await eventually(lambda: len(got_a) == 5 and len(got_b) == 6)
    assert got_a == [str(e.id) for e in sent]  # order kept within one queue


async def test_failing_handler_is_retried_then_dead_lettered_and_replayable(broker_for, unique):
    broker = await broker_for()
    queue = f"fail.{unique}"
    attempts: list[str] = []
    healthy = asyncio.Event()
    handled: list[str] = []

    async def handler(event: Envelope) -> None:
        if not healthy.is_set():
            attempts.append(str(event.id))
            raise RuntimeError("database is on fire")
        handled.append(str(event.id))

    await broker.consume(queue, ["notification.requested"], handler, retry_delays_ms=[50, 100])
    event = _request("k-fail")
    await broker.publish(event)

    async def dead_lettered() -> bool:
        return await broker.queue_depth(f"{queue}.dlq") == 1

    await eventually(dead_lettered)
    assert len(attempts) == 3  # first delivery + two retries
    [letter] = await broker.dead_letters(queue)
    assert letter.message_id == str(event.id)
    assert "RuntimeError: database is on fire" in (letter.error or "")
    assert "gave up after 3 attempts" in (letter.error or "")
    assert letter.routing_key == "notification.requested"
    assert letter.body["payload"]["idempotency_key"] == "k-fail"
    # inspecting does not consume
    assert await broker.queue_depth(f"{queue}.dlq") == 1

    healthy.set()
    assert await broker.replay_dead_letters(queue) == 1
    await eventually(lambda: handled == [str(event.id)])
    assert await broker.queue_depth(f"{queue}.dlq") == 0


async def test_malformed_event_goes_to_dlq_without_retries_and_others_flow(broker_for, unique):
    broker = await broker_for()
    queue = f"malformed.{unique}"
    handled: list[str] = []

    async def handler(event: Envelope) -> None:
        handled.append(event.payload.idempotency_key)

    await broker.consume(queue, ["notification.requested"], handler)
    await broker.publish(_request("before"))
    bad = json.loads(_request("bad").to_bytes())
    bad["payload"]["type"] = "carrier-pigeon"
    await broker.publish_raw(json.dumps(bad).encode(), routing_key="notification.requested")
    await broker.publish(_request("after"))

    await eventually(lambda: handled == ["before", "after"])
    await eventually(lambda: broker.queue_depth(f"{queue}.dlq"))
    [letter] = await broker.dead_letters(queue)
    assert "invalid event" in letter.error
    assert "payload.type" in letter.error
    assert letter.attempts == 0


async def test_permanent_error_skips_retries(broker_for, unique):
    broker = await broker_for()
    queue = f"perm.{unique}"
    calls = 0

    async def handler(event: Envelope) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("user does not exist")

    await broker.consume(queue, ["notification.requested"], handler)
    await broker.publish(_request("p"))
    await eventually(lambda: broker.queue_depth(f"{queue}.dlq"))
    assert calls == 1
    [letter] = await broker.dead_letters(queue)
    assert letter.error == "PermanentError: user does not exist"


async def test_unroutable_events_are_kept(broker_for, make_settings):
    settings = make_settings()
    broker = await broker_for(settings)
    await broker.publish(_request("nobody-listens"))
    await eventually(lambda: broker.queue_depth(f"{settings.events_exchange}.unrouted"))


@pytest.mark.slow
async def test_connection_drop_during_burst_loses_no_confirmed_message(
    broker_for, make_settings, unique
):
    # Both brokers reach RabbitMQ through a proxy that cuts every connection mid-burst,
    # as a network failure or a broker restart would.
    base = make_settings()
    proxy = await TcpProxy.for_url(base.amqp_url.get_secret_value(), 5672).start()
    settings = base.model_copy(
        update={"amqp_url": SecretStr(proxy.url_through(base.amqp_url.get_secret_value()))}
    )
    publisher = await broker_for(settings, source=f"burst-pub-{unique}")
    consumer_broker = await broker_for(settings, source=f"burst-sub-{unique}")
    received: set[str] = set()

    async def handler(event: Envelope) -> None:
        received.add(event.payload.idempotency_key)

    await consumer_broker.consume(
        f"burst.{unique}", ["notification.requested"], handler, prefetch=200
    )
    confirmed: list[str] = []
    reconnects: list[int] = []
    publisher.connection.reconnect_callbacks.add(lambda *_: reconnects.append(1))
    consumer_broker.connection.reconnect_callbacks.add(lambda *_: reconnects.append(2))
    dropped = asyncio.Event()

    async def burst() -> None:
        # Keep publishing until well after the drop, so it really happens mid-burst.
        i = 0
        after_drop = 0
        while after_drop < 300:
            key = f"m{i}"
            await publisher.publish(_request(key))
            confirmed.append(key)
            i += 1
            after_drop += dropped.is_set()

    task = asyncio.create_task(burst())
    try:
        await eventually(lambda: len(confirmed) >= 100)
        assert proxy.drop_all() >= 2
        dropped.set()
        await asyncio.wait_for(task, timeout=120)
        assert 1 in reconnects and 2 in reconnects, "both connections were cut and restored"
        await eventually(lambda: received >= set(confirmed), timeout=60)
    finally:
        task.cancel()
        await consumer_broker.close()
        await publisher.close()
        await proxy.close()
