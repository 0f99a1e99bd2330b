"""Storage operations on the users database (synchronous: call through ``run_db``).

Every change of a user that others must learn about is one conditional single-document
update: it matches the revision the change was computed from, increments it, and stages
the event carrying the new revision (:func:`herald_common.outbox.outbox_update`). A
concurrent change makes the condition fail and the caller recomputes; so revision order
and event order are the order of the stored states.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald_common.errors import Conflict
from herald_common.events import Envelope
from herald_common.outbox import outbox_update
from mongoengine.errors import NotUniqueError

from herald_users.models import RefreshToken, User


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


def insert_refresh(record: RefreshToken) -> None:
    record.save(force_insert=True)


def claim_refresh(jti: str, now: datetime) -> bool:
    """Mark an unused, unrevoked, unexpired refresh token used; True if this call did."""
    return bool(
        RefreshToken.objects(jti=jti, used=False, revoked=False, expires_at__gt=now).update_one(
            set__used=True, set__used_at=now
        )
    )


def get_refresh(jti: str) -> RefreshToken | None:
    return RefreshToken.objects(jti=jti).first()


def revoke_refresh(query: dict[str, Any], reason: str) -> list[RefreshToken]:
    """Revoke matching refresh tokens; returns them (for their access tokens)."""
    records = list(RefreshToken.objects(**query))
    if records:
        # Keep the first reason of an already revoked token.
        RefreshToken.objects(**query, revoked=False).update(
            set__revoked=True, set__revoked_reason=reason
        )
    return records


def sweep_refresh(now: datetime) -> int:
    """Delete refresh-token records past their expiry (FerretDB has no TTL indexes)."""
    return int(RefreshToken.objects(expires_at__lt=now).delete())
