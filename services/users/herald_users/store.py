"""Storage operations on the users database (synchronous: call through ``run_db``).

Every change of a user that others must learn about is one conditional single-document
update: it matches the revision the change was computed from, increments it, and stages
the event carrying the new revision (:func:`herald_common.outbox.outbox_update`). A
concurrent change makes the condition fail and the caller recomputes; so revision order
and event order are the order of the stored states.

The refresh-token state is insert-only: unique ids decide races there, on any
MongoDB-compatible server.

Every query is an equality on ``_id`` or on the leading field of an index, the only
filters the local MongoDB-compatible server (FerretDB) answers from an index: batches of
ids are concurrent point lookups, the expiry sweep deletes whole ``expires_day`` days.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Literal

import mongoengine
from herald_common.db import collection, find_in
from herald_common.errors import Conflict
from herald_common.events import Envelope
from herald_common.outbox import outbox_update
from mongoengine.errors import NotUniqueError

from herald_users.models import (
    EXPIRING,
    EXPIRY_DAYS,
    Expiring,
    RefreshToken,
    RefreshTokenUse,
    RevokedSession,
    User,
    state,
    utc_day,
)


def find_by_email(email: str) -> User | None:
    """The live account with this (normalized) email."""
    return User.objects(email=email, deleted_at=None).first()


def get_live(user_id: str) -> User | None:
    return User.objects(id=user_id, deleted_at=None).first()


def get_any(user_id: str) -> User | None:
    """Including tombstones."""
    return User.objects(id=user_id).first()


def get_many(user_ids: list[str]) -> list[User]:
    """The live users among ``user_ids`` (each id once, in the order asked), read with
    :func:`~herald_common.db.find_in`."""
    ids = list(dict.fromkeys(user_ids))
    found = {d["_id"]: d for d in find_in(collection(User), "_id", ids, where={"deleted_at": None})}
    return [User._from_son(found[i]) for i in ids if i in found]


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


# (database, day) pairs this process knows are in ``expiry_days``: registering a day
# costs one write per process and day, not one per record.
_registered: set[tuple[str, str]] = set()
_registered_lock = threading.Lock()


def _register_day(day: str) -> None:
    """Make sure the sweep will visit ``day`` (before a record of that day is written)."""
    key = (mongoengine.get_db().name, day)
    with _registered_lock:
        if key in _registered:
            return
    state().update_one({"_id": EXPIRY_DAYS}, {"$addToSet": {"days": day}}, upsert=True)
    with _registered_lock:
        _registered.add(key)


def _insert_expiring(record: Expiring) -> None:
    """Insert a swept record (``NotUniqueError`` when its id exists)."""
    record.clean()
    assert record.expires_day is not None
    _register_day(record.expires_day)
    record.save(force_insert=True)


def insert_refresh(record: RefreshToken) -> None:
    _insert_expiring(record)


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
        _insert_expiring(RefreshTokenUse(jti=jti, used_at=now, expires_at=record.expires_at))
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
            _insert_expiring(
                RevokedSession(
                    family=family, user_id=user_id, reason=reason, revoked_at=now, expires_at=until
                )
            )
        except NotUniqueError:
            pass  # the session was already revoked: revocation is idempotent
    # One indexed equality per session (a user has a handful).
    return [
        record
        for family in dict.fromkeys(families)
        for record in RefreshToken.objects(family=family)
    ]


def families_of(user_id: str) -> list[str]:
    return sorted(RefreshToken.objects(user_id=user_id).distinct("family"))


def sweep_refresh(now: datetime) -> int:
    """Delete records past their expiry (FerretDB has no TTL indexes); returns how many
    refresh tokens went.

    The days in ``expiry_days`` before today are deleted whole and forgotten; today's
    records are deleted if their ``expires_at`` has passed (the equality on
    ``expires_day`` selects them from the index, the time is checked on those few).
    With nothing to do a sweep costs one ``_id`` read and one indexed delete per
    collection. A record is written only with a day not yet past (its expiry is in the
    future), so a forgotten day gets no new records.
    """
    today = utc_day(now)
    doc = state().find_one({"_id": EXPIRY_DAYS}) or {}
    removed = 0
    for day in sorted(d for d in doc.get("days") or [] if d <= today):
        where: dict[str, Any] = {"expires_day": day}
        if day == today:
            where["expires_at"] = {"$lt": now}
        for document in EXPIRING:
            n = int(collection(document).delete_many(where).deleted_count)
            if document is RefreshToken:
                removed += n
        if day < today:
            state().update_one({"_id": EXPIRY_DAYS}, {"$pull": {"days": day}})
            with _registered_lock:
                _registered.discard((mongoengine.get_db().name, day))
    return removed


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
