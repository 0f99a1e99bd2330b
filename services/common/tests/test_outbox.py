"""Idempotent consumption and the outbox relay, against the real servers."""

import asyncio

import pytest
from herald_common.db import connect_db, disconnect_db, run_db
from herald_common.events import Envelope, UserDeleted, UserPreferencesUpdated, make_event
from herald_common.idempotency import ProcessedEvents
from herald_common.outbox import OutboxDocument, OutboxRelay, outbox_update
from herald_common.preferences import Preferences
from herald_testing import eventually
from mongoengine import StringField

pytestmark = pytest.mark.integration


class Account(OutboxDocument):
    """A stand-in for a service document that publishes events when it changes."""

    name = StringField(required=True)
    meta = {"collection": "accounts"}


@pytest.fixture
def db(make_settings):
    settings = make_settings()
    connect_db(settings)
    yield settings
    disconnect_db()


def _updated(user_id: str, name: str, revision: int) -> Envelope:
    return make_event(
        "user.preferences_updated",
        UserPreferencesUpdated(
            user_id=user_id,
            name=name,
            email="a@example.com",
            preferences=Preferences(),
            revision=revision,
        ),
        source="test",
    )


async def test_redelivered_message_has_one_effect(db, broker_for, unique):
    broker = await broker_for(db)
    effects: list[str] = []
    processed = ProcessedEvents("test-consumer")

    async def handler(event: Envelope) -> None:
        async def effect() -> None:
            effects.append(event.payload.user_id)

        await processed.run_once(str(event.id), effect)

    # A prefetch > 1 lets duplicates be handled concurrently: the claim must hold.
    await broker.consume(f"idem.{unique}", ["user.deleted"], handler, prefetch=10)
    event = make_event("user.deleted", UserDeleted(user_id="u-1", revision=1), source="t")
    for _ in range(3):  # the same event, delivered three times
        await broker.publish(event)
    await broker.publish(
        make_event("user.deleted", UserDeleted(user_id="u-2", revision=1), source="t")
    )
    await eventually(lambda: "u-2" in effects)
    await asyncio.sleep(0.3)
    assert effects == ["u-1", "u-2"]


async def test_outbox_relays_what_a_crash_left_behind(db, broker_for, unique):
    broker = await broker_for(db)
    received: list[tuple[str, int]] = []

    async def handler(event: Envelope) -> None:
        received.append((event.payload.name, event.payload.revision))

    await broker.consume(f"outbox.{unique}", ["user.preferences_updated"], handler)

    # The service wrote state + events, then "crashed" before any relay ran.
    account = Account(name="Ann")
    account.stage(_updated("a1", "Ann", 1))
    await run_db(account.save)
    await run_db(
        Account.objects(id=account.id).update_one,
        set__name="Anne",
        **outbox_update(_updated("a1", "Anne", 2), _updated("a1", "Anne", 3)),
    )
    assert received == []

    # A new process starts its relay: everything staged is published, in order.
    relay = OutboxRelay(broker, [Account])
    await run_db(relay.ensure_indexes)
    assert await relay.relay_once() == 3
    await eventually(lambda: len(received) == 3)
    assert received == [("Ann", 1), ("Anne", 2), ("Anne", 3)]
    stored = await run_db(lambda: Account.objects.get(id=account.id))
    assert stored.outbox == [] and stored.outbox_pending is False
    assert stored.name == "Anne"
    assert await relay.relay_once() == 0


async def test_crash_between_publish_and_clear_only_duplicates_the_same_event(
    db, broker_for, unique
):
    broker = await broker_for(db)
    ids: list[str] = []

    async def handler(event: Envelope) -> None:
        ids.append(str(event.id))

    await broker.consume(f"outbox-dup.{unique}", ["user.preferences_updated"], handler)
    account = Account(name="Bo")
    event = _updated("b1", "Bo", 1)
    account.stage(event)
    await run_db(account.save)
    # Simulate: the relay published, then died before removing the entry.
    await broker.publish(event)
    relay = OutboxRelay(broker, [Account])
    await relay.relay_once()
    await eventually(lambda: len(ids) == 2)
    assert set(ids) == {str(event.id)}  # same event id twice: consumers de-duplicate it


async def test_relay_loop_publishes_promptly_when_woken(db, broker_for, unique):
    broker = await broker_for(db)
    got: list[int] = []

    async def handler(event: Envelope) -> None:
        got.append(event.payload.revision)

    await broker.consume(f"outbox-run.{unique}", ["user.preferences_updated"], handler)
    relay = OutboxRelay(broker, [Account], poll_interval=30)
    relay.start()
    try:
        account = Account(name="Cy")
        account.stage(_updated("c1", "Cy", 1))
        await run_db(account.save)
        relay.wake()
        await eventually(lambda: got == [1], timeout=5)
    finally:
        await relay.stop()


def test_claims_lease_and_takeover(db):
    from datetime import UTC, datetime, timedelta

    import pytest as _pytest
    from herald_common.idempotency import AlreadyInProgress

    store = ProcessedEvents("lease-test", lease=timedelta(seconds=30))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert store.claim("k", now=t0)
    with _pytest.raises(AlreadyInProgress):
        store.claim("k", now=t0 + timedelta(seconds=5))
    # The first worker died: after the lease, a redelivery takes over.
    assert store.claim("k", now=t0 + timedelta(seconds=31))
    store.complete("k")
    assert store.claim("k", now=t0 + timedelta(hours=1)) is False
    assert store.seen("k")
