"""Registration, login, token refresh and logout."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request, Response
from herald_common.app import Caller

from herald_users.api.schemas import (
    AuthTokens,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    Users,
    errors,
)

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def _trusted(peer: str | None, request: Request) -> bool:
    settings = request.app.state.settings
    if not settings.trust_forwarded_for or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in settings.trusted_networks())


def client_address(request: Request) -> str | None:
    """The caller's address, which logins are rate limited by.

    The first ``X-Forwarded-For`` entry (the gateway puts the client there) when the
    socket peer is a trusted proxy (``trusted_proxies``); otherwise the socket peer,
    whatever the header says.
    """
    peer = request.client.host if request.client else None
    if _trusted(peer, request):
        forwarded = request.headers.get("x-forwarded-for", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first[:100]
    return peer


@router.post("/register", status_code=201, responses=errors(400, 409))
async def register(body: RegisterRequest, users: Users) -> AuthTokens:
    """Create an account and log it in.

    Emails are normalized (trimmed, lower-cased) and unique: a taken one is 409
    ``CONFLICT`` on ``email``. Passwords need 10-128 characters from at least two
    classes (lower, upper, digits, symbols) and must not be the email. Publishes
    ``user.registered``.
    """
    session = await users.register(
        name=body.name, email=body.email, password=body.password, preferences=body.preferences
    )
    return AuthTokens.of(session)


@router.post("/login", responses=errors(400, 401, 429))
async def login(body: LoginRequest, request: Request, users: Users) -> AuthTokens:
    """Log in with email and password; starts a new session.

    Rate limited per email (failed attempts) and per client address (all attempts):
    429 ``RATE_LIMITED`` with ``retry-after``.
    """
    session = await users.login(
        email=body.email, password=body.password, address=client_address(request)
    )
    return AuthTokens.of(session)


@router.post("/refresh", responses=errors(400, 401))
async def refresh(body: RefreshRequest, users: Users) -> AuthTokens:
    """Exchange a refresh token for a new token pair (rotation).

    A refresh token works once. Presenting one that was already used revokes its whole
    session (both the old and the new tokens): it was copied.
    """
    return AuthTokens.of(await users.refresh(body.refresh_token))


@router.post("/logout", status_code=204, response_class=Response, responses=errors(401, 403))
async def logout(
    body: LogoutRequest | None = None,
    *,
    caller: Caller,
    users: Users,
) -> Response:
    """Revoke the caller's access token and session, and the session of the given
    refresh token (which must be the caller's)."""
    await users.logout(caller, body.refresh_token if body else None)
    return Response(status_code=204)
