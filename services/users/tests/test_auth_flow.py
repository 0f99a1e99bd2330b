"""Register, login, refresh, logout; duplicate and invalid emails; weak passwords."""

import jwt
import pytest
from herald_common.auth import TokenVerifier
from jwt.algorithms import RSAAlgorithm

pytestmark = pytest.mark.integration
PASSWORD = "correct-Horse-battery"


async def test_register_login_refresh_logout(users) -> None:
    registered = await users.register(" Ann@Example.COM ", name="  Ann  Example ")
    assert registered["token_type"] == "Bearer" and registered["expires_in"] == 900
    user = registered["user"]
    assert user["email"] == "ann@example.com" and user["name"] == "Ann Example"
    assert user["roles"] == ["user"]
    assert user["preferences"]["promotions"] is True and user["preferences"]["timezone"] == "UTC"
    assert "password" not in registered["user"] and "password_hash" not in registered["user"]

    me = await users.client.get("/v1/users/me", headers=users.bearer(registered["access_token"]))
    assert me.status_code == 200 and me.json() == user

    logged_in = await users.login("ANN@example.com")
    assert logged_in.status_code == 200
    tokens = logged_in.json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert {"sub", "exp", "iat", "jti", "roles"} <= claims.keys()
    assert claims["sub"] == user["id"] and claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == 900
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "RS256" and header["kid"] == users.app.state.issuer.kid

    rotated = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    assert new["user"]["id"] == user["id"]

    out = await users.client.post(
        "/v1/auth/logout",
        json={"refresh_token": new["refresh_token"]},
        headers=users.bearer(new["access_token"]),
    )
    assert out.status_code == 204
    after = await users.client.get("/v1/users/me", headers=users.bearer(new["access_token"]))
    assert after.status_code == 401 and after.json()["error"]["code"] == "UNAUTHENTICATED"
    again = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": new["refresh_token"]}
    )
    assert again.status_code == 401
    # The whole session ended, including its earlier (rotated) access token ...
    earlier = await users.client.get("/v1/users/me", headers=users.bearer(tokens["access_token"]))
    assert earlier.status_code == 401
    # ... while other sessions (the one registration started) go on.
    other = await users.client.get("/v1/users/me", headers=users.bearer(registered["access_token"]))
    assert other.status_code == 200
    still = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": registered["refresh_token"]}
    )
    assert still.status_code == 200


async def test_logout_without_refresh_token_ends_the_session(users) -> None:
    tokens = await users.register("bob@example.com")
    out = await users.client.post("/v1/auth/logout", headers=users.bearer(tokens["access_token"]))
    assert out.status_code == 204
    refused = await users.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


async def test_logout_refuses_someone_elses_refresh_token(users) -> None:
    ann = await users.register("ann@example.com")
    bob = await users.register("bob@example.com")
    r = await users.client.post(
        "/v1/auth/logout",
        json={"refresh_token": bob["refresh_token"]},
        headers=users.bearer(ann["access_token"]),
    )
    assert r.status_code == 403 and r.json()["error"]["field"] == "refresh_token"
    ok = await users.client.post("/v1/auth/refresh", json={"refresh_token": bob["refresh_token"]})
    assert ok.status_code == 200


