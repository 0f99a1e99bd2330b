"""Every query the notifications service sends is answered from an index.

The test fills the service's collections with a few thousand documents shaped like the
real ones, refreshes the planner's statistics, runs the real storage functions of every
path (inbox page, unread count, single notification, mark read, mark all read, the
request pipeline with collapse keys, caps and suppressions, redelivery lookups, deferred
releases, the deliveries log, the outbox relay's poll, user deletion, the retention
sweep), records what they send, and reads the server's plan of each distinct query.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from herald_common import replica
from herald_common.auth import Principal
from herald_common.db import connect_db, disconnect_db, named
from herald_common.events import NotificationRequested
from herald_common.outbox import OutboxRelay
from herald_common.preferences import Preferences
from herald_common.replica_cache import UserCache
from herald_notifications import (
    builders,
    deferred,
    delivery,
    delivery_log,
    delivery_store,
    digest_sweep,
    inbox,
    inbox_store,
    retention,
)
from herald_notifications.decisions import Decision, DeliveryPolicy
from herald_notifications.email import state as email_state
from herald_notifications.models import (
    PROMOTION_DAYS,
    VERSIONS,
    DeliveryRecord,
    Notification,
    ensure_indexes,
)
from herald_testing.plans import recorder_for, refresh_statistics, unindexed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
USERS = 400
PER_USER = 10


def _request(key: str, user_id: str, type_: str, **kw: Any) -> NotificationRequested:
    return NotificationRequested(
        user_id=user_id,
        type=type_,
        content={"title": key, "body": "x"},
        source="test",
        idempotency_key=key,
        requested_at=kw.pop("requested_at", NOW),
        **kw,
    )


def _seed(now: datetime) -> None:
    prefs = Preferences().model_dump(mode="json")
    replica._coll().insert_many(
        [
            {
                "_id": f"u{i:04d}",
                "bucket": replica.bucket_of(f"u{i:04d}"),
                "revision": 1,
                "deleted": False,
                "preferences": {**prefs, "max_promotions_per_day": 3},
            }
            for i in range(USERS)
        ]
    )
    docs = []
    for i in range(USERS):
        for j in range(PER_USER):
            req = _request(
                f"seed-{i}-{j}", f"u{i:04d}", "order_update", collapse_key=f"o{i}-{j % 3}"
            )
            doc = builders.build_notification(req, now - timedelta(hours=j), source="test")
            raw = doc.to_mongo().to_dict()
            raw["read"] = j % 2 == 0
            docs.append(raw)
    Notification._get_collection().insert_many(docs)
    named(VERSIONS).insert_many(
        [
            {
                "_id": builders.key(d["user_id"], d["collapse_key"], d["idempotency_key"]),
                "group": builders.key(d["user_id"], d["collapse_key"]),
                "user_id": d["user_id"],
                "collapse_key": d["collapse_key"],
                "requested_at": d["requested_at"],
                "idempotency_key": d["idempotency_key"],
                "created_at": d["sent_at"],
                "day": d["day"],
            }
            for d in docs
        ]
    )
    named(PROMOTION_DAYS).insert_many(
        [
            {"_id": f"u{i:04d}|{day}", "user_id": f"u{i:04d}", "day": f"2026-02-{day:02d}", "n": 1}
            for i in range(USERS)
            for day in range(1, 11)
        ]
    )
    records = [
        builders.new_record(
            _request(f"rec-{i}", f"u{i % USERS:04d}", "promotion"),
            Decision.suppress("opted_out")
            if i % 20
            else Decision.defer("quiet_hours", now + timedelta(hours=1)),
            now - timedelta(minutes=i),
        )
        for i in range(USERS * 5)
    ]
    DeliveryRecord._get_collection().insert_many(records)


def _seed_emails(now: datetime) -> None:
    email_state.emails().insert_many(
        [
            {
                "_id": f"n-{i}",
                "user_id": f"u{i % USERS:04d}",
                "type": "order_update",
                "to": f"u{i % USERS:04d}@example.com",
                "state": "sent",
                "attempts": 1,
                "queued_at": now - timedelta(days=i % 100),
                "day": (now - timedelta(days=i % 100)).date().isoformat(),
            }
            for i in range(USERS * 5)
        ]
    )


def test_every_query_of_the_notifications_service_is_index_served(make_settings) -> None:
    settings = make_settings()
    recorder = recorder_for(settings.mongodb_db)
    db = connect_db(settings)
    try:
        ensure_indexes()
        replica.ensure_indexes()
        OutboxRelay(broker=None, documents=[Notification]).ensure_indexes()  # type: ignore[arg-type]
        _seed(NOW)
        email_state.ensure_indexes()
        _seed_emails(NOW)
        refresh_statistics(db)
        policy = DeliveryPolicy(quiet_hours_types=frozenset({"promotion", "recommendation"}))
        user = Principal(user_id="u0007")
        digest_prefs = Preferences(
            max_promotions_per_day=3,
            digest={"frequency": "hourly"},  # type: ignore[arg-type]
        ).model_dump(mode="json")
        replica._coll().insert_one(
            {
                "_id": "u-digest",
                "bucket": replica.bucket_of("u-digest"),
                "revision": 1,
                "deleted": False,
                "preferences": digest_prefs,
            }
        )

        with recorder.recording():
            page = inbox.list_notifications("u0007", first=3)
            after = page.to_api()["page_info"]["end_cursor"]
            inbox.list_notifications("u0007", first=3, after=after, unread_only=True)
            inbox.list_notifications("u0007", type_="order_update")
            inbox.unread_count("u0007")
            first = page.items[0]["_id"]
            inbox.get_notification(first, user)
            inbox_store.mark_read(first, user, NOW, source="test")
            inbox_store.mark_all_read("u0008", NOW, source="test")
            # The inbox's other shapes: archive list, unseen badge, bulk and single changes,
            # snooze and its wake-up sweep.
            inbox.unseen_count("u0007")
            inbox.list_notifications("u0007", archived=True)
            ids = [d["_id"] for d in page.items]
            inbox_store.mark_read_many("u0007", [*ids, "unknown"], NOW, source="test")
            inbox_store.mark_seen("u0007", ids[:2], NOW, source="test")
            inbox_store.mark_seen("u0015", None, NOW, source="test")
            inbox_store.archive(ids[1], user, NOW, source="test", archived=True)
            inbox_store.archive(ids[1], user, NOW, source="test", archived=False)
            inbox_store.archive_all_read("u0016", NOW, source="test")
            until = NOW + timedelta(hours=3)
            inbox_store.snooze(ids[2], user, until, NOW, source="test")
            inbox_store.delete(ids[0], user, NOW, source="test")
            inbox_store.wake_snoozed(NOW + timedelta(minutes=5), source="test")
            inbox_store.wake_snoozed(until + timedelta(hours=2), source="test")
            delivery_store.list_records("u0009")
            # The delivery log (keyset pages) and the email channel's state.
            log = delivery_log.page("u0009", first=2)
            delivery_log.page("u0009", first=2, after=log["page_info"]["end_cursor"])
            email_state.queue(
                "n-new", user_id="u0009", type_="promotion", to="x@example.com", now=NOW, day="d"
            )
            email_state.attempted("n-new", "sent", NOW)
            email_state.get("n-3")
            email_state.purge(NOW.date())
            requests = [
                _request("new-promo", "u0010", "promotion"),
                # newer than the group's stored versions: it wins and prunes them
                _request(
                    "new-order",
                    "u0011",
                    "order_update",
                    collapse_key="o11-1",
                    requested_at=NOW + timedelta(minutes=1),
                ),
                _request("new-rec", "u0012", "recommendation"),
                _request("unknown", "nobody", "promotion"),
            ]
            delivery.process_requests(requests, NOW, policy, source="test")
            delivery.process_requests(
                requests,
                NOW,
                policy,
                source="test",
                maybe_seen={r.idempotency_key for r in requests},
            )
            # Digests: holding (and a redelivery of) a request, then the slot's sweep.
            held = [
                _request("held-promo", "u-digest", "promotion"),
                _request("held-rec", "u-digest", "recommendation"),
            ]
            delivery.process_requests(held, NOW, policy, source="test")
            delivery.process_requests(
                held[:1], NOW, policy, source="test", maybe_seen={"held-promo"}
            )
            assert digest_sweep.send_due(NOW + timedelta(hours=2), source="test").created
            # through the user cache: a batch missing a bucket reads it whole
            cache = UserCache(bucket_misses=1)
            cache.subscribed()
            delivery.process_requests(
                [_request("cached-promo", "u0017", "promotion")],
                NOW,
                policy,
                source="test",
                get_users=cache.get_many,
            )
            assert cache.bucket_reads == 1
            deferred.release_due(NOW + timedelta(hours=2), policy, source="test", limit=5)
            deferred.release_user("u0013", NOW, policy, source="test")
            OutboxRelay(broker=None, documents=[Notification])._pending(  # type: ignore[arg-type]
                Notification._get_collection()
            )
            delivery_store.forget_user("u0014")
            # Only the days before NOW age out: the plans below are read with the seeded
            # data still there (a vacuumed, emptied table is read whole by any planner).
            retention.purge(NOW + timedelta(days=90), 90)

        queries = recorder.distinct_queries()
        assert len(queries) >= 15, [q.describe() for q in queries]
        bad = unindexed(db, queries)
        assert bad == [], "\n".join(bad)
    finally:
        disconnect_db()
