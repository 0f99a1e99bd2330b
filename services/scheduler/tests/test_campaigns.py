"""Campaign fan-out against the real servers: audience, idempotency, dry run, crash
recovery and bounded memory."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime

import pytest
from herald_common import replica
from herald_common.db import run_db
from herald_common.events import Activity, CampaignAudience, CampaignFired, CampaignTemplate
from herald_scheduler.campaigns import execute_run, idempotency_key
from herald_scheduler.interests import record_activity
from herald_scheduler.models import CampaignRun
from herald_scheduler.templates import TemplateError

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TEMPLATE = CampaignTemplate(
    title="{first_name}, deals in {favorite_category}",
    body="Hi {name}, {product_name} is waiting.",
    data={"cta": "Shop {favorite_category}"},
)


def _fired(run_id: str = "r1", *, dry_run: bool = False, **audience) -> CampaignFired:
    return CampaignFired(
        campaign="spring",
        run_id=run_id,
        type="promotion",
        audience=CampaignAudience(**audience),
        template=TEMPLATE,
        dry_run=dry_run,
        fired_at=NOW,
    )


def _position(user_id: str) -> str:
    return replica.position({"_id": user_id, "bucket": replica.bucket_of(user_id)})


def _view(user: str, category: str, product: str, name: str) -> Activity:
    return Activity(
        user_id=user,
        kind="view",
        product_id=product,
        occurred_at=NOW,
        category=category,
        product_name=name,
    )


@pytest.fixture
def population(db, seed_users):
    """Ten users: u…3 and u…7 opted out of promotions; u0-u4 like books, u5-u6 garden."""
    ids = seed_users(
        10,
        preferences=lambda i: {"promotions": i not in (3, 7)},
        name=lambda i: f"Ada{i} Lovelace",
    )
    record_activity(
        [
            ("e1", [_view(ids[i], "books", f"b{i}", f"Book {i}") for i in range(5)]),
            ("e2", [_view(ids[i], "garden", "g1", "Rake") for i in (5, 6)]),
        ]
    )
    return ids


async def test_audience_follows_preferences_and_segment(db, population, broker_for, make_sink):
    ids = population
    broker = await broker_for(db)
    sink = await make_sink(broker, ["notification.requested"])

    everyone = await execute_run(_fired("all"), owner="o1", settings=db, broker=broker)
    books = await execute_run(
        _fired("books", categories=["Books"]), owner="o2", settings=db, broker=broker
    )
    picked = await execute_run(
        _fired(
            "picked", categories=["books", "garden"], user_ids=[ids[0], ids[3], ids[6], "ghost"]
        ),
        owner="o3",
        settings=db,
        broker=broker,
    )
    await sink.drain()

    opted_in = [u for i, u in enumerate(ids) if i not in (3, 7)]
    assert (everyone.audience_size, everyone.sent, everyone.suppressed) == (8, 8, 2)
    assert everyone.suppressed_reasons == {"opted_out": 2, "not_in_segment": 0}
    assert (books.audience_size, books.suppressed_reasons) == (
        4,
        {"opted_out": 2, "not_in_segment": 4},
    )
    assert picked.audience_size == 2 and picked.suppressed_reasons == {
        "opted_out": 1,
        "not_in_segment": 0,
    }
    by_run: dict[str, set[str]] = {}
    for r in sink.requests:
        by_run.setdefault(r.idempotency_key.split(":")[2], set()).add(r.user_id)
    assert by_run == {
        "all": set(opted_in),
        "books": {ids[0], ids[1], ids[2], ids[4]},
        "picked": {ids[0], ids[6]},
    }
    first = next(r for r in sink.requests if r.user_id == ids[0])
    assert first.type == "promotion" and first.collapse_key == "campaign:spring"
    assert first.idempotency_key == idempotency_key("spring", "all", ids[0])
    assert first.content == {
        "title": "Ada0, deals in books",
        "body": "Hi Ada0 Lovelace, Book 0 is waiting.",
        "data": {"campaign": "spring", "cta": "Shop books"},
    }
    no_activity = next(r for r in sink.requests if r.user_id == ids[8])
    assert no_activity.content["title"] == "Ada8, deals in our catalog"


async def test_refiring_the_same_run_sends_nothing_twice(db, population, broker_for, make_sink):
    broker = await broker_for(db)
    sink = await make_sink(broker, ["notification.requested"])
    first = await execute_run(_fired("r1"), owner="evt-a", settings=db, broker=broker)
    # The same run fired again (a second pod, a redelivery, a retried CronJob).
    again = await execute_run(_fired("r1"), owner="evt-b", settings=db, broker=broker)
    redelivered = await execute_run(_fired("r1"), owner="evt-a", settings=db, broker=broker)
    await sink.drain()
    assert first.status == again.status == redelivered.status == "succeeded"
    assert again.sent == first.sent == 8
    keys = [r.idempotency_key for r in sink.requests]
    assert len(keys) == 8 == len(set(keys))


async def test_dry_run_sends_nothing_and_keeps_samples(db, seed_users, broker_for, make_sink):
    ids = seed_users(25, preferences=lambda i: {"promotions": i % 5 != 0})
    broker = await broker_for(db)
    sink = await make_sink(broker, ["notification.requested"])
    run = await execute_run(_fired("dry", dry_run=True), owner="o", settings=db, broker=broker)
    await sink.drain()
    assert sink.requests == []
    assert run.dry_run and run.status == "succeeded"
    assert (run.audience_size, run.sent, run.suppressed) == (20, 0, 5)
    assert len(run.samples) == 10
    # Samples come in audience order: bucket by bucket (replica.position).
    opted_in = sorted((u for i, u in enumerate(ids) if i % 5), key=_position)
    first = int(opted_in[0][1:])
    assert run.samples[0]["content"]["body"] == f"Hi User {first}, our latest picks is waiting."


async def test_a_crash_mid_fan_out_loses_nothing(db, seed_users, broker_for, make_sink):
    ids = seed_users(250)  # three batches of 100
    broker = await broker_for(db)
    sink = await make_sink(broker, ["notification.requested"])

    class Crashing:
        """Publishes 130 messages, then the process "dies"."""

        def __init__(self) -> None:
            self.left = 130

        async def publish_many(self, events) -> None:
            for event in events:
                if self.left == 0:
                    raise ConnectionError("broker connection lost")
                self.left -= 1
                await broker.publish(event)

    with pytest.raises(ConnectionError):
        await execute_run(_fired("crash"), owner="evt-1", settings=db, broker=Crashing())
    stuck = await run_db(CampaignRun.objects.get, id="spring:crash")
    in_order = sorted(ids, key=_position)
    assert stuck.status == "running" and stuck.sent == 100
    assert stuck.cursor == _position(in_order[99])

    # The same event is redelivered to a fresh process: it resumes after batch one.
    run = await execute_run(_fired("crash"), owner="evt-1", settings=db, broker=broker)
    await sink.drain()
    assert run.status == "succeeded" and run.sent == 250 and run.audience_size == 250
    keys = [r.idempotency_key for r in sink.requests]
    assert len(set(keys)) == 250  # everyone got it...
    assert len(keys) == 280  # ...the 30 of the interrupted batch twice, with the same key


async def test_a_template_that_cannot_render_fails_the_run(db, population, broker_for):
    broker = await broker_for(db)
    bad = _fired("bad").model_copy(
        update={"template": CampaignTemplate(title="{coupon}", body="b")}
    )
    with pytest.raises(TemplateError, match="unknown variable"):
        await execute_run(bad, owner="o", settings=db, broker=broker)
    run = await run_db(CampaignRun.objects.get, id="spring:bad")
    assert run.status == "failed" and "coupon" in run.error and run.sent == 0


@pytest.mark.slow
async def test_fan_out_memory_stays_bounded_as_the_audience_grows(
    scheduler_settings, seed_users, broker_for, infra, unique
):
    """Peak memory of a fan-out depends on the batch size, not on the audience: 4,000
    users need about what 400 users need (an unbounded fan-out would need ~10x)."""
    from herald_common import replica
    from herald_common.db import connect_db, disconnect_db
    from herald_common.messaging import QueueSpec
    from herald_scheduler.models import ensure_indexes

    settings = scheduler_settings(fanout_batch_size=100, fanout_publish_concurrency=100)
    connect_db(settings)
    ensure_indexes()
    replica.ensure_indexes()
    broker = await broker_for(settings)
    # A queue that holds the requests without a consumer in this process.
    bulk = f"sink.t{unique}.0"
    await broker.declare_queue(QueueSpec(bulk, ["notification.requested"], retry_delays_ms=[]))
    try:
        seed_users(400, prefix="a")

        async def measured(run_id: str) -> tuple[int, CampaignRun]:
            gc.collect()
            tracemalloc.start()
            try:
                run = await execute_run(
                    _fired(run_id), owner=run_id, settings=settings, broker=broker
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            return peak, run

        await execute_run(
            _fired("warm-up", user_ids=["a000001"]), owner="w", settings=settings, broker=broker
        )
        peak_small, run_small = await measured("small")
        seed_users(3_600, prefix="b")
        peak_large, run_large = await measured("large")
        assert run_small.sent == 400 and run_large.sent == 4_000
        assert await broker.queue_depth(bulk) == 4_401
        print(f"peak memory: 400 users {peak_small / 1e6:.1f} MB, 4,000 {peak_large / 1e6:.1f} MB")
        assert peak_large < 1.5 * peak_small, (peak_small, peak_large)
    finally:
        disconnect_db()
