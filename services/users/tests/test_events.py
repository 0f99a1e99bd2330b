"""Every change publishes its event through the outbox, with the right payload."""

import pytest
from herald_testing import eventually
from herald_users.models import User

pytestmark = pytest.mark.integration


async def test_user_lifecycle_events(user_events, users) -> None:
    ann = await users.register(
        "Ann@Example.com", name="Ann", preferences={"recommendations": False}
    )
    user_id = ann["user"]["id"]
    auth = users.bearer(ann["access_token"])
    [registered] = await user_events.wait_for(user_id, 1)
    assert registered.type == "user.registered" and registered.source == "users"
    assert registered.payload.model_dump(mode="json") == {
        "user_id": user_id,
        "name": "Ann",
        "email": "ann@example.com",
        "roles": ["user"],
        "preferences": ann["user"]["preferences"],
        "revision": 1,
        "created_at": registered.payload.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert registered.payload.created_at.isoformat().startswith(ann["user"]["created_at"][:19])
    assert "password" not in registered.model_dump_json()

    await users.client.patch(
        "/v1/users/me/preferences", json={"timezone": "America/New_York"}, headers=auth
    )
    # No change, no event (and no new revision).
    await users.client.patch(
        "/v1/users/me/preferences", json={"timezone": "America/New_York"}, headers=auth
    )
    await users.client.patch("/v1/users/me", json={"name": "Ann Lee"}, headers=auth)
    await users.client.patch("/v1/users/me", json={"name": "Ann Lee"}, headers=auth)
    await users.client.delete("/v1/users/me", headers=auth)

    events = await user_events.wait_for(user_id, 4)
    assert [e.type for e in events] == [
        "user.registered",
        "user.preferences_updated",
        "user.preferences_updated",
        "user.deleted",
    ]
    assert [e.payload.revision for e in events] == [1, 2, 3, 4]
    prefs_changed, renamed, deleted = events[1].payload, events[2].payload, events[3].payload
    assert prefs_changed.preferences.timezone == "America/New_York"
    assert prefs_changed.preferences.recommendations is False  # full snapshot, not a diff
    assert prefs_changed.name == "Ann" and prefs_changed.email == "ann@example.com"
    assert renamed.name == "Ann Lee" and renamed.preferences == prefs_changed.preferences
    assert deleted.model_dump() == {"user_id": user_id, "revision": 4}
    assert len({str(e.id) for e in events}) == 4

    # Everything staged was published and cleared; the tombstone keeps the revision.
    def cleared() -> bool:
        stored = User.objects.get(id=user_id)
        return not stored.outbox and not stored.outbox_pending and stored.revision == 4

    await eventually(cleared)


async def test_admin_bootstrap_is_idempotent(user_events, start_users, users_settings) -> None:
    settings = users_settings()
    first = await start_users(settings)
    [admin] = User.objects(email=first.admin_email)
    [registered] = await user_events.wait_for(admin.id, 1)
    assert registered.payload.roles == ["user", "admin"]

    # Restarting with a new password updates the account; no second account or event.
    changed = settings.model_copy(
        update={"admin_password": type(settings.admin_password)("new-Admin-pass-2")}
    )
    again = await start_users(changed)
    assert User.objects(email=first.admin_email).count() == 1
    assert (await again.login(first.admin_email, "new-Admin-pass-2")).status_code == 200
    assert (await again.login(first.admin_email, first.admin_password)).status_code == 401
    assert User.objects.get(id=admin.id).revision == 1
    assert len(user_events.of(admin.id)) == 1
