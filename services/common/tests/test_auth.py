"""Token issuing and verification: the refusal matrix."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from herald_common.auth import (
    TokenIssuer,
    TokenVerifier,
    generate_private_key_pem,
    jwks_of,
)
from herald_common.errors import Unauthenticated


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer(generate_private_key_pem(), issuer="herald-users", audience="herald")


@pytest.fixture
def verifier(issuer: TokenIssuer) -> TokenVerifier:
    return TokenVerifier(issuer="herald-users", audience="herald", public_pem=issuer.public_pem)


async def test_valid_access_token(issuer, verifier) -> None:
    token, claims = issuer.issue("u1", roles=["admin"], ttl=timedelta(minutes=5))
    principal = await verifier.verify(token)
    assert principal.user_id == "u1"
    assert principal.is_admin
    assert principal.jti == claims["jti"]


async def test_expired(issuer, verifier) -> None:
    token, _ = issuer.issue(
        "u1", ttl=timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1)
    )
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_tampered(issuer, verifier) -> None:
    token, _ = issuer.issue("u1", ttl=timedelta(minutes=5))
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated, match="invalid token"):
        await verifier.verify(f"{head}.{forged}.{sig}")


async def test_alg_none_and_hmac_refused(issuer, verifier) -> None:
    claims = {
        "sub": "u1",
        "exp": 9999999999,
        "iat": 1,
        "jti": "x",
        "typ": "access",
        "iss": "herald-users",
        "aud": "herald",
    }
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier.verify(unsigned)
    # HS256 signed with the *public* key: the classic key-confusion attack.
    hs = jwt.encode(claims, "not-the-key", algorithm="HS256")
    with pytest.raises(Unauthenticated, match="algorithm"):
        await verifier.verify(hs)


async def test_refresh_token_is_not_an_access_token(issuer, verifier) -> None:
    token, _ = issuer.issue("u1", token_type="refresh", ttl=timedelta(days=1))
    with pytest.raises(Unauthenticated, match="refresh token cannot be used as access"):
        await verifier.verify(token)


async def test_other_signer_refused(verifier) -> None:
    other = TokenIssuer(generate_private_key_pem(), issuer="herald-users", audience="herald")
    token, _ = other.issue("u1", ttl=timedelta(minutes=5))
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_garbage(verifier) -> None:
    with pytest.raises(Unauthenticated, match="malformed"):
        await verifier.verify("definitely.not.ajwt")


async def test_a_signature_is_checked_once_per_token_while_it_is_valid(
    issuer, verifier, monkeypatch
) -> None:
    calls = []
    real_decode = jwt.decode

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    token, _ = issuer.issue("u1", ttl=timedelta(minutes=5))
    refresh, _ = issuer.issue("u1", token_type="refresh", ttl=timedelta(days=1))
    for _ in range(3):
        assert (await verifier.verify(token)).user_id == "u1"
        # A remembered refresh token is still no access token.
        with pytest.raises(Unauthenticated, match="refresh token cannot be used as access"):
            await verifier.verify(refresh)
    assert calls == [token, refresh]
    # Past its expiry a remembered token is checked again (and then refused as expired).
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    await verifier.verify(token)
    assert calls == [token, refresh, token]


def test_jwks_has_kid_and_alg(issuer) -> None:
    [key] = jwks_of([issuer.public_pem])["keys"]
    assert key["kid"] == issuer.kid and key["alg"] == "RS256" and key["kty"] == "RSA"
    assert "d" not in key  # no private material


@pytest.mark.integration
async def test_unreachable_deny_list_fails_closed_with_unavailable(issuer, infra) -> None:
    """Redis away: the token is refused as UNAVAILABLE (503 / a typed GraphQL error),
    neither accepted unchecked nor an internal error."""
    import redis.asyncio as aioredis
    from herald_common.errors import Unavailable
    from herald_testing.faults import TcpProxy

    proxy = await TcpProxy.for_url(infra["HERALD_REDIS_URL"], 6379).start()
    client = aioredis.from_url(proxy.url_through(infra["HERALD_REDIS_URL"]), socket_timeout=5)
    verifier = TokenVerifier(
        issuer="herald-users", audience="herald", public_pem=issuer.public_pem, redis=client
    )
    token, _ = issuer.issue("u1", ttl=timedelta(minutes=5))
    try:
        assert (await verifier.verify(token)).user_id == "u1"
        proxy.pause()
        proxy.drop_all()
        with pytest.raises(Unavailable):
            await verifier.verify(token)
        proxy.resume()
        assert (await verifier.verify(token)).user_id == "u1"
    finally:
        await client.aclose()
        await proxy.close()
