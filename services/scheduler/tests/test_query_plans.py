"""Every query the scheduler sends on a request path, a consumer or a sweep is answered
from an index.

The test fills the replica, orders, transitions, interests and campaign records with
thousands of documents, refreshes the planner's statistics, runs the real functions
(a purchase placing an order, the order sweep, a user's orders, a campaign fanned out
bucket by bucket with interests and templates, its progress and batch records, a run
listing by campaign, the outbox relay's poll) while recording what they send, and
reads the server's plan of each distinct query.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db
from herald_common.events import Activity, CampaignAudience, CampaignFired, CampaignTemplate
from herald_common.outbox import OutboxRelay
from herald_scheduler.campaign_store import find_run, get_definition, progress, run_key
from herald_scheduler.campaigns import execute_run
from herald_scheduler.interests import get_interests, record_activity
from herald_scheduler.models import (
    CampaignBatch,
    CampaignRun,
    Order,
    OrderTransition,
    ensure_indexes,
)
from herald_scheduler.order_store import orders_of
from herald_scheduler.orders import place_orders_from_activity, seed_orders, sweep
from herald_testing.plans import recorder_for, refresh_statistics, unindexed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
USERS = 3000


def _activity(user: str, i: int, kind: str = "view") -> Activity:
    return Activity(
        user_id=user,
        kind=kind,
        product_id=f"p{i % 50}",
        occurred_at=NOW,
        category=f"cat{i % 7}",
        product_name=f"Product {i % 50}",
        price=10.0,
    )


def test_every_query_of_the_scheduler_is_index_served(
    scheduler_settings, seed_users, _cleanup_queues
) -> None:
    settings = scheduler_settings(fanout_batch_size=200)
    recorder = recorder_for(settings.mongodb_db)
    db = connect_db(settings)
    try:
        ensure_indexes()
        replica.ensure_indexes()
        OutboxRelay(broker=None, documents=[OrderTransition]).ensure_indexes()  # type: ignore[arg-type]
        ids = seed_users(USERS, preferences=lambda i: {"promotions": i % 5 != 0})
        record_activity(
            [
                (f"seed-{chunk}", [_activity(u, i) for i, u in enumerate(ids[chunk : chunk + 500])])
                for chunk in range(0, USERS, 500)
            ]
        )
        seed_orders(ids[:1500], per_user=2, seed=1, now=NOW - timedelta(days=3), settings=settings)
        # Steady state: most orders are delivered and their events relayed long ago, and
        # campaigns have run many times before.
        orders = Order._get_collection()
        done = [d["_id"] for d in orders.find({}, {"_id": 1})][:2700]
        orders.update_many({"_id": {"$in": done}}, {"$set": {"in_progress": False}})
        OrderTransition._get_collection().update_many(
            {}, {"$set": {"outbox_pending": False, "outbox": []}}
        )
        CampaignRun._get_collection().insert_many(
            [
                {
                    "_id": f"old{i}:r",
                    "run_id": "r",
                    "campaign": f"old{i}",
                    "type": "promotion",
                    "status": "succeeded",
                    "started_at": NOW - timedelta(minutes=i),
                }
                for i in range(3000)
            ]
        )
        CampaignBatch._get_collection().insert_many(
            [
                {
                    "_id": f"old{i // 3}:r:{i % 3:04d}:u",
                    "run": f"old{i // 3}:r",
                    "last_position": f"{i % 3:04d}:u",
                    "at": NOW,
                }
                for i in range(3000)
            ]
        )
        refresh_statistics(db)

        fired = CampaignFired(
            campaign="spring",
            run_id="r1",
            type="promotion",
            audience=CampaignAudience(categories=["cat1", "cat2"]),
            template=CampaignTemplate(title="{first_name}: {favorite_category}", body="{name}"),
            dry_run=True,
            fired_at=NOW,
        )
        picked = fired.model_copy(
            update={"run_id": "r2", "audience": CampaignAudience(user_ids=ids[:3])}
        )
        with recorder.recording():
            place_orders_from_activity(
                [
                    ("buy-1", [_activity(ids[7], 1, "purchase")]),
                    ("buy-2", [_activity(ids[8], 2, "purchase")]),
                ],
                NOW,
                settings,
            )
            sweep(NOW, settings, limit=50)
            orders_of(ids[7])
            get_interests(ids[:20])
            asyncio.run(execute_run(fired, owner="o", settings=settings, broker=None))
            asyncio.run(execute_run(picked, owner="o", settings=settings, broker=None))
            # A second delivery of a finished run: the unique insert collides and the
            # lease is not taken (the run is no longer running).
            asyncio.run(execute_run(fired, owner="o2", settings=settings, broker=None))
            progress(run_key("spring", "r1"), 5)
            find_run(run_key("spring", "r1"))
            get_definition("spring")
            OutboxRelay(broker=None, documents=[OrderTransition])._pending(  # type: ignore[arg-type]
                OrderTransition._get_collection()
            )

        queries = recorder.distinct_queries()
        assert len(queries) >= 10, [q.describe() for q in queries]
        bad = unindexed(db, queries)
        assert bad == [], "\n".join(bad)
    finally:
        disconnect_db()
