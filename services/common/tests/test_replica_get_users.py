"""``replica.get_users``: one query for many users, tombstones on request."""

from datetime import UTC, datetime

import pytest
from herald_common.db import connect_db, disconnect_db
from herald_common.events import UserDeleted, UserRegistered
from herald_common.preferences import Preferences
from herald_common.replica import apply_user_event, get_users

pytestmark = pytest.mark.integration


def test_get_users_tells_deleted_from_unknown(make_settings):
    connect_db(make_settings())
    try:
        for uid in ("a", "b"):
            apply_user_event(
                UserRegistered(
                    user_id=uid,
                    name=uid,
                    email=f"{uid}@example.com",
                    preferences=Preferences(promotions=uid == "a"),
                    revision=1,
                    created_at=datetime.now(UTC),
                )
            )
        apply_user_event(UserDeleted(user_id="b", revision=2))

        live = get_users(["a", "b", "never"])
        assert set(live) == {"a"}
        assert live["a"]["preferences"]["promotions"] is True
        everyone = get_users(["a", "b", "never", "a"], include_deleted=True)
        assert set(everyone) == {"a", "b"}
        assert everyone["b"]["deleted"] is True
        assert get_users([]) == {}
    finally:
        disconnect_db()
