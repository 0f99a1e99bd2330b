"""The user replica converges whatever order and multiplicity events arrive in."""

import random
from datetime import UTC, datetime

import pytest
from herald_common.db import connect_db, disconnect_db
from herald_common.events import UserDeleted, UserPreferencesUpdated, UserRegistered
from herald_common.preferences import Preferences
from herald_common.replica import apply_user_event, get_user, get_users

pytestmark = pytest.mark.integration
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _history(uid: str) -> list:
    events: list = [
        UserRegistered(
            user_id=uid,
            name="Ann",
            email="ann@example.com",
            roles=["user"],
            preferences=Preferences(),
            revision=1,
            created_at=CREATED,
        )
    ]
    for rev in range(2, 6):
        events.append(
            UserPreferencesUpdated(
                user_id=uid,
                name=f"Ann {rev}",
                email="ann@example.com",
                preferences=Preferences(max_promotions_per_day=rev),
                revision=rev,
            )
        )
    return events


@pytest.fixture
def db(make_settings):
    connect_db(make_settings())
    yield
    disconnect_db()


def test_late_registration_still_fills_in_creation_time_and_roles(db) -> None:
    registered, *updates = _history("late")
    assert apply_user_event(updates[-1])
    assert apply_user_event(registered) is False  # stale for the profile...
    user = get_user("late")
    assert user["name"] == "Ann 5" and user["revision"] == 5
    assert user["created_at"] == CREATED and user["roles"] == ["user"]  # ...but not lost


def test_shuffled_duplicated_events_converge_to_the_newest(db) -> None:
    rng = random.Random(7)
    events = []
    for uid in ("u1", "u2", "u3"):
        events += _history(uid) * 2
    events.append(UserDeleted(user_id="u3", revision=6))
    rng.shuffle(events)
    for event in events:
        apply_user_event(event)
    users = get_users(["u1", "u2", "u3"], include_deleted=True)
    for uid in ("u1", "u2"):
        assert users[uid]["revision"] == 5
        assert users[uid]["preferences"]["max_promotions_per_day"] == 5
    assert users["u3"]["deleted"] is True  # older events never revive a deleted user
