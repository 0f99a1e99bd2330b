"""What the users service does: accounts, sessions, profile and preferences.

Routes call these methods; these call :mod:`herald_users.store` (in a worker thread)
and Redis. Errors are typed :mod:`herald_common.errors` naming the field.

Sessions: a login starts a *family* (session id ``sid`` in both tokens). Refreshing
uses a refresh token once and issues a new pair of the same family; presenting a used
refresh token again revokes the whole family, including its live access token.

Long module: the account use cases (registration, admin bootstrap) and the session use
cases (login, refresh rotation, logout, revocation) share the clock, the outbox staging
and the token issuer; kept together so the rules of one session family read in one place.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.auth import Principal, TokenIssuer, TokenVerifier
from herald_common.clock import Clock, to_millis, utcnow
from herald_common.db import run_db
from herald_common.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from herald_common.events import Envelope
from herald_common.preferences import Preferences, PreferencesPatch
from herald_common.redis_client import revoke_token
from pydantic import ValidationError

from herald_users import events, store
from herald_users.config import UsersSettings
from herald_users.credentials import (
    Passwords,
    check_password_policy,
    normalize_email,
    normalize_name,
)
from herald_users.models import RefreshToken, User
from herald_users.ratelimit import LoginRateLimiter

log = logging.getLogger(__name__)

USER_ROLES = ["user"]
ADMIN_ROLES = ["user", "admin"]
MAX_CHANGE_ATTEMPTS = 10


def apply_patch(current: Preferences, patch: PreferencesPatch, prefix: str = "") -> Preferences:
    """``current`` with ``patch`` applied; a field set to an invalid value (e.g. null)
    is a BadUserInput naming it."""
    try:
        return current.apply(patch)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise BadUserInput(message, field=f"{prefix}{field}") from exc


def preferences_of(user: User) -> Preferences:
    return Preferences.model_validate(user.preferences or {})


@dataclass(frozen=True)
class Session:
    """A freshly issued token pair."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User


