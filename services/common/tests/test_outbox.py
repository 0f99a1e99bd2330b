"""The outbox relay against the real servers: crash recovery, duplicates, wake-up."""

import pytest
from herald_common.db import connect_db, disconnect_db, run_db
from herald_common.events import Envelope, UserPreferencesUpdated, make_event
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
