"""Login rate limits in Redis: per email (failures) and per client address (attempts)."""

import pytest

pytestmark = pytest.mark.integration


async def test_failures_per_email_lock_the_account_for_a_while(start_users, users_settings):
    users = await start_users(users_settings(login_max_failures_per_email=3))
    await users.register("ann@example.com")
    await users.register("bob@example.com")
    for _ in range(3):
        r = await users.login("ann@example.com", "wrong-Password-1")
        assert r.status_code == 401
    # Now even the right password is refused until the window ends.
    r = await users.login("ANN@example.com")
    assert r.status_code == 429
    error = r.json()["error"]
    assert error["code"] == "RATE_LIMITED" and error["field"] == "email"
    assert 0 < int(r.headers["retry-after"]) <= 15 * 60
    # Another account from the same address is not affected.
    assert (await users.login("bob@example.com")).status_code == 200


async def test_success_resets_the_failure_count(start_users, users_settings):
    users = await start_users(users_settings(login_max_failures_per_email=3))
    await users.register("ann@example.com")
    for _ in range(2):
        assert (await users.login("ann@example.com", "wrong-Password-1")).status_code == 401
    assert (await users.login("ann@example.com")).status_code == 200
    for _ in range(2):
        assert (await users.login("ann@example.com", "wrong-Password-1")).status_code == 401
    assert (await users.login("ann@example.com")).status_code == 200


async def test_attempts_per_address_use_the_forwarded_address(start_users, users_settings):
    users = await start_users(
        users_settings(login_max_attempts_per_address=3, login_address_window_seconds=60)
    )
    await users.register("ann@example.com")
    shopper = {"x-forwarded-for": "203.0.113.7, 10.0.0.2"}
    for _ in range(3):
        assert (await users.login("ann@example.com", headers=shopper)).status_code == 200
    r = await users.login("ann@example.com", headers=shopper)
    assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(r.headers["retry-after"]) <= 60
    # Other clients behind the same gateway are counted on their own.
    other = {"x-forwarded-for": "198.51.100.9"}
    assert (await users.login("ann@example.com", headers=other)).status_code == 200
    # Without the header the socket peer is the address.
    assert (await users.login("ann@example.com")).status_code == 200


async def test_forwarded_header_can_be_ignored(start_users, users_settings):
    users = await start_users(
        users_settings(login_max_attempts_per_address=2, trust_forwarded_for=False)
    )
    await users.register("ann@example.com")
    for n in range(2):
        spoofed = {"x-forwarded-for": f"192.0.2.{n}"}
        assert (await users.login("ann@example.com", headers=spoofed)).status_code == 200
    r = await users.login("ann@example.com", headers={"x-forwarded-for": "192.0.2.99"})
    assert r.status_code == 429
