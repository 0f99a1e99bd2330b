"""Bearer tokens that must be refused: garbage and every forgery the probe tried.

One factory for both authorization matrices — the GraphQL one
(``gateway/tests/test_authz_matrix.py``) and the route matrix of every service
(:func:`herald_testing.authz.check_routes`). Each kind is built from the token issuer
the component under test trusts, so a refusal is caused by the forgery itself:

* ``garbage`` — not a JWT at all;
* ``tampered`` — a real user token whose payload is rewritten to claim the admin role
  (the signature no longer matches);
* ``alg_none`` — admin claims, ``alg: none``, no signature;
* ``hs256_public_key`` — admin claims signed HS256 with the issuer's *public* key as the
  HMAC secret (key confusion), under the issuer's ``kid``;
* ``expired`` — a real token whose ``exp`` has passed;
* ``revoked`` — a real token deny-listed in Redis (what logout does);
* ``refresh_as_bearer`` — a real refresh token sent as an access token;
* ``other_issuer`` — admin claims signed by a key that is not ours, claiming our ``kid``;
* ``embedded_jwk`` — admin claims signed by the attacker's key, with that key in the
  ``jwk`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from herald_common.auth import TokenIssuer, generate_private_key_pem
from herald_common.redis_client import revoke_token

FORGED = (
    "garbage",
    "tampered",
    "alg_none",
    "hs256_public_key",
    "expired",
    "revoked",
    "refresh_as_bearer",
    "other_issuer",
    "embedded_jwk",
)
TTL = timedelta(minutes=10)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forge(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{sign(f'{head}.{body}'.encode())}"


async def forged_token(kind: str, issuer: TokenIssuer, redis: Any, user: str) -> str:
    """A token of ``kind`` (one of :data:`FORGED`) for ``user``, made against ``issuer``;
    ``revoked`` deny-lists it through ``redis`` (a client of the Redis the verifier
    reads)."""
    if kind == "garbage":
        return "not-a-token"
    if kind == "tampered":
        head, body, sig = issuer.issue(user, ttl=TTL)[0].split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["roles"] = ["admin"]
        return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"
    admin_claims = issuer.issue(user, roles=("admin",), ttl=TTL)[1]
    if kind == "alg_none":
        return _forge({"alg": "none", "typ": "JWT"}, admin_claims, lambda _: "")
    if kind == "hs256_public_key":
        key = issuer.public_pem.encode()

        def sign(data: bytes) -> str:
            return _b64(hmac.new(key, data, hashlib.sha256).digest())

        return _forge({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, admin_claims, sign)
    if kind == "expired":
        past = datetime.now(UTC) - timedelta(hours=2)
        return issuer.issue(user, ttl=timedelta(minutes=15), now=past)[0]
    if kind == "revoked":
        token, claims = issuer.issue(user, ttl=TTL)
        await revoke_token(redis, claims["jti"], 600)
        return token
    if kind == "refresh_as_bearer":
        return issuer.issue(user, token_type="refresh", ttl=TTL)[0]  # noqa: S106 - a type
    if kind == "other_issuer":
        other = TokenIssuer(
            generate_private_key_pem(), issuer=issuer.issuer, audience=issuer.audience
        )
        other.kid = issuer.kid  # claims to be our key
        return other.issue(user, roles=("admin",), ttl=TTL)[0]
    if kind == "embedded_jwk":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        headers = {"jwk": jwk, "kid": "attacker"}
        return jwt.encode(admin_claims, private, algorithm="RS256", headers=headers)
    raise ValueError(f"unknown token kind {kind!r}")


async def forged_headers(
    issuer: TokenIssuer, redis: Any, user: str = "forged-user"
) -> dict[str, dict[str, str]]:
    """``{kind: {"authorization": "Bearer …"}}`` for every kind of :data:`FORGED`."""
    return {
        kind: {"authorization": f"Bearer {await forged_token(kind, issuer, redis, user)}"}
        for kind in FORGED
    }
