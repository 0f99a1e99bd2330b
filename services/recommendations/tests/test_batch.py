"""The batch job against the real servers: storage, opt-in, idempotent notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from herald_common.db import connect_db, disconnect_db, run_db
from herald_common.events import Activity, Envelope
from herald_common.replica import apply_user_event
from herald_recommendations.batch import run_batch
from herald_recommendations.consumers import ingest
from herald_recommendations.engine import RecommendationEngine
from herald_recommendations.models import BatchRun, RecommendationDoc
from herald_testing import eventually

pytestmark = pytest.mark.integration


def _seed(settings, registered) -> dict[str, str]:
    """Activity for three users (two registered, one mock) and their replica entries."""
    connect_db(settings)
    try:
        engine = RecommendationEngine(settings)
        engine.ensure_ready()
        catalog = sorted(engine.catalog().values(), key=lambda p: p.id)
        now = datetime.now(UTC) - timedelta(days=1)
        bought = {}
        for n, user in enumerate(("u-in", "u-out", "mock-u-00001")):
            items = catalog[n * 5 : n * 5 + 4]
            bought[user] = items[0].id
            activities = [
                Activity(user_id=user, kind="view", product_id=p.id, occurred_at=now) for p in items
            ] + [Activity(user_id=user, kind="purchase", product_id=items[0].id, occurred_at=now)]
            ingest(engine, [(f"seed-{user}", activities)])
        apply_user_event(registered("u-in", recommendations=True).payload)
        apply_user_event(registered("u-out", recommendations=False).payload)
        return bought
    finally:
        disconnect_db()


async def test_batch_stores_notifies_opted_in_once_and_is_rerunnable(
    rec_settings, broker_for, unique, registered
):
    settings = rec_settings()
    bought = await run_db(_seed, settings, registered)
    broker = await broker_for(settings)
    requests: list[Envelope] = []

    async def capture(event: Envelope) -> None:
        requests.append(event)

    await broker.consume(f"capture.{unique}", ["notification.requested"], capture)

    first = await run_batch(settings, mode="all")
    assert first.exit_code == 0, first.errors
    assert (first.users, first.stored, first.failed, first.notified) == (3, 3, 0, 1)
    await eventually(lambda: len(requests) == 1)

    again = await run_batch(settings, mode="all")  # same data → same batch
    assert again.exit_code == 0 and again.batch_id == first.batch_id
    assert again.notified == 0
    forced = await run_batch(settings, mode="all", batch_id=first.batch_id)
    assert forced.notified == 0

    # Only the opted-in user, once, with the key of the batch.
    keys = [e.payload.idempotency_key for e in requests]
    assert keys == [f"rec:u-in:{first.batch_id}"]
    request = requests[0].payload
    assert request.type == "recommendation" and request.source == "recommendations"
    assert set(request.content) == {"title", "body", "data"}
    assert len(request.content["data"]["product_ids"]) == settings.notify_top_n

    connect_db(settings)
    try:
        for user, product in bought.items():
            doc = RecommendationDoc.objects(id=user).first()
            assert doc.trigger == "batch" and doc.model_version == forced.model_version
            assert doc.items and product not in {i["product_id"] for i in doc.items}
            assert all(i["explanation"] for i in doc.items)
            assert not doc.outbox  # everything staged was published
        assert BatchRun.objects(status="ok").count() == 3

        # Nothing changed since the last run: an incremental run touches nobody…
        changed = await run_batch(settings, mode="changed")
        assert (changed.exit_code, changed.users, changed.skipped) == (0, 0, True)
        connect_db(settings)
        assert BatchRun.objects(status="ok").count() == 3  # not even a run recorded
        # …until a user has new activity.
        connect_db(settings)
        engine = RecommendationEngine(settings)
        later = Activity(
            user_id="u-out", kind="view", product_id="p-00100", occurred_at=datetime.now(UTC)
        )
        ingest(engine, [("later", [later])])
        changed = await run_batch(settings, mode="changed")
        assert (changed.exit_code, changed.users, changed.notified) == (0, 1, 0)
        assert not changed.skipped
        # …or a user's replica changes.
        assert (await run_batch(settings, mode="changed")).skipped
        connect_db(settings)
        assert apply_user_event(registered("u-new", recommendations=False).payload)
        changed = await run_batch(settings, mode="changed")
        assert (changed.exit_code, changed.users, changed.skipped) == (0, 1, False)
    finally:
        disconnect_db()


async def test_batch_exit_code_2_when_storage_is_unreachable(rec_settings):
    settings = rec_settings(mongodb_uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500")
    result = await run_batch(settings, mode="all")
    assert result.exit_code == 2
    assert result.errors
