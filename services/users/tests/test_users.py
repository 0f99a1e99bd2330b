"""Fetching users (self, other, admin), profile and partial preference updates, deletion."""

import pytest
from herald_users.models import User

pytestmark = pytest.mark.integration


async def test_fetch_self_other_and_admin(users) -> None:
    ann = await users.register("ann@example.com", name="Ann")
    bob = await users.register("bob@example.com", name="Bob")
    as_ann = users.bearer(ann["access_token"])

    me = await users.client.get(f"/v1/users/{ann['user']['id']}", headers=as_ann)
    assert me.status_code == 200 and me.json()["name"] == "Ann"
    other = await users.client.get(f"/v1/users/{bob['user']['id']}", headers=as_ann)
    assert other.status_code == 403 and other.json()["error"]["code"] == "FORBIDDEN"
    # Not knowing an id is no way around it (no existence oracle).
    assert (await users.client.get("/v1/users/nope", headers=as_ann)).status_code == 403
    listing = await users.client.get(f"/v1/users?ids={bob['user']['id']}", headers=as_ann)
    assert listing.status_code == 403

    as_admin = users.bearer(await users.admin_token())
    seen = await users.client.get(f"/v1/users/{bob['user']['id']}", headers=as_admin)
    assert seen.status_code == 200 and seen.json() == bob["user"]
    missing = await users.client.get("/v1/users/nope", headers=as_admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    ids = f"{bob['user']['id']},unknown, {ann['user']['id']},{bob['user']['id']}"
    many = await users.client.get("/v1/users", params={"ids": ids}, headers=as_admin)
    assert [u["name"] for u in many.json()] == ["Bob", "Ann"]
    too_many = ",".join(str(i) for i in range(501))
    r = await users.client.get("/v1/users", params={"ids": too_many}, headers=as_admin)
    assert r.status_code == 400 and r.json()["error"]["field"] == "ids"
    admin_me = await users.client.get("/v1/users/me", headers=as_admin)
    assert admin_me.json()["roles"] == ["user", "admin"]


async def test_update_profile(users) -> None:
    ann = await users.register("ann@example.com", name="Ann")
    auth = users.bearer(ann["access_token"])
    r = await users.client.patch("/v1/users/me", json={"name": "  Ann  Lee "}, headers=auth)
    assert r.status_code == 200 and r.json()["name"] == "Ann Lee"
    unchanged = await users.client.patch("/v1/users/me", json={}, headers=auth)
    assert unchanged.json()["name"] == "Ann Lee"
    for body, field in (
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"email": "new@example.com"}, "email"),
    ):
        bad = await users.client.patch("/v1/users/me", json=body, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"]["field"] == field, body


async def test_digest_preference_is_validated_and_kept(users) -> None:
    ann = await users.register("ann@example.com")
    auth = users.bearer(ann["access_token"])

    async def patch(body):
        return await users.client.patch("/v1/users/me/preferences", json=body, headers=auth)

    r = await patch({"digest": {"frequency": "daily", "at": "08:00", "types": ["promotion"]}})
    assert r.status_code == 200, r.text
    assert r.json()["preferences"]["digest"] == {
        "frequency": "daily",
        "at": "08:00",
        "types": ["promotion"],
    }
    for bad in (
        {"frequency": "hourly", "types": ["order_update"]},  # never held
        {"frequency": "hourly", "types": ["digest"]},
        {"frequency": "daily"},  # a daily digest needs its time
        {"frequency": "daily", "at": "8am"},
        {"frequency": "weekly"},
    ):
        r = await patch({"digest": bad})
        assert r.status_code == 400, (bad, r.text)
        error = r.json()["error"]
        assert error["code"] == "BAD_USER_INPUT" and error["field"].startswith("digest"), bad
    # The refused updates changed nothing; another field leaves the digest alone.
    r = await patch({"promotions": False})
    assert r.json()["preferences"]["digest"]["frequency"] == "daily"
    r = await patch({"digest": None})
    assert r.json()["preferences"]["digest"]["frequency"] == "off"


async def test_partial_preference_updates(users) -> None:
    ann = await users.register("ann@example.com")
    auth = users.bearer(ann["access_token"])

    async def patch(body):
        return await users.client.patch("/v1/users/me/preferences", json=body, headers=auth)

    r = await patch({"promotions": False})
    assert r.status_code == 200
    assert r.json()["preferences"] == {
        "promotions": False,
        "order_updates": True,
        "recommendations": True,
        "channels": ["in_app"],
        "quiet_hours": None,
        "timezone": "UTC",
        "max_promotions_per_day": None,
        "digest": {"frequency": "off", "at": None, "types": ["promotion", "recommendation"]},
    }
    r = await patch(
        {
            "quiet_hours": {"start": "22:00", "end": "07:30"},
            "timezone": "Europe/Paris",
            "channels": ["email"],
            "max_promotions_per_day": 2,
        }
    )
    prefs = r.json()["preferences"]
    assert prefs["promotions"] is False  # kept from the first update
    assert prefs["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    assert prefs["timezone"] == "Europe/Paris"
    assert prefs["channels"] == ["in_app", "email"]  # in-app is always on
    assert prefs["max_promotions_per_day"] == 2

    r = await patch({"quiet_hours": None, "max_promotions_per_day": None})
    prefs = r.json()["preferences"]
    assert prefs["quiet_hours"] is None and prefs["max_promotions_per_day"] is None
    assert prefs["timezone"] == "Europe/Paris"

    me = await users.client.get("/v1/users/me", headers=auth)
    assert me.json()["preferences"] == prefs


async def test_preference_validation_names_the_field(users) -> None:
    ann = await users.register("ann@example.com")
    auth = users.bearer(ann["access_token"])
    cases = [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end"),
        ({"channels": ["in_app", "fax"]}, "channels"),
        ({"channels": None}, "channels"),
        ({"max_promotions_per_day": -1}, "max_promotions_per_day"),
        ({"max_promotions_per_day": "many"}, "max_promotions_per_day"),
        ({"promotions": None}, "promotions"),
        ({"promotions": "sometimes"}, "promotions"),
        ({"colour": "blue"}, "colour"),
    ]
    for body, field in cases:
        r = await users.client.patch("/v1/users/me/preferences", json=body, headers=auth)
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "BAD_USER_INPUT" and error["field"] == field, (body, error)
    r = await users.client.patch(
        "/v1/users/me/preferences",
        content=b"[1,2",
        headers={**auth, "content-type": "application/json"},
    )
    assert r.status_code == 400
    # Nothing changed.
    me = await users.client.get("/v1/users/me", headers=auth)
    assert me.json()["preferences"] == ann["user"]["preferences"]


async def test_delete_account(users) -> None:
    ann = await users.register("ann@example.com", preferences={"timezone": "Asia/Tokyo"})
    second = (await users.login("ann@example.com")).json()
    auth = users.bearer(ann["access_token"])
    assert (await users.client.delete("/v1/users/me", headers=auth)).status_code == 204

    # Every session is over.
    for tokens in (ann, second):
        assert (
            await users.client.get("/v1/users/me", headers=users.bearer(tokens["access_token"]))
        ).status_code == 401
        r = await users.client.post(
            "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert r.status_code == 401
    assert (await users.login("ann@example.com")).status_code == 401

    # A tombstone without personal data or credentials remains.
    stored = User.objects.get(id=ann["user"]["id"])
    assert stored.deleted_at is not None and stored.email == f"deleted:{stored.id}"
    assert stored.name == "" and stored.preferences == {} and stored.password_hash is None
    assert stored.revision == 2

    # The address is free again, for a new account with a new id.
    again = await users.register("ann@example.com")
    assert again["user"]["id"] != ann["user"]["id"]
    as_admin = users.bearer(await users.admin_token())
    gone = await users.client.get(f"/v1/users/{ann['user']['id']}", headers=as_admin)
    assert gone.status_code == 404


async def test_concurrent_preference_updates_keep_revisions_in_step(users) -> None:
    import asyncio

    ann = await users.register("ann@example.com")
    auth = users.bearer(ann["access_token"])
    caps = list(range(1, 9))
    results = await asyncio.gather(
        *(
            users.client.patch(
                "/v1/users/me/preferences", json={"max_promotions_per_day": cap}, headers=auth
            )
            for cap in caps
        )
    )
    assert all(r.status_code == 200 for r in results)
    stored = User.objects.get(id=ann["user"]["id"])
    # Every update was a distinct revision (none lost, none doubled).
    assert stored.revision == 1 + len(caps)
    assert stored.preferences["max_promotions_per_day"] in caps
