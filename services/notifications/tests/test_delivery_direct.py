"""The delivery functions called directly against the real database, for orders of
events the broker makes hard to force: collapse groups decided a batch at a time (a
campaign's fan-out, a burst of order updates) and deferred requests decided again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from herald_common import replica
from herald_common.db import connect_db, disconnect_db, named
from herald_common.events import NotificationRequested
from herald_common.preferences import Preferences
from herald_notifications import deferred, delivery, delivery_store
from herald_notifications.builders import key, ms, new_notification_doc
from herald_notifications.decisions import DeliveryPolicy
from herald_notifications.models import VERSIONS, DeliveryRecord, Notification, ensure_indexes

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
POLICY = DeliveryPolicy(quiet_hours_types=frozenset())


@pytest.fixture
def db(make_settings) -> Iterator[None]:
    settings = make_settings()
    connect_db(settings)
    try:
        ensure_indexes()
        replica.ensure_indexes()
        yield
    finally:
        disconnect_db()


def _users(*ids: str, **preferences: Any) -> None:
    prefs = Preferences(**preferences).model_dump(mode="json")
    replica._coll().insert_many(
        [
            {"_id": u, "bucket": replica.bucket_of(u), "revision": 1, "deleted": False,
             "preferences": prefs}
            for u in ids
        ]
    )  # fmt: skip


def _request(
    key: str, user_id: str, *, minutes: int = 0, group: str | None = "campaign:spring"
) -> Any:
    return NotificationRequested(
        user_id=user_id,
        type="promotion",
        content={"title": key, "body": "x"},
        source="test",
        idempotency_key=key,
        collapse_key=group,
        requested_at=NOW + timedelta(minutes=minutes),
    )


def _run(requests: list[NotificationRequested], **kw: Any) -> delivery.Outcome:
    return delivery.process_requests(requests, NOW, POLICY, source="test", **kw)


QUIET = DeliveryPolicy(quiet_hours_types=frozenset({"promotion"}))


def _visible(user_id: str) -> list[str]:
    docs = Notification.objects(user_id=user_id, replaced=False).only("idempotency_key")
    return sorted(d.idempotency_key for d in docs)


def _reason(key: str) -> str | None:
    record = DeliveryRecord.objects(idempotency_key=key).first()
    return record.reason if record else None


def test_a_second_firing_replaces_each_users_unread_one_and_names_it(db) -> None:
    users = [f"fan-{i}" for i in range(5)]
    _users(*users)
    first = _run([_request(f"spring-1:{u}", u) for u in users])
    assert len(first.created) == 5
    assert all(doc["replaces"] is None for doc in first.created)
    Notification.objects(user_id="fan-0").update(set__read=True)  # one user read it

    second = _run([_request(f"spring-2:{u}", u, minutes=60) for u in users])
    replaces = {doc["user_id"]: doc["replaces"] for doc in second.created}
    first_ids = {doc["user_id"]: str(doc["_id"]) for doc in first.created}
    assert replaces == {u: (None if u == "fan-0" else first_ids[u]) for u in users}
    assert _visible("fan-0") == ["spring-1:fan-0", "spring-2:fan-0"]  # read ones stay
    for u in users[1:]:
        assert _visible(u) == [f"spring-2:{u}"]
        hidden = Notification.objects(idempotency_key=f"spring-1:{u}").first()
        assert hidden.replaced and hidden.replaced_by == f"spring-2:{u}"


def test_in_one_batch_the_newest_of_a_group_wins_and_the_others_are_superseded(db) -> None:
    _users("burst")
    updates = [
        _request(f"order-9-{step}", "burst", minutes=m, group="order:9")
        for step, m in (("paid", 1), ("placed", 0), ("shipped", 2))
    ]
    outcome = _run(updates)
    assert [doc["idempotency_key"] for doc in outcome.created] == ["order-9-shipped"]
    assert _reason("order-9-placed") == _reason("order-9-paid") == "superseded"
    assert _visible("burst") == ["order-9-shipped"]

    # A late, older one arrives in a later batch: superseded by the stored version.
    _run([_request("order-9-late", "burst", minutes=1, group="order:9")])
    assert _reason("order-9-late") == "superseded"
    assert _visible("burst") == ["order-9-shipped"]


def _versions(user_id: str, group: str) -> list[str]:
    docs = named(VERSIONS).find({"group": key(user_id, group)}, {"idempotency_key": 1})
    return sorted(d["idempotency_key"] for d in docs)


def test_a_group_keeps_only_its_newest_versions_and_late_requests_still_lose(db) -> None:
    users = [f"often-{i}" for i in range(3)]
    _users(*users)
    for firing in range(1, 5):  # a campaign fired every hour
        _run([_request(f"hourly-{firing}:{u}", u, minutes=60 * firing) for u in users])
    for u in users:
        assert _versions(u, "campaign:spring") == [f"hourly-4:{u}"]
        assert _visible(u) == [f"hourly-4:{u}"]

    # An older request arriving late loses to the newest version, and prunes nothing.
    _run([_request("hourly-0:often-1", "often-1", minutes=0)])
    assert _reason("hourly-0:often-1") == "superseded"
    assert _versions("often-1", "campaign:spring") == ["hourly-4:often-1"]


def test_a_redelivered_batch_creates_nothing_and_settles_what_was_left(db) -> None:
    _users("again")
    _run([_request("g-1", "again", group="order:5")])
    # A crash between the insert and the settle of a newer request: its version and
    # notification are stored, the older one is still visible.
    newer = _request("g-2", "again", minutes=5, group="order:5")
    delivery_store.add_versions([delivery_store.version("again", "order:5", *_key(newer), NOW)])
    delivery_store.insert_notifications([new_notification_doc(newer, NOW, source="test")])
    assert _visible("again") == ["g-1", "g-2"]

    outcome = _run([newer], maybe_seen={"g-2"})
    assert outcome.created == [] and [d["idempotency_key"] for d in outcome.existing] == ["g-2"]
    assert _visible("again") == ["g-2"]


def _key(request: NotificationRequested) -> tuple[datetime, str]:
    return ms(request.requested_at), request.idempotency_key


def test_deciding_a_deferral_again_to_the_same_time_adds_no_history(db) -> None:
    # 23:30 in New York: quiet until 07:30 local, 11:30 UTC.
    night = datetime(2026, 3, 10, 3, 30, tzinfo=UTC)
    _users("nora", timezone="America/New_York", quiet_hours={"start": "22:00", "end": "07:30"})
    delivery.process_requests([_request("nora-promo", "nora", group=None)], night, QUIET,
                              source="test")  # fmt: skip
    # Two user changes that keep the quiet hours (registration, then another setting):
    for minutes in (0, 1):
        deferred.release_user("nora", night + timedelta(minutes=minutes), QUIET, source="test")
    record = DeliveryRecord.objects(idempotency_key="nora-promo").first()
    assert record.outcome == "deferred" and record.deliver_at == datetime(
        2026, 3, 10, 11, 30, tzinfo=UTC
    )
    assert [h["outcome"] for h in record.history] == ["defer"]

    # A change that moves the time is a new decision; the release is one too.
    replica._coll().update_one(
        {"_id": "nora"}, {"$set": {"preferences.quiet_hours.end": "08:00", "revision": 2}}
    )
    deferred.release_user("nora", night + timedelta(minutes=2), QUIET, source="test")
    released = deferred.release_due(datetime(2026, 3, 10, 12, 0, 1, tzinfo=UTC), QUIET,
                                    source="test")  # fmt: skip
    assert len(released.created) == 1
    record = DeliveryRecord.objects(idempotency_key="nora-promo").first()
    assert [(h["outcome"], h["deliver_at"]) for h in record.history] == [
        ("defer", datetime(2026, 3, 10, 11, 30, tzinfo=UTC)),
        ("defer", datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),
        ("deliver", None),
    ]