async def test_wrong_password_and_unknown_email_look_the_same(users) -> None:
    await users.register("ann@example.com")
    wrong = await users.login("ann@example.com", "wrong-Password-1")
    unknown = await users.login("nobody@example.com", "wrong-Password-1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_duplicate_email_is_a_conflict(users) -> None:
    await users.register("ann@example.com")
    for variant in ("ann@example.com", "ANN@EXAMPLE.COM", "  ann@Example.com  "):
        r = await users.client.post(
            "/v1/auth/register", json={"name": "Other", "email": variant, "password": PASSWORD}
        )
        assert r.status_code == 409
        assert r.json()["error"] == {
            "code": "CONFLICT",
            "message": "an account with this email already exists",
            "field": "email",
        }


async def test_concurrent_registrations_of_one_email(users) -> None:
    import asyncio

    body = {"name": "Ann", "email": "race@example.com", "password": PASSWORD}
    results = await asyncio.gather(
        *(users.client.post("/v1/auth/register", json=body) for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]


async def test_invalid_emails_and_weak_passwords(users) -> None:
    for email in ("", "not-an-email", "ann@localhost", "ann@@example.com", 42, None):
        r = await users.client.post(
            "/v1/auth/register", json={"name": "Ann", "email": email, "password": PASSWORD}
        )
        assert r.status_code == 400, email
        assert r.json()["error"]["code"] == "BAD_USER_INPUT"
        assert r.json()["error"]["field"] == "email"
    for password in ("short1A!", "onlylowercaseletters", "1234567890123", "x" * 129 + "A"):
        r = await users.client.post(
            "/v1/auth/register",
            json={"name": "Ann", "email": "ann@example.com", "password": password},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["field"] == "password"
        assert password not in r.text  # never echoed back
    r = await users.client.post(
        "/v1/auth/register",
        json={"name": "Ann", "email": "Ann@Example.com", "password": "ann@example.com"},
    )
    assert r.status_code == 400 and "email" in r.json()["error"]["message"]
    # Nothing was created along the way.
    assert (await users.login("ann@example.com", "short1A!")).status_code == 401


async def test_register_validation_names_the_field(users) -> None:
    cases = [
        ({"email": "ann@example.com", "password": PASSWORD}, "name"),
        ({"name": "  ", "email": "ann@example.com", "password": PASSWORD}, "name"),
        ({"name": "Ann", "email": "ann@example.com"}, "password"),
        (
            {"name": "Ann", "email": "ann@example.com", "password": PASSWORD, "roles": ["admin"]},
            "roles",
        ),
        (
            {
                "name": "Ann",
                "email": "ann@example.com",
                "password": PASSWORD,
                "preferences": {"timezone": "Mars/Olympus"},
            },
            "preferences.timezone",
        ),
        (
            {
                "name": "Ann",
                "email": "ann@example.com",
                "password": PASSWORD,
                "preferences": {"channels": None},
            },
            "preferences.channels",
        ),
    ]
    for body, field in cases:
        r = await users.client.post("/v1/auth/register", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["field"] == field, r.json()


async def test_register_with_partial_preferences(users) -> None:
    tokens = await users.register(
        "ann@example.com",
        preferences={"promotions": False, "quiet_hours": {"start": "22:00", "end": "07:00"}},
    )
    prefs = tokens["user"]["preferences"]
    assert prefs["promotions"] is False and prefs["order_updates"] is True
    assert prefs["quiet_hours"] == {"start": "22:00", "end": "07:00"}


async def test_jwks_verifies_issued_tokens(users) -> None:
    tokens = await users.register("ann@example.com")
    r = await users.client.get("/.well-known/jwks.json")
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    [jwk] = r.json()["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256" and "d" not in jwk
    key = RSAAlgorithm.from_jwk(jwk)
    claims = jwt.decode(tokens["access_token"], key, algorithms=["RS256"], audience="herald")
    assert claims["sub"] == tokens["user"]["id"]
    # The shared verifier (what the gateway and services use) accepts them.
    verifier = TokenVerifier(
        issuer="herald-users", audience="herald", public_pem=users.app.state.issuer.public_pem
    )
    assert (await verifier.verify(tokens["access_token"])).user_id == tokens["user"]["id"]


async def test_openapi_documents_the_contract(users) -> None:
    spec = (await users.client.get("/openapi.json")).json()
    expected = {
        ("post", "/v1/auth/register"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("get", "/v1/users/me"),
        ("patch", "/v1/users/me"),
        ("patch", "/v1/users/me/preferences"),
        ("delete", "/v1/users/me"),
        ("get", "/v1/users/{user_id}"),
        ("get", "/v1/users"),
        ("get", "/.well-known/jwks.json"),
    }
    listed = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert expected <= listed
    for method, path in expected:
        assert spec["paths"][path][method].get("description"), (method, path)
    schemas = spec["components"]["schemas"]
    assert {"AuthTokens", "UserOut", "PreferencesPatch", "ErrorBody"} <= schemas.keys()
    assert "password_hash" not in str(schemas["UserOut"])
    assert (await users.client.get("/readyz")).json()["status"] == "ok"