class Accounts:
    """Creating accounts and bootstrapping the admin (also used by the CLI, which
    needs no signing key or Redis)."""

    def __init__(
        self,
        passwords: Passwords,
        *,
        clock: Clock = utcnow,
        outbox_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.passwords = passwords
        self.clock = clock
        self.outbox_written = outbox_written

    def now(self) -> datetime:
        return to_millis(self.clock())

    async def create(
        self,
        *,
        name: str,
        email: str,
        password: str,
        preferences: PreferencesPatch | None,
        roles: list[str],
    ) -> User:
        email = normalize_email(email)
        name = normalize_name(name)
        check_password_policy(password, email)
        prefs = apply_patch(Preferences(), preferences or PreferencesPatch(), "preferences.")
        if await run_db(store.find_by_email, email) is not None:
            # Checked first so a taken email costs no hashing; the unique index decides.
            raise Conflict("an account with this email already exists", field="email")
        password_hash = await asyncio.to_thread(self.passwords.hash, password)
        now = self.now()
        user = User(
            id=uuid.uuid4().hex,
            name=name,
            email=email,
            password_hash=password_hash,
            roles=list(roles),
            preferences=prefs.model_dump(mode="json"),
            revision=1,
            created_at=now,
            updated_at=now,
        )
        user.stage(
            events.user_registered(
                user_id=user.id,
                name=name,
                email=email,
                roles=list(roles),
                preferences=prefs,
                revision=1,
                created_at=now,
            )
        )
        await run_db(store.insert_user, user)
        self.outbox_written()
        log.info("user registered", extra={"user_id": user.id})
        return user

    async def ensure_admin(self, email: str, password: str, name: str) -> User:
        """Create the admin account or make sure it has the admin role and this
        password. Idempotent; safe when several instances start at once."""
        email = normalize_email(email, field="admin_email")
        check_password_policy(password, email, field="admin_password")
        for _ in range(2):
            user = await run_db(store.find_by_email, email)
            if user is None:
                try:
                    return await self.create(
                        name=name,
                        email=email,
                        password=password,
                        preferences=None,
                        roles=ADMIN_ROLES,
                    )
                except Conflict:
                    continue  # created concurrently: update that one
            roles = None if "admin" in user.roles else [*user.roles, "admin"]
            matches = await asyncio.to_thread(self.passwords.verify, user.password_hash, password)
            new_hash = None if matches else await asyncio.to_thread(self.passwords.hash, password)
            await run_db(store.set_credentials, user.id, password_hash=new_hash, roles=roles)
            return await run_db(store.get_live, user.id) or user
        raise Conflict("could not create the admin account", field="admin_email")


class UsersDomain:
    """The service's operations, bound to its storage, Redis and signing key."""

    def __init__(
        self,
        settings: UsersSettings,
        *,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        redis: Any,
        passwords: Passwords,
        limiter: LoginRateLimiter,
        outbox_written: Callable[[], None] = lambda: None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.issuer = issuer
        self.verifier = verifier
        self.redis = redis
        self.passwords = passwords
        self.limiter = limiter
        self.outbox_written = outbox_written
        self.clock = clock
        self.accounts = Accounts(passwords, clock=clock, outbox_written=outbox_written)
        self.access_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
        self.refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)

    def now(self) -> datetime:
        return to_millis(self.clock())

    # --- accounts -------------------------------------------------------------------------

    async def register(
        self, *, name: str, email: str, password: str, preferences: PreferencesPatch | None
    ) -> Session:
        """Create an account (role ``user``) and log it in."""
        user = await self.accounts.create(
            name=name, email=email, password=password, preferences=preferences, roles=USER_ROLES
        )
        return await self._issue(user, family=uuid.uuid4().hex)

    async def ensure_admin(self, email: str, password: str, name: str) -> User:
        """See :meth:`Accounts.ensure_admin`."""
        return await self.accounts.ensure_admin(email, password, name)

    async def get(self, caller: Principal, user_id: str) -> User:
        """A user as seen by ``caller``: themselves, or anyone for an admin."""
        if user_id != caller.user_id and not caller.is_admin:
            raise Forbidden("only an admin may read another user", field="id")
        user = await run_db(store.get_live, user_id)
        if user is None:
            raise NotFound("no such user", field="id")
        return user

    async def get_many(self, user_ids: list[str]) -> list[User]:
        """Live users among ``user_ids``, in the order asked (unknown ids are skipped)."""
        found = {u.id: u for u in await run_db(store.get_many, user_ids)}
        return [found[i] for i in dict.fromkeys(user_ids) if i in found]

    async def _change(
        self,
        user_id: str,
        compute: Callable[[User, int], tuple[Envelope[Any], dict[str, Any]] | None],
        unset_fields: tuple[str, ...] = (),
    ) -> User:
        """Apply ``compute(user, next_revision) -> (event, fields)`` with optimistic
        concurrency; ``None`` from ``compute`` means nothing changes (no event)."""
        for _ in range(MAX_CHANGE_ATTEMPTS):
            user = await run_db(store.get_live, user_id)
            if user is None:
                raise NotFound("no such user", field="id")
            change = compute(user, user.revision + 1)
            if change is None:
                return user
            event, fields = change
            if await run_db(
                store.apply_change,
                user_id,
                user.revision,
                event,
                now=self.now(),
                set_fields=fields,
                unset_fields=unset_fields,
            ):
                self.outbox_written()
                changed = await run_db(store.get_any, user_id)
                assert changed is not None  # tombstones are never removed
                return changed
        raise Conflict("the user is being changed concurrently; try again")

    async def update_profile(self, caller: Principal, *, name: str | None) -> User:
        """Change the caller's name; publishes ``user.preferences_updated``."""
        if name is None:
            return await self.get(caller, caller.user_id)
        new_name = normalize_name(name)

        def compute(user: User, revision: int) -> tuple[Envelope[Any], dict[str, Any]] | None:
            if user.name == new_name:
                return None
            event = events.user_preferences_updated(
                user_id=user.id,
                name=new_name,
                email=user.email,
                preferences=preferences_of(user),
                revision=revision,
            )
            return event, {"name": new_name}

        return await self._change(caller.user_id, compute)

    async def update_preferences(self, caller: Principal, patch: PreferencesPatch) -> User:
        """Partial preferences update; publishes ``user.preferences_updated`` (snapshot)."""

        def compute(user: User, revision: int) -> tuple[Envelope[Any], dict[str, Any]] | None:
            current = preferences_of(user)
            updated = apply_patch(current, patch)
            if updated == current:
                return None
            event = events.user_preferences_updated(
                user_id=user.id,
                name=user.name,
                email=user.email,
                preferences=updated,
                revision=revision,
            )
            return event, {"preferences": updated.model_dump(mode="json")}

        return await self._change(caller.user_id, compute)

    async def delete(self, caller: Principal) -> None:
        """Delete the caller's account: a tombstone without personal data remains (for
        the outbox and so the id is never reused), the email is free again, every
        session is revoked; publishes ``user.deleted``."""
        now = self.now()

        def compute(user: User, revision: int) -> tuple[Envelope[Any], dict[str, Any]]:
            fields = {
                "deleted_at": now,
                "email": f"deleted:{user.id}",
                "name": "",
                "roles": [],
                "preferences": {},
            }
            return events.user_deleted(user_id=user.id, revision=revision), fields

        await self._change(caller.user_id, compute, unset_fields=("password_hash",))
        await self._deny(caller.jti, caller.expires_at)
        families = await run_db(store.families_of, caller.user_id)
        await self._revoke(families, caller.user_id, "account deleted")
        log.info("user deleted", extra={"user_id": caller.user_id})

    # --- sessions ------------------------------------------------------------------------

    async def _issue(self, user: User, family: str) -> Session:
        now = self.now()
        access, access_claims = self.issuer.issue(
            user.id, roles=user.roles, ttl=self.access_ttl, now=now, extra={"sid": family}
        )
        refresh, refresh_claims = self.issuer.issue(
            user.id,
            token_type="refresh",  # noqa: S106 - a token type, not a password
            ttl=self.refresh_ttl,
            now=now,
            extra={"sid": family},
        )
        record = RefreshToken(
            jti=refresh_claims["jti"],
            user_id=user.id,
            family=family,
            access_jti=access_claims["jti"],
            access_expires_at=datetime.fromtimestamp(access_claims["exp"], UTC),
            issued_at=now,
            expires_at=datetime.fromtimestamp(refresh_claims["exp"], UTC),
        )
        await run_db(store.insert_refresh, record)
        # A revocation that raced with this rotation must cover the new pair too.
        if await run_db(store.session_revoked, family):
            await self._deny(record.access_jti, record.access_expires_at)
            raise Unauthenticated("the session was revoked")
        return Session(
            access_token=access,
            refresh_token=refresh,
            expires_in=int(self.access_ttl.total_seconds()),
            user=user,
        )

    async def login(self, *, email: str, password: str, address: str | None) -> Session:
        """Check the credentials (rate limited per email and address); new session."""
        key = email.strip().lower() if isinstance(email, str) else ""
        await self.limiter.check_attempt(key, address)
        normalized = normalize_email(email)
        user = await run_db(store.find_by_email, normalized)
        ok = await asyncio.to_thread(
            self.passwords.verify, user.password_hash if user else None, password
        )
        if not ok or user is None:
            await self.limiter.record_failure(key)
            raise Unauthenticated("wrong email or password")
        await self.limiter.record_success(key)
        if user.password_hash and self.passwords.needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(self.passwords.hash, password)
            await run_db(store.set_credentials, user.id, password_hash=new_hash)
        return await self._issue(user, family=uuid.uuid4().hex)

    async def refresh(self, refresh_token: str) -> Session:
        """Rotate: use ``refresh_token`` once, issue a new pair of the same session."""
        claims = await self.verifier.decode(refresh_token, "refresh")
        outcome, record = await run_db(store.claim_refresh, str(claims["jti"]), self.now())
        if outcome == "unknown" or record is None:
            raise Unauthenticated("unknown refresh token")
        if outcome == "used":
            # Someone holds a copy of a token already rotated: end the session for
            # both the thief and the user (who will have to log in again).
            await self._revoke([record.family], record.user_id, "refresh token reused")
            log.warning("refresh token reuse", extra={"user_id": record.user_id})
            raise Unauthenticated("refresh token already used; the session is revoked")
        if outcome == "revoked":
            raise Unauthenticated("refresh token revoked")
        if outcome == "expired":
            raise Unauthenticated("refresh token expired")
        user = await run_db(store.get_live, record.user_id)
        if user is None or user.id != claims["sub"]:
            raise Unauthenticated("the account no longer exists")
        return await self._issue(user, family=record.family)

    async def logout(self, caller: Principal, refresh_token: str | None) -> None:
        """Revoke the caller's access token and its session (and the session of
        ``refresh_token`` when given)."""
        families: set[str] = set()
        if refresh_token:
            try:
                refresh_claims = await self.verifier.decode(refresh_token, "refresh")
            except Unauthenticated:
                refresh_claims = None  # unusable anyway: nothing to revoke
            if refresh_claims is not None:
                if refresh_claims["sub"] != caller.user_id:
                    raise Forbidden(
                        "the refresh token belongs to someone else", field="refresh_token"
                    )
                if refresh_claims.get("sid"):
                    families.add(str(refresh_claims["sid"]))
        claims = await self.verifier.decode(caller.token, "access")
        if claims.get("sid"):
            families.add(str(claims["sid"]))
        await self._deny(caller.jti, caller.expires_at)
        await self._revoke(sorted(families), caller.user_id, "logout")

    async def _deny(self, jti: str | None, expires_at: datetime | int | None) -> None:
        """Deny-list an access token for the rest of its lifetime (plus the verifiers'
        clock leeway)."""
        if not jti or expires_at is None:
            return
        exp = expires_at.timestamp() if isinstance(expires_at, datetime) else float(expires_at)
        remaining = math.ceil(exp - self.clock().timestamp()) + self.verifier.leeway
        if remaining > 0:
            # Deny-listed and announced together: gateways close its WebSockets at once.
            await revoke_token(self.redis, jti, remaining)

    async def _revoke(self, families: list[str], user_id: str, reason: str) -> None:
        """Revoke sessions and deny-list their live access tokens."""
        if not families:
            return
        now = self.now()
        records = await run_db(
            store.revoke_sessions,
            families,
            user_id=user_id,
            reason=reason,
            now=now,
            until=now + self.refresh_ttl,
        )
        for record in records:
            await self._deny(record.access_jti, record.access_expires_at)

    async def sweep(self) -> int:
        """Drop expired refresh-token records; returns how many."""
        return await run_db(store.sweep_refresh, self.now())
