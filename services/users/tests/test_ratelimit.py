"""Login rate limits in Redis: per email (failures) and per client address (attempts)."""

import secrets

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


async def test_forwarded_for_from_an_untrusted_caller_is_ignored(start_users, users_settings):
    """The probe: a direct caller (any pod) sending a random X-Forwarded-For per request
    must not escape the per-address limit; only the trusted proxies' header counts."""
    pod = ("10.20.30.40", 41000)
    users = await start_users(users_settings(login_max_attempts_per_address=3), peer=pod)
    await users.register("ann@example.com")
    statuses = []
    for _ in range(4):
        random_address = ".".join(str(b) for b in secrets.token_bytes(4))
        r = await users.login("ann@example.com", headers={"x-forwarded-for": random_address})
        statuses.append(r.status_code)
    assert statuses == [200, 200, 200, 429]

    # Once that peer is a configured proxy (the gateway), its header names the client.
    users = await start_users(
        users_settings(login_max_attempts_per_address=3, trusted_proxies=["10.20.30.0/24"]),
        peer=pod,
    )
    for n in range(5):
        r = await users.login("ann@example.com", headers={"x-forwarded-for": f"198.51.100.{n}"})
        assert r.status_code == 200


def test_trusted_proxies_default_to_loopback_and_parse_from_the_environment(
    monkeypatch, users_settings
):
    assert users_settings().trusted_proxies == ["127.0.0.0/8", "::1/128"]
    monkeypatch.setenv("HERALD_USERS_TRUSTED_PROXIES", "10.244.0.0/16, fd00::/8,192.0.2.7")
    from herald_users.config import UsersSettings

    settings = UsersSettings(environment="test")
    assert settings.trusted_proxies == ["10.244.0.0/16", "fd00::/8", "192.0.2.7"]
    assert [str(n) for n in settings.trusted_networks()][-1] == "192.0.2.7/32"
    monkeypatch.setenv("HERALD_USERS_TRUSTED_PROXIES", "gateway.herald.svc")
    with pytest.raises(ValueError, match="not an address or network"):
        UsersSettings(environment="test")


async def test_unreachable_redis_refuses_logins_typed_and_recovers(
    start_users, users_settings, infra
):
    """Redis away (open connections cut, new ones refused): a login cannot be counted,
    so it is refused with 503 UNAVAILABLE in the service's error body (fail closed, like
    the token deny-list), right or wrong password alike, never a 500 and never a 401
    that would mean the password was checked uncounted; once Redis answers, logins work."""
    from herald_testing.faults import TcpProxy

    proxy = await TcpProxy.for_url(infra["HERALD_REDIS_URL"], 6379).start()
    try:
        users = await start_users(
            users_settings(redis_url=proxy.url_through(infra["HERALD_REDIS_URL"]))
        )
        await users.register("ann@example.com")
        assert (await users.login("ann@example.com")).status_code == 200
        proxy.pause()
        proxy.drop_all()
        for password in (users.password, "wrong-Password-1"):
            r = await users.login("ann@example.com", password)
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert error["code"] == "UNAVAILABLE", r.text
            assert "try again" in error["message"]
            assert password not in r.text
        proxy.resume()
        assert (await users.login("ann@example.com")).status_code == 200
        assert (await users.login("ann@example.com", "wrong-Password-1")).status_code == 401
    finally:
        await proxy.close()
