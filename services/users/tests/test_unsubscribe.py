"""One-click unsubscribe: a signed token turns one type off, anything else is refused."""

import pytest
from herald_common.unsubscribe import LOCAL_SECRET, sign
from pydantic import SecretStr

pytestmark = pytest.mark.integration


async def test_signed_token_turns_the_type_off(users, user_events) -> None:
    ann = await users.register(
        "ann-unsub@example.com", preferences={"promotions": True, "recommendations": True}
    )
    user_id = ann["user"]["id"]
    token = sign(LOCAL_SECRET.encode(), user_id, "promotion")

    r = await users.client.post(f"/v1/users/unsubscribe/{token}")
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "promotion" and r.json()["user_id"] == user_id
    assert r.json()["preferences"]["promotions"] is False
    assert r.json()["preferences"]["recommendations"] is True
    me = await users.client.get("/v1/users/me", headers=users.bearer(ann["access_token"]))
    assert me.json()["preferences"]["promotions"] is False
    # The change travels like any preference update.
    updates = await user_events.wait_for(user_id, 1, "user.preferences_updated")
    assert updates[-1].payload.preferences.promotions is False
    # Again: nothing changes, still 200.
    again = await users.client.post(f"/v1/users/unsubscribe/{token}")
    assert again.status_code == 200 and again.json()["preferences"]["promotions"] is False

    recs = sign(LOCAL_SECRET.encode(), user_id, "recommendation")
    r = await users.client.post(f"/v1/users/unsubscribe/{recs}")
    assert r.json()["preferences"]["recommendations"] is False


async def test_bad_tokens_are_typed_errors(users) -> None:
    ann = await users.register("bob-unsub@example.com")
    user_id = ann["user"]["id"]
    good = sign(LOCAL_SECRET.encode(), user_id, "promotion")
    payload, signature = good.split(".")
    forged = sign(b"another secret", user_id, "promotion")
    for token in (f"{payload}.{signature[:-2]}xx", forged, "nope", "a.b.c", f"{payload}."):
        r = await users.client.post(f"/v1/users/unsubscribe/{token}")
        assert r.status_code == 400, (token, r.text)
        assert r.json()["error"]["code"] == "BAD_USER_INPUT"
        assert r.json()["error"]["field"] == "token"
    too_long = "a" * 1001 + ".b"
    r = await users.client.post(f"/v1/users/unsubscribe/{too_long}")
    assert r.status_code == 400
    unknown = sign(LOCAL_SECRET.encode(), "no-such-user", "promotion")
    r = await users.client.post(f"/v1/users/unsubscribe/{unknown}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"


async def test_configured_secret_is_the_one_that_counts(start_users, users_settings) -> None:
    users = await start_users(users_settings(unsubscribe_secret=SecretStr("s3cret-value")))
    ann = await users.register("cy-unsub@example.com")
    user_id = ann["user"]["id"]
    local = sign(LOCAL_SECRET.encode(), user_id, "promotion")
    assert (await users.client.post(f"/v1/users/unsubscribe/{local}")).status_code == 400
    real = sign(b"s3cret-value", user_id, "promotion")
    assert (await users.client.post(f"/v1/users/unsubscribe/{real}")).status_code == 200
