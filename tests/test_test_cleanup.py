"""Test sessions leave nothing on the shared RabbitMQ: the queues and exchanges a test
declared (in this process or implied by its settings) are deleted when it ends, and
``herald_testing.prune`` picks only what interrupted sessions left."""

from __future__ import annotations

import uuid

import aio_pika
import aiormq
import pytest
from herald_common.messaging import Broker, QueueSpec
from herald_common.settings import HeraldSettings
from herald_testing.cleanup import Declarations, delete_async, implied_names, named_after
from herald_testing.infra import _delete_amqp
from herald_testing.prune import id_in, idle_vhosts, plan


def test_names_after_a_test_id() -> None:
    tid = "0123456789"
    assert named_after(f"notifications.requests.t{tid}.retry.0", tid)
    assert named_after(f"observer.{tid}", tid)
    assert not named_after("notifications.requests", tid)
    assert not named_after(f"x.t{tid}0", tid)
    assert id_in(f"herald.events.t{tid}.unrouted") == tid
    assert id_in("herald.events.unrouted") is None
    assert id_in("notifications.bench1234abcd.requests") is None  # bench ids: 8 digits


def test_prune_keeps_the_groups_of_running_tests() -> None:
    queues = [
        ("notifications.requests.taaaaaaaaaa", 0),
        ("notifications.requests.taaaaaaaaaa.dlq", 0),
        ("observer.bbbbbbbbbb", 1),  # a test running now
        ("observer.bbbbbbbbbb.retry.0", 0),
        ("notifications.requests", 3),  # never a test's
    ]
    exchanges = ["herald.events.taaaaaaaaaa", "herald.events.tbbbbbbbbbb", "herald.events"]
    doomed_q, doomed_x, busy = plan(queues, exchanges)
    assert doomed_q == {
        "notifications.requests.taaaaaaaaaa",
        "notifications.requests.taaaaaaaaaa.dlq",
    }
    assert doomed_x == {"herald.events.taaaaaaaaaa"}
    assert busy == {"bbbbbbbbbb"}


def test_prune_removes_run_vhosts_nothing_is_connected_to() -> None:
    vhosts = ["/", "herald-e2e-0a1b2c3d", "herald-e2e-99999999", "herald-bench-12ab34cd",
              "herald-e2e-shop", "tenant-a"]  # fmt: skip
    assert idle_vhosts(vhosts, connected={"/", "herald-e2e-99999999"}) == [
        "herald-bench-12ab34cd",
        "herald-e2e-0a1b2c3d",
    ]


async def _exists(url: str, queue: str) -> bool:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


@pytest.mark.integration
async def test_a_tests_queues_and_exchanges_are_deleted_at_its_end(infra) -> None:
    tid = uuid.uuid4().hex[:10]
    url = infra["HERALD_AMQP_URL"]
    settings = HeraldSettings(
        amqp_url=url,
        events_exchange=f"herald.events.t{tid}",
        dead_letter_exchange=f"herald.dlx.t{tid}",
        retry_delays_ms=[100, 200],
    )
    declarations = Declarations()
    with declarations.recording():
        broker = Broker(settings, source="cleanup-test")
        await broker.connect()
        await broker.declare_queue(QueueSpec(f"observer.{tid}", ["x.*"], [100, 200]))
        await broker.close()
    assert {f"observer.{tid}", f"observer.{tid}.retry.1", f"observer.{tid}.dlq"} <= (
        declarations.queues
    )
    assert f"herald.events.t{tid}" in declarations.exchanges
    assert await _exists(url, f"observer.{tid}")
    queues, exchanges = implied_names(settings)
    assert f"herald.events.t{tid}.unrouted" in queues and f"herald.dlx.t{tid}" in exchanges

    # what make_settings does at the end of a test (in a thread: a loop runs here)
    _delete_amqp(url, tid, [settings], declarations)
    for name in (f"observer.{tid}", f"observer.{tid}.dlq", f"herald.events.t{tid}.unrouted"):
        assert not await _exists(url, name), name
    # deleting what is gone already is harmless
    assert await delete_async(url, [f"observer.{tid}"], [f"herald.events.t{tid}"]) == 2
