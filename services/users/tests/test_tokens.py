"""The token matrix: what the service refuses, and refresh-token rotation."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import jwt
import pytest
from herald_common.auth import TokenIssuer, generate_private_key_pem
from herald_common.redis_client import revoked_key

pytestmark = pytest.mark.integration


def _forge(token: str, **changes) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict, secret: bytes, kid: str) -> str:
    """An HS256 token made by hand (pyjwt rightly refuses a PEM as HMAC secret)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


async def _me(users, token: str):
    return await users.client.get("/v1/users/me", headers=users.bearer(token))


async def _refresh(users, token: str):
    return await users.client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refused_access_tokens(users, signing_key) -> None:
    tokens = await users.register("ann@example.com")
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    user_id = tokens["user"]["id"]
    claims = jwt.decode(access, options={"verify_signature": False})
    issuer = TokenIssuer(signing_key, issuer="herald-users", audience="herald")
    public_pem = users.app.state.issuer.public_pem

    expired, _ = issuer.issue(
        user_id, ttl=timedelta(minutes=15), now=users.clock() - timedelta(hours=1)
    )
    unsigned = jwt.encode({**claims, "roles": ["admin"]}, key=None, algorithm="none")
    # Key confusion: HS256 "signed" with the public key as the shared secret.
    hs256 = _hs256({**claims, "roles": ["admin"]}, public_pem.encode(), users.app.state.issuer.kid)
    foreign, _ = TokenIssuer(
        generate_private_key_pem(), issuer="herald-users", audience="herald"
    ).issue(user_id, ttl=timedelta(minutes=5))
    wrong_audience, _ = TokenIssuer(signing_key, issuer="herald-users", audience="other").issue(
        user_id, ttl=timedelta(minutes=5)
    )
    cases = {
        "expired": (expired, "expired"),
        "tampered": (_forge(access, roles=["admin"]), "invalid token"),
        "alg none": (unsigned, "algorithm"),
        "alg HS256": (hs256, "algorithm"),
        "other signer": (foreign, "invalid token"),
        "wrong audience": (wrong_audience, "invalid token"),
        "refresh as access": (refresh, "refresh token cannot be used as access"),
        "garbage": ("not.a.token", "malformed"),
    }
    for name, (token, message) in cases.items():
        r = await _me(users, token)
        assert r.status_code == 401, name
        assert r.json()["error"]["code"] == "UNAUTHENTICATED", name
        assert message in r.json()["error"]["message"], (name, r.json())
    for header in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer "}):
        assert (await users.client.get("/v1/users/me", headers=header)).status_code == 401
    # ... and the genuine token still works.
    assert (await _me(users, access)).status_code == 200


async def test_revoked_access_token(users) -> None:
    tokens = await users.register("ann@example.com")
    access = tokens["access_token"]
    out = await users.client.post("/v1/auth/logout", headers=users.bearer(access))
    assert out.status_code == 204
    r = await _me(users, access)
    assert r.status_code == 401 and r.json()["error"]["message"] == "token revoked"
    # The deny-list entry lives as long as the token (plus the verifiers' leeway).
    jti = jwt.decode(access, options={"verify_signature": False})["jti"]
    redis = users.app.state.runtime.redis
    ttl = await redis.ttl(revoked_key(jti))
    assert 900 - 60 < ttl <= 900 + 5


async def test_access_token_is_not_a_refresh_token(users) -> None:
    tokens = await users.register("ann@example.com")
    r = await _refresh(users, tokens["access_token"])
    assert r.status_code == 401
    assert "access token cannot be used as refresh" in r.json()["error"]["message"]


async def test_reused_refresh_token_revokes_the_session(users) -> None:
    tokens = await users.register("ann@example.com")
    first = await _refresh(users, tokens["refresh_token"])
    assert first.status_code == 200
    rotated = first.json()

    # The old refresh token shows up again (a copy): refused, and the session ends.
    reuse = await _refresh(users, tokens["refresh_token"])
    assert reuse.status_code == 401 and "already used" in reuse.json()["error"]["message"]
    after = await _refresh(users, rotated["refresh_token"])
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    assert (await _me(users, rotated["access_token"])).status_code == 401
    assert (await _me(users, tokens["access_token"])).status_code == 401

    # A new login is a new session and works.
    again = await users.login("ann@example.com")
    assert again.status_code == 200
    assert (await _me(users, again.json()["access_token"])).status_code == 200


async def test_concurrent_uses_of_one_refresh_token_count_as_reuse(users) -> None:
    import asyncio

    tokens = await users.register("ann@example.com")
    results = await asyncio.gather(*(_refresh(users, tokens["refresh_token"]) for _ in range(4)))
    codes = sorted(r.status_code for r in results)
    # At most one use wins; the others are reuse, which ends the session, so even the
    # winner's new tokens are revoked.
    assert codes.count(200) <= 1 and codes.count(401) >= 3
    for r in results:
        if r.status_code == 200:
            again = await _refresh(users, r.json()["refresh_token"])
            assert again.status_code == 401
            assert (await _me(users, r.json()["access_token"])).status_code == 401


async def test_refresh_token_expires(start_users) -> None:
    users = await start_users()
    users.clock.shift(days=-31)  # tokens issued 31 days ago, valid for 30
    old = await users.register("ann@example.com")
    users.clock.shift(days=31)
    r = await _refresh(users, old["refresh_token"])
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    assert (await _me(users, old["access_token"])).status_code == 401


async def test_refresh_ttls_are_configurable(start_users, users_settings) -> None:
    users = await start_users(
        users_settings(access_token_ttl_seconds=60, refresh_token_ttl_seconds=3600)
    )
    tokens = await users.register("ann@example.com")
    assert tokens["expires_in"] == 60
    refresh_claims = jwt.decode(tokens["refresh_token"], options={"verify_signature": False})
    assert refresh_claims["exp"] - refresh_claims["iat"] == 3600
    assert refresh_claims["typ"] == "refresh"


async def test_tampered_refresh_token(users) -> None:
    tokens = await users.register("ann@example.com")
    r = await _refresh(users, _forge(tokens["refresh_token"], sub="someone-else"))
    assert r.status_code == 401
    r = await users.client.post("/v1/auth/refresh", json={"refresh_token": ""})
    assert r.status_code == 400 and r.json()["error"]["field"] == "refresh_token"


async def test_expired_refresh_records_are_swept(start_users) -> None:
    from herald_users.models import RefreshToken

    users = await start_users()
    users.clock.shift(days=-40)
    await users.register("old@example.com")
    users.clock.shift(days=40)
    await users.register("new@example.com")
    removed = await users.app.state.domain.sweep()
    assert removed == 1
    assert RefreshToken.objects.count() == 1  # the new account's session remains
