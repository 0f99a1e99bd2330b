"""Storage operations on the users database (synchronous: call through ``run_db``).

Every change of a user that others must learn about is one conditional single-document
update: it matches the revision the change was computed from, increments it, and stages
the event carrying the new revision (:func:`herald_common.outbox.outbox_update`). A
concurrent change makes the condition fail and the caller recomputes; so revision order
and event order are the order of the stored states.

The refresh-token state is insert-only: unique ids decide races there, on any
MongoDB-compatible server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from herald_common.errors import Conflict
from herald_common.events import Envelope
from herald_common.outbox import outbox_update
from mongoengine.errors import NotUniqueError

from herald_users.models import RefreshToken, RefreshTokenUse, RevokedSession, User


def find_by_email(email: str) -> User | None:
    """The live account with this (normalized) email."""
    return User.objects(email=email, deleted_at=None).first()


def get_live(user_id: str) -> User | None:
    return User.objects(id=user_id, deleted_at=None).first()


def get_any(user_id: str) -> User | None:
    """Including tombstones."""
    return User.objects(id=user_id).first()


def get_many(user_ids: list[str]) -> list[User]:
    return list(User.objects(id__in=user_ids, deleted_at=None))


def insert_user(user: User) -> None:
    """Insert a new account with its staged ``user.registered`` (one atomic insert)."""
    try:
        user.save(force_insert=True)
    except NotUniqueError as exc:
        # ids are random, so the unique key that clashed is the email.
        raise Conflict("an account with this email already exists", field="email") from exc


def apply_change(
    user_id: str,
    expected_revision: int,
    event: Envelope[Any],
    *,
    now: datetime,
    set_fields: dict[str, Any] | None = None,
    unset_fields: tuple[str, ...] = (),
) -> bool:
    """Change a live user and stage ``event`` in one write if it is still at
    ``expected_revision``; False when it changed meanwhile (or was deleted)."""
    update: dict[str, Any] = {
        "inc__revision": 1,
        "set__updated_at": now,
        **{f"set__{key}": value for key, value in (set_fields or {}).items()},
        **{f"unset__{key}": True for key in unset_fields},
        **outbox_update(event),
    }
    try:
        changed = User.objects(id=user_id, revision=expected_revision, deleted_at=None).update_one(
            **update
        )
    except NotUniqueError as exc:
        raise Conflict("an account with this email already exists", field="email") from exc
    return bool(changed)


def set_credentials(
    user_id: str, *, password_hash: str | None = None, roles: list[str] | None = None
) -> None:
    """Change what is not part of the replicated snapshot (no event, no revision)."""
    update: dict[str, Any] = {}
    if password_hash is not None:
        update["set__password_hash"] = password_hash
    if roles is not None:
        update["set__roles"] = roles
    if update:
        User.objects(id=user_id, deleted_at=None).update_one(**update)


# --- refresh tokens -----------------------------------------------------------------------

Claim = Literal["ok", "unknown", "used", "revoked", "expired"]


def insert_refresh(record: RefreshToken) -> None:
    record.save(force_insert=True)


def session_revoked(family: str) -> bool:
    return RevokedSession.objects(family=family).first() is not None


def claim_refresh(jti: str, now: datetime) -> tuple[Claim, RefreshToken | None]:
    """Use a refresh token once. The unique insert decides between concurrent uses."""
    record = RefreshToken.objects(jti=jti).first()
    if record is None:
        return "unknown", None
    if session_revoked(record.family):
        return "revoked", record
    if _aware(record.expires_at) <= now:
        return "expired", record
    try:
        RefreshTokenUse(jti=jti, used_at=now, expires_at=record.expires_at).save(force_insert=True)
    except NotUniqueError:
        return "used", record
    return "ok", record


def revoke_sessions(
    families: list[str], *, user_id: str, reason: str, now: datetime, until: datetime
) -> list[RefreshToken]:
    """Revoke sessions (idempotent: the first reason stays); returns their tokens so
    their access tokens can be deny-listed."""
    for family in dict.fromkeys(families):
        try:
            RevokedSession(
                family=family, user_id=user_id, reason=reason, revoked_at=now, expires_at=until
            ).save(force_insert=True)
        except NotUniqueError:
            pass  # the session was already revoked: revocation is idempotent
    return list(RefreshToken.objects(family__in=families)) if families else []


def families_of(user_id: str) -> list[str]:
    return sorted(RefreshToken.objects(user_id=user_id).distinct("family"))


def sweep_refresh(now: datetime) -> int:
    """Delete records past their expiry (FerretDB has no TTL indexes); returns how many
    refresh tokens went."""
    removed = int(RefreshToken.objects(expires_at__lt=now).delete())
    RefreshTokenUse.objects(expires_at__lt=now).delete()
    RevokedSession.objects(expires_at__lt=now).delete()
    return removed


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
