"""App factory of the users service.

The lifespan connects MongoDB, Redis and RabbitMQ (:class:`ServiceRuntime`), starts the
outbox relay for :class:`~herald_users.models.User`, bootstraps the admin account and
sweeps expired refresh tokens. The service verifies its own tokens with its own public
key (no JWKS round trip to itself).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from herald_common.app import create_app as create_herald_app
from herald_common.auth import TokenIssuer, TokenVerifier
from herald_common.clock import Clock, utcnow
from herald_common.db import run_db
from herald_common.runtime import ServiceRuntime
from herald_common.tasks import cancel_and_wait, start_periodic

from herald_users import __version__
from herald_users.api import auth_router, jwks_router, users_router
from herald_users.config import UsersSettings
from herald_users.credentials import Passwords
from herald_users.domain import UsersDomain
from herald_users.keys import load_private_key
from herald_users.models import User, ensure_indexes
from herald_users.ratelimit import Limit, LoginRateLimiter

log = logging.getLogger(__name__)

DESCRIPTION = """
Accounts, authentication and notification preferences of Herald.

* Access tokens (15 min) and rotating refresh tokens (30 days) are RS256 JWTs; the
  public key is at `/.well-known/jwks.json`.
* Errors are `{"error": {"code", "message", "field"?}}`.
* Every change publishes `user.registered`, `user.preferences_updated` or
  `user.deleted` through the outbox.
"""


async def _sweep_refresh_tokens(users: UsersDomain) -> None:
    removed = await users.sweep()
    if removed:
        log.info("expired refresh tokens removed", extra={"count": removed})


def create_app(settings: UsersSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """The users service app. ``clock`` is for tests (token times, expiries)."""
    settings = settings or UsersSettings()
    # Loaded here, not in the lifespan, so a missing or broken key stops startup at once.
    issuer = TokenIssuer(
        load_private_key(settings), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, documents=[User], verify_tokens=False)
        await runtime.start(app)
        verifier = TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            public_pem=issuer.public_pem,
            redis=runtime.redis,
        )
        runtime.verifier = verifier
        app.state.token_verifier = verifier
        await run_db(ensure_indexes)
        users = UsersDomain(
            settings,
            issuer=issuer,
            verifier=verifier,
            redis=runtime.redis,
            passwords=passwords,
            limiter=LoginRateLimiter(
                runtime.redis,
                prefix=settings.rate_limit_prefix,
                per_email=Limit(
                    settings.login_max_failures_per_email, settings.login_failure_window_seconds
                ),
                per_address=Limit(
                    settings.login_max_attempts_per_address, settings.login_address_window_seconds
                ),
            ),
            outbox_written=runtime.outbox_written,
            clock=clock or utcnow,
        )
        app.state.domain = users
        if settings.admin_email and settings.admin_password:
            await users.ensure_admin(
                settings.admin_email,
                settings.admin_password.get_secret_value(),
                settings.admin_name,
            )
        sweeper = start_periodic(
            settings.refresh_sweep_interval_seconds,
            functools.partial(_sweep_refresh_tokens, users),
            name="refresh-sweep",
        )
        try:
            yield
        finally:
            await cancel_and_wait(sweeper)
            await runtime.stop()

    app = create_herald_app(
        service="users",
        title="Herald users",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.issuer = issuer
    app.state.public_keys = [issuer.public_pem, *settings.previous_public_keys_pem]
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(jwks_router)
    return app
