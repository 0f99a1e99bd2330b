"""Every query the recommendations service sends is answered from an index.

The test fills every collection with a few thousand documents shaped like the real
ones (catalog, activity log, active users, neighbour rows of the current and an older
model, stored recommendations, batch runs, the user replica), refreshes the planner's
statistics, runs the real functions of every path — activity ingestion and the
incremental trigger, a user's recommendations read (stored, and computed on first ask
with item-neighbour loads), the refresh of one user after a purchase, known-active
checks, user deletion, a catalog reload, the outbox relay's poll, the batch job
(``--changed-since-last-run`` to the end, ``--all``'s per-page reads) — records what they
send and reads the server's plan of each distinct query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import mongoengine
import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db
from herald_common.events import Activity, UserDeleted
from herald_common.outbox import OutboxRelay
from herald_common.preferences import Preferences
from herald_recommendations import activity_store, batch, model_store, storage
from herald_recommendations.consumers import activity_doc, ingest
from herald_recommendations.engine import RecommendationEngine
from herald_recommendations.incremental import IncrementalRefresher
from herald_recommendations.models import (
    ActiveUser,
    ActivityDoc,
    BatchRun,
    ItemNeighbors,
    ModelState,
    RecommendationDoc,
)
from herald_testing.plans import recorder_for, refresh_statistics, unindexed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PRODUCTS = 3000
USERS = 3000
ACTIVITIES_PER_USER = 2
OLD = "v1@20260101T000000Z"
CURRENT = "v1@20260201T000000Z"

# Whole-collection reads ({} filters) allowed, by (command, collection), with the reason.
EXEMPT: dict[tuple[str, str], str] = {
    ("find", "activity_users"): "the batch job's model build (and --all) reads every user once",
}


def _pid(n: int) -> str:
    return f"p-{n % PRODUCTS + 1:05d}"


def _seed(now: datetime) -> None:
    activities, active = [], []
    for u in range(USERS):
        user_id = f"u-{u:05d}"
        updated = now - timedelta(days=u % 30, minutes=u)
        entries = []
        for n in range(ACTIVITIES_PER_USER):
            doc = activity_doc(
                Activity(
                    user_id=user_id,
                    kind="purchase" if n == 0 else "view",
                    product_id=_pid(u * 7 + n),
                    occurred_at=updated - timedelta(minutes=n),
                ),
                f"seed-{u}:{n}",
                updated,
            )
            activities.append(doc)
            entries.append(activity_store.activity_entry(doc))
        active.append(
            {
                "_id": user_id,
                "rev": 1,
                "recent": sorted(entries, key=lambda e: (e["t"], e["i"])),
                "last_activity_at": updated,
                "updated_at": updated,
                "updated_day": storage.utc_day(updated),
            }
        )
    ActivityDoc._get_collection().insert_many(activities)
    ActiveUser._get_collection().insert_many(active)
    storage.advance_watermark(max(a["updated_at"] for a in active))

    neighbors = ItemNeighbors._get_collection()
    for version, count in ((OLD, 1000), (CURRENT, PRODUCTS)):
        neighbors.insert_many(
            [
                {
                    "_id": model_store.neighbor_key(version, _pid(n)),
                    "model_version": version,
                    "neighbors": [{"p": _pid(n + k), "s": 1.0 / k} for k in range(1, 11)],
                }
                for n in range(count)
            ]
        )
    storage.state().update_one(
        {"_id": storage.MODEL_VERSIONS},
        {"$addToSet": {"versions": {"$each": [OLD, CURRENT]}}},
        upsert=True,
    )
    ModelState._get_collection().replace_one(
        {"_id": "current"},
        {
            "version": CURRENT,
            "built_at": now - timedelta(days=1),
            "popularity": {_pid(n): 1.0 / (n + 1) for n in range(200)},
            "stats": {"users": USERS},
        },
        upsert=True,
    )

    RecommendationDoc._get_collection().insert_many(
        [
            {
                "_id": f"u-{u:05d}",
                "items": [
                    {
                        "product_id": _pid(u + k),
                        "score": 1.0 / (k + 1),
                        "explanation": "popular in Laptops",
                        "reason": "popular",
                    }
                    for k in range(20)
                ],
                "model_version": CURRENT,
                "generated_at": now - timedelta(days=1),
                "trigger": "batch",
                "batch_id": "all-seed",
                "notified_items": [_pid(u + k) for k in range(5)],
                "outbox": [],
                "outbox_pending": False,
            }
            for u in range(USERS)
        ]
    )

    runs = []
    for r in range(2000):
        started = now - timedelta(days=2, hours=r)
        runs.append(
            {
                "_id": f"all-seed{r}@{started:%Y%m%dT%H%M%S.%fZ}",
                "batch_id": f"all-seed{r}",
                "mode": "changed" if r % 2 else "all",
                "status": "failed" if r % 10 == 3 else "ok",
                "started_at": started,
                "finished_at": started + timedelta(minutes=5),
                "counts": {"users": USERS},
            }
        )
    BatchRun._get_collection().insert_many(runs)
    storage.record_finished_run(runs[0]["_id"], runs[0]["started_at"])

    prefs = Preferences().model_dump(mode="json")
    replica._coll().insert_many(
        [
            {
                "_id": f"u-{u:05d}" if u < USERS // 2 else f"r-{u:05d}",  # half without activity
                "bucket": replica.bucket_of(f"u-{u:05d}" if u < USERS // 2 else f"r-{u:05d}"),
                "revision": 1,
                "deleted": False,
                "name": f"Shopper {u}",
                "email": f"shopper{u}@example.com",
                "preferences": {**prefs, "recommendations": u % 3 != 0},
                "updated_at": now - timedelta(days=u % 30),
            }
            for u in range(USERS)
        ]
    )


def test_every_query_of_the_recommendations_service_is_index_served(rec_settings) -> None:
    settings = rec_settings(catalog_products=PRODUCTS, catalog_categories=24, batch_page_size=500)
    # Before connecting: pymongo gives listeners to clients created later.
    recorder = recorder_for(settings.mongodb_db)
    db = connect_db(settings)
    try:
        engine = RecommendationEngine(settings)
        engine.ensure_ready()
        OutboxRelay(broker=None, documents=[RecommendationDoc]).ensure_indexes()  # type: ignore[arg-type]
        now = engine.clock()
        _seed(now)
        refresh_statistics(db)
        refresher = IncrementalRefresher(engine)

        with recorder.recording():
            # Activity ingestion (a new user and known ones) and the incremental trigger.
            activities = [
                Activity(user_id=user, kind=kind, product_id=_pid(n), occurred_at=now)
                for n, (user, kind) in enumerate(
                    [
                        ("u-00001", "purchase"),
                        ("u-00002", "view"),
                        ("u-00002", "view"),
                        ("u-00003", "view"),
                        ("new-user", "view"),
                    ]
                )
            ]
            done = ingest(engine, [("evt-1", activities), ("evt-2", activities[:2])])
            assert done.problems == {} and len(done.good) == len(activities) + 2
            # The decision from what the merge left, and from storage (read again).
            assert "u-00001" in refresher.triggered_users(done.good, done.merged)
            assert "u-00001" in refresher.triggered_users(done.good)
            # The refresh of one user after a purchase (what the debounced task runs).
            engine.refresh_user("u-00001", trigger="incremental", notify="incremental")
            # A user's recommendations: stored, and computed on the first ask.
            assert engine.view("u-00010", 10)["items"]
            assert engine.view("new-user", 10)["items"]
            assert model_store.load_neighbors(CURRENT, [_pid(1), _pid(2), _pid(3)])
            assert storage.known_active(["u-00001", "u-00002", "r-02000"]) == {
                "u-00001",
                "u-00002",
            }
            # A deleted user (the replica consumer, then the cleanup).
            deleted = UserDeleted(user_id="u-00020", revision=2)
            assert replica.apply_user_event(deleted)
            storage.forget_user("u-00020")
            # A catalog replaced elsewhere is reloaded.
            engine._catalog_version = None
            engine._catalog_checked = 0.0
            assert len(engine.catalog()) == PRODUCTS
            # The outbox relay's poll and the batch job's count of unpublished requests.
            coll = RecommendationDoc._get_collection()
            OutboxRelay(broker=None, documents=[RecommendationDoc])._pending(coll)  # type: ignore[arg-type]
            coll.count_documents({"outbox_pending": True})
            # The batch job, --changed-since-last-run, to the end.
            result = batch.compute(engine, mode="changed", notify=True, batch_id=None)
            assert result.failed == 0 and result.users > 0, result.errors
            assert storage.last_finished_run()["_id"] == result.run_id  # type: ignore[index]
            # --all reads the same way, page by page: its first pages.
            next(storage.iter_user_interactions(settings.batch_page_size))
            users = next(replica.iter_users(None, batch_size=settings.batch_page_size))
            storage.known_active([u["_id"] for u in users])

        assert ItemNeighbors._get_collection().find_one({"model_version": OLD}) is None
        exempt = [
            q for q in recorder.distinct_queries() if _exempt(q.command, q.collection, q.filter)
        ]
        queries = [q for q in recorder.distinct_queries() if q not in exempt]
        described = [q.describe() for q in queries]
        for collection in (
            "products",
            "activity_users",
            "item_neighbors",
            "recommendations",
            "batch_runs",
            "storage_state",
            "user_replica",
        ):
            assert any(f" {collection} " in d for d in described), described
        refresh_statistics(db)
        bad = unindexed(db, queries)
        assert bad == [], "\n".join(bad)
    finally:
        disconnect_db()


def _exempt(command: str, collection: str, filter_: dict[str, Any]) -> bool:
    return not filter_ and (command, collection) in EXEMPT


def test_a_database_of_the_older_layout_is_brought_up_to_date(rec_settings) -> None:
    """State documents and ``updated_day`` are derived once from existing data."""
    settings = rec_settings()
    connect_db(settings)
    try:
        engine = RecommendationEngine(settings)
        engine.ensure_ready()
        now = datetime.now(UTC).replace(microsecond=0)
        # As written before the state documents existed.
        storage.state().delete_many({"_id": storage.WATERMARK})
        storage.state().delete_many({"_id": storage.MODEL_VERSIONS})
        storage.state().delete_many({"_id": storage.LAST_RUN})
        mongoengine.get_db()["migrations"].delete_one({"_id": storage.BACKFILL})
        ActiveUser._get_collection().insert_many(
            [
                {"_id": f"u{n}", "rev": 1, "recent": [], "updated_at": now - timedelta(days=n)}
                for n in range(3)
            ]
        )
        ActiveUser._get_collection().create_index("updated_at")
        ItemNeighbors._get_collection().insert_many(
            [{"_id": f"{v}|p-00001", "model_version": v, "neighbors": []} for v in (OLD, CURRENT)]
        )
        BatchRun._get_collection().insert_many(
            [
                {"_id": f"r{n}", "batch_id": "b", "mode": "all", "status": s, "started_at": at}
                for n, (s, at) in enumerate(
                    [
                        ("ok", now - timedelta(days=2)),
                        ("partial", now - timedelta(days=1)),
                        ("failed", now),
                    ]
                )
            ]
        )

        storage.ensure_indexes()

        assert storage.activity_watermark() == now
        assert ActiveUser._get_collection().find_one({"_id": "u1"})["updated_day"] == (
            storage.utc_day(now - timedelta(days=1))
        )
        assert "updated_at_1" not in ActiveUser._get_collection().index_information()
        assert storage.last_finished_run()["_id"] == "r1"  # type: ignore[index]
        since = now - timedelta(days=1, seconds=1)
        assert sorted(u for u, _ in storage.iter_user_interactions(10, since)) == ["u0", "u1"]
        versions = storage.state().find_one({"_id": storage.MODEL_VERSIONS})["versions"]
        assert sorted(versions) == [OLD, CURRENT]
        # Runs again only without the marker.
        storage.state().delete_one({"_id": storage.WATERMARK})
        storage.ensure_indexes()
        assert storage.activity_watermark() is None
    finally:
        disconnect_db()
