"""Every query the users service sends is answered from an index.

The users service runs for real (HTTP API, outbox relay, expiry sweep) on a database
filled with a few thousand documents of each collection, shaped like the real ones.
With the planner's statistics refreshed, the test drives every path — registration,
login by email, reads by id and of several users, profile and preference changes,
refresh-token claim and rotation, reuse detection revoking a session, logout, account
deletion revoking every session, the admin bootstrap, the expiry sweep, the outbox
relay's poll — records what the service sends and reads the server's plan of each
distinct query.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import mongoengine
import pytest
from herald_common.db import run_db
from herald_common.preferences import Preferences
from herald_testing import eventually
from herald_testing.plans import recorder_for, refresh_statistics, unindexed
from herald_users import models, store
from herald_users.models import (
    EXPIRY_DAYS,
    RefreshToken,
    RefreshTokenUse,
    RevokedSession,
    User,
    state,
    utc_day,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 3000
TOKENS = 4000
# No whole-collection read is acceptable in the users service: nothing is exempt.
EXEMPT: dict[tuple[str, str], str] = {}


def _seed(now: datetime) -> None:
    prefs = Preferences().model_dump(mode="json")
    users = []
    for i in range(USERS):
        user = User(
            id=f"seed-{i:05d}",
            name=f"Shopper {i}",
            email=f"shopper{i}@example.com",
            password_hash="$argon2id$v=19$m=1024,t=1,p=1$c2VlZA$c2VlZA",
            roles=["user"],
            preferences=prefs,
            revision=1 + i % 4,
            created_at=now - timedelta(days=i % 90),
            updated_at=now - timedelta(days=i % 30),
        )
        if i % 50 == 0:  # tombstones
            user.email, user.name, user.deleted_at = f"deleted:{user.id}", "", now
        users.append(user.to_mongo().to_dict())
    User._get_collection().insert_many(users)

    tokens, uses, revoked, days = [], [], [], set()
    for i in range(TOKENS):
        issued = now - timedelta(days=i % 40, minutes=i)
        token = RefreshToken(
            jti=f"seed-jti-{i:05d}",
            user_id=f"seed-{i % USERS:05d}",
            family=f"seed-family-{i // 2:05d}",  # two tokens per session: one rotation
            access_jti=f"seed-access-{i:05d}",
            access_expires_at=issued + timedelta(minutes=15),
            issued_at=issued,
            expires_at=issued + timedelta(days=30),
        )
        token.clean()
        days.add(token.expires_day)
        tokens.append(token.to_mongo().to_dict())
        if i % 2 == 0:
            use = RefreshTokenUse(jti=token.jti, used_at=issued, expires_at=token.expires_at)
            use.clean()
            uses.append(use.to_mongo().to_dict())
        if i % 8 == 0:
            session = RevokedSession(
                family=token.family,
                user_id=token.user_id,
                reason="logout",
                revoked_at=issued,
                expires_at=issued + timedelta(days=30),
            )
            session.clean()
            days.add(session.expires_day)
            revoked.append(session.to_mongo().to_dict())
    RefreshToken._get_collection().insert_many(tokens)
    RefreshTokenUse._get_collection().insert_many(uses)
    RevokedSession._get_collection().insert_many(revoked)
    state().update_one(
        {"_id": EXPIRY_DAYS}, {"$addToSet": {"days": {"$each": sorted(days)}}}, upsert=True
    )


async def test_every_query_of_the_users_service_is_index_served(
    start_users, users_settings
) -> None:
    settings = users_settings()
    # Before the service connects: pymongo gives listeners to clients created later.
    recorder = recorder_for(settings.mongodb_db)
    users = await start_users(settings)
    domain = users.app.state.domain
    runtime = users.app.state.runtime
    db = mongoengine.get_db()
    now = users.clock()
    await run_db(_seed, now)
    await run_db(refresh_statistics, db)

    with recorder.recording():
        ann = await users.register("ann@example.com", name="Ann")
        bob = await users.register("bob@example.com", name="Bob")
        as_ann = users.bearer(ann["access_token"])
        login = await users.login("ann@example.com")
        assert login.status_code == 200, login.text
        assert (await users.client.get("/v1/users/me", headers=as_ann)).status_code == 200

        as_admin = users.bearer(await users.admin_token())
        one = await users.client.get(f"/v1/users/{bob['user']['id']}", headers=as_admin)
        assert one.status_code == 200
        ids = ",".join([ann["user"]["id"], "seed-00007", "seed-00050", "unknown", "seed-02999"])
        many = await users.client.get("/v1/users", params={"ids": ids}, headers=as_admin)
        assert [u["id"] for u in many.json()] == [ann["user"]["id"], "seed-00007", "seed-02999"]

        patched = await users.client.patch("/v1/users/me", json={"name": "Ann L"}, headers=as_ann)
        assert patched.status_code == 200
        prefs = await users.client.patch(
            "/v1/users/me/preferences", json={"promotions": False}, headers=as_ann
        )
        assert prefs.status_code == 200

        # Rotation, then reuse of the rotated token: the session is revoked.
        rotated = await users.client.post(
            "/v1/auth/refresh", json={"refresh_token": ann["refresh_token"]}
        )
        assert rotated.status_code == 200, rotated.text
        reused = await users.client.post(
            "/v1/auth/refresh", json={"refresh_token": ann["refresh_token"]}
        )
        assert reused.status_code == 401
        revoked = await users.client.post(
            "/v1/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
        )
        assert revoked.status_code == 401

        session = login.json()
        out = await users.client.post(
            "/v1/auth/logout",
            json={"refresh_token": session["refresh_token"]},
            headers=users.bearer(session["access_token"]),
        )
        assert out.status_code == 204
        as_bob = users.bearer(bob["access_token"])
        assert (await users.client.delete("/v1/users/me", headers=as_bob)).status_code == 204

        await domain.ensure_admin(users.admin_email, users.admin_password, "Herald admin")
        # The seeded days before today go whole, today's expired records one by one.
        assert await domain.sweep() > 0
        assert runtime.relay is not None
        await runtime.relay.relay_once()

        async def relayed() -> bool:
            pending = await run_db(User._get_collection().find_one, {"outbox_pending": True})
            return pending is None

        await eventually(relayed)
        await run_db(store.get_many, ["seed-00001", "seed-00002"])

    queries = [q for q in recorder.distinct_queries() if (q.collection, q.command) not in EXEMPT]
    described = [q.describe() for q in queries]
    for collection in ("users", "refresh_tokens", "refresh_token_uses", "revoked_sessions"):
        assert any(f" {collection} " in d for d in described), described
    assert len(queries) >= 15, described
    bad = await run_db(unindexed, db, queries)
    assert bad == [], "\n".join(bad)


async def test_records_of_the_older_layout_get_their_expiry_day(start_users, monkeypatch) -> None:
    """Records written before ``expires_day`` existed are backfilled once and swept."""
    users = await start_users()
    db = mongoengine.get_db()
    past = users.clock() - timedelta(days=3)

    def old_layout() -> None:
        db["migrations"].delete_one({"_id": models.BACKFILL})
        db["store_state"].delete_one({"_id": EXPIRY_DAYS})
        RefreshToken._get_collection().insert_one(
            {
                "_id": "old-jti",
                "user_id": "u",
                "family": "old-family",
                "access_jti": "a",
                "access_expires_at": past,
                "issued_at": past - timedelta(days=30),
                "expires_at": past,
            }
        )
        RefreshTokenUse._get_collection().insert_one(
            {"_id": "old-jti", "used_at": past, "expires_at": past}
        )
        RefreshToken._get_collection().create_index("expires_at")

    await run_db(old_layout)
    await run_db(models.ensure_indexes)
    doc: dict[str, Any] = await run_db(RefreshToken._get_collection().find_one, {"_id": "old-jti"})
    assert doc["expires_day"] == utc_day(past)
    assert "expires_at_1" not in await run_db(RefreshToken._get_collection().index_information)
    assert utc_day(past) in (await run_db(state().find_one, {"_id": EXPIRY_DAYS}))["days"]
    assert await users.app.state.domain.sweep() == 1
    assert await run_db(RefreshTokenUse._get_collection().find_one, {"_id": "old-jti"}) is None
    # Once per database: a second start does not scan again.
    calls: list[int] = []
    monkeypatch.setattr(models, "backfill_expires_day", lambda: calls.append(1) or 0)
    await run_db(models.ensure_indexes)
    assert calls == []
