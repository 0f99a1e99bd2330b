"""JWT issuing (users service) and verification (gateway and every service).

Tokens are RS256-signed by the users service; its public keys are published as JWKS at
``/.well-known/jwks.json``. Verifiers accept only RS256 (never ``none`` or HMAC), check
issuer, audience, expiry, the token type (access vs refresh) and the Redis deny-list.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from redis.exceptions import RedisError

from herald_common.errors import Unauthenticated, Unavailable
from herald_common.lru import MISSING, ExpiringLRU
from herald_common.redis_client import revoked_key

ALGORITHM = "RS256"
# Verified tokens remembered per process (TokenVerifier): the most recently used.
VERIFIED_TOKENS = 10_000
TokenType = Literal["access", "refresh"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    user_id: str
    roles: tuple[str, ...] = ()
    jti: str = ""
    expires_at: int = 0
    token: str = field(default="", repr=False)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def generate_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_id(public_pem: str) -> str:
    """A stable key id: a hash of the public key."""
    return hashlib.sha256(public_pem.encode()).hexdigest()[:16]


def jwks_of(public_pems: list[str]) -> dict[str, Any]:
    keys = []
    for pem in public_pems:
        public = serialization.load_pem_public_key(pem.encode())
        if not isinstance(public, rsa.RSAPublicKey):
            raise ValueError("only RSA keys are used for signing")
        jwk = json.loads(RSAAlgorithm.to_jwk(public))
        jwk.update({"kid": key_id(pem), "use": "sig", "alg": ALGORITHM})
        keys.append(jwk)
    return {"keys": keys}


class TokenIssuer:
    """Signs tokens with the users service's private key."""

    def __init__(self, private_pem: str, *, issuer: str, audience: str) -> None:
        self._private = private_pem
        self.public_pem = public_pem_of(private_pem)
        self.kid = key_id(self.public_pem)
        self.issuer = issuer
        self.audience = audience

    def issue(
        self,
        user_id: str,
        *,
        roles: list[str] | tuple[str, ...] = (),
        token_type: TokenType = "access",
        ttl: timedelta,
        extra: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Returns ``(token, claims)``."""
        issued = now or datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()),
            "exp": int((issued + ttl).timestamp()),
            "jti": uuid.uuid4().hex,
            "typ": token_type,
            "roles": list(roles),
            **(extra or {}),
        }
        token = jwt.encode(claims, self._private, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, claims


class TokenVerifier:
    """Verifies tokens locally with a static public key or a cached JWKS."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        public_pem: str | None = None,
        jwks_url: str | None = None,
        redis: Any | None = None,
        jwks_refresh_seconds: float = 300.0,
        leeway: int = 5,
    ) -> None:
        if not public_pem and not jwks_url:
            raise ValueError("TokenVerifier needs public_pem or jwks_url")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.redis = redis
        self.leeway = leeway
        self.refresh_seconds = jwks_refresh_seconds
        self._keys: dict[str, Any] = {}
        # Claims of tokens whose signature was checked, until they expire or one JWKS
        # refresh has passed (monotonic).
        self._verified: ExpiringLRU[str, dict[str, Any]] = ExpiringLRU(VERIFIED_TOKENS)
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        if public_pem:
            self._keys[key_id(public_pem)] = serialization.load_pem_public_key(public_pem.encode())
            self._static = True
        else:
            self._static = False

    async def _refresh(self, force: bool = False) -> None:
        if self._static or self.jwks_url is None:
            return
        async with self._lock:
            fresh = time.monotonic() - self._fetched_at < self.refresh_seconds
            # Even when forced (unknown kid), refresh at most every 5 s.
            if (fresh and not force) or (force and time.monotonic() - self._fetched_at < 5):
                return
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.get(self.jwks_url)
                    response.raise_for_status()
                    data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise Unavailable("cannot fetch the token signing keys") from exc
                return
            keys = {}
            for jwk in data.get("keys", []):
                if jwk.get("kty") == "RSA":
                    keys[jwk.get("kid", "")] = RSAAlgorithm.from_jwk(json.dumps(jwk))
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str | None) -> Any:
        await self._refresh()
        if kid in self._keys:
            return self._keys[kid]
        if self._static and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        await self._refresh(force=True)
        if kid in self._keys:
            return self._keys[kid]
        raise Unauthenticated("token signed by an unknown key")

    def _remembered(self, token: str) -> dict[str, Any] | None:
        """Claims of a token verified before, while it is unexpired and the signing keys
        it was checked with are no older than one JWKS refresh."""
        claims = self._verified.get(token)
        if claims is MISSING:
            return None
        if time.time() >= claims["exp"]:
            self._verified.pop(token)
            return None
        return claims

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        self._verified.put(token, claims, time.monotonic() + self.refresh_seconds)

    async def _checked_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature, issuer, audience and times check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted")
        key = await self._key_for(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        return claims

    async def decode(self, token: str, expected: TokenType = "access") -> dict[str, Any]:
        """Verified claims of ``token``; raises :class:`Unauthenticated` otherwise.

        The signature check is remembered per token (bounded, until the token expires
        or one JWKS refresh has passed); the revocation check runs on every call."""
        claims = self._remembered(token)
        if claims is None:
            claims = await self._checked_claims(token)
            self._remember(token, claims)
        if claims.get("typ") != expected:
            raise Unauthenticated(f"a {claims.get('typ')} token cannot be used as {expected} token")
        if self.redis is not None:
            try:
                revoked = await self.redis.exists(revoked_key(claims["jti"]))
            except RedisError as exc:
                # Fail closed: a token whose revocation cannot be checked is not accepted.
                raise Unavailable("cannot check whether the token was revoked") from exc
            if revoked:
                raise Unauthenticated("token revoked")
        return claims

    async def verify(self, token: str) -> Principal:
        """The caller behind an access token."""
        claims = await self.decode(token, "access")
        return Principal(
            user_id=str(claims["sub"]),
            roles=tuple(claims.get("roles") or ()),
            jti=claims["jti"],
            expires_at=int(claims["exp"]),
            token=token,
        )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization header must be 'Bearer <token>'")
    return token.strip()
