"""Documents of the users database (``herald_users``).

``users``: one document per account. Events about a user are staged inside it
(:class:`~herald_common.outbox.OutboxDocument`) in the same single-document write as the
change, and ``revision`` grows by one in that write.

A deleted account stays as a tombstone (``deleted_at`` set, personal data and
credentials removed) so its staged ``user.deleted`` event survives until the relay has
published it and the id is never reused. Its email becomes ``deleted:<id>``: the unique
email index keeps holding (FerretDB has no partial indexes) and the address can be used
to register again.

``refresh_tokens``, ``refresh_token_uses``, ``revoked_sessions``: sessions, refresh-token
rotation and reuse detection, insert-only. Each record carries ``expires_day``, the UTC
date of its ``expires_at``: the expiry sweep deletes whole days by equality (the local
MongoDB-compatible server answers only top-level equalities from an index, a range such
as ``expires_at < now`` reads the whole collection). ``store_state`` holds the days that
have records (``expiry_days``); records of the older layout get ``expires_day`` once
(``herald_common.db.run_once`` marker ``users.expires_day``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald_common.clock import utc_day
from herald_common.db import collection, named, run_once
from herald_common.outbox import OutboxDocument
from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    StringField,
)

# Collection of the store's own bookkeeping (see the module docstring).
STATE = "store_state"
EXPIRY_DAYS = "expiry_days"  # {_id, days: ["2026-01-31", ...]}
BACKFILL = "users.expires_day"  # herald_common.db.run_once marker


class Expiring(Document):
    """A record swept when ``expires_at`` has passed; ``expires_day`` follows it."""

    meta: dict[str, Any] = {"abstract": True}

    expires_at = DateTimeField(required=True)
    expires_day = StringField()  # UTC date of expires_at; set on every save

    def clean(self) -> None:
        if self.expires_at is not None:
            self.expires_day = utc_day(self.expires_at)


class User(OutboxDocument):
    """A Herald account."""

    id = StringField(primary_key=True)
    name = StringField(required=True, default="")
    email = StringField(required=True)  # normalized; unique
    password_hash = StringField()
    roles = ListField(StringField(), default=lambda: ["user"])
    preferences = DictField(default=dict)  # Preferences.model_dump(mode="json")
    revision = IntField(required=True, default=1, min_value=1)
    created_at = DateTimeField(required=True)
    updated_at = DateTimeField(required=True)
    deleted_at = DateTimeField(null=True)

    meta: dict[str, Any] = {
        "collection": "users",
        "indexes": [{"fields": ["email"], "unique": True}],
        "auto_create_index": False,  # created once at startup, not on every save
    }

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class RefreshToken(Expiring):
    """An issued refresh token (never updated: its state lives in the two
    insert-only collections below, whose unique ids make "use once" and "revoke"
    atomic even on servers without atomic conditional updates, such as FerretDB).

    ``family`` is the login session: every rotation issues a new token of the same
    family. ``access_jti``/``access_expires_at`` name the access token issued with it,
    so revoking a session also deny-lists its live access tokens.
    """

    jti = StringField(primary_key=True)
    user_id = StringField(required=True)
    family = StringField(required=True)
    access_jti = StringField(required=True)
    access_expires_at = DateTimeField(required=True)
    issued_at = DateTimeField(required=True)

    meta = {
        "collection": "refresh_tokens",
        "indexes": ["family", "user_id", "expires_day"],
        "auto_create_index": False,
    }


class RefreshTokenUse(Expiring):
    """A refresh token that was exchanged: the first insert wins, a second use is reuse.
    ``expires_at`` is the token's: when this can be swept."""

    jti = StringField(primary_key=True)
    used_at = DateTimeField(required=True)

    meta = {
        "collection": "refresh_token_uses",
        "indexes": ["expires_day"],
        "auto_create_index": False,
    }


class RevokedSession(Expiring):
    """A revoked session (refresh-token family): logout, reuse detected, deletion.
    No token of the family outlives ``expires_at``."""

    family = StringField(primary_key=True)
    user_id = StringField(required=True)
    reason = StringField(required=True)
    revoked_at = DateTimeField(required=True)

    meta = {
        "collection": "revoked_sessions",
        "indexes": ["expires_day"],
        "auto_create_index": False,
    }


EXPIRING: tuple[type[Expiring], ...] = (RefreshToken, RefreshTokenUse, RevokedSession)


def state() -> Any:
    """The ``store_state`` collection (raw: single-document atomic updates)."""
    return named(STATE)


def ensure_indexes() -> None:
    """Create the indexes (idempotent); called at startup and by the CLI. Records of an
    older layout get their ``expires_day`` once per database (a marker remembers it)."""
    documents: tuple[type[Document], ...] = (User, *EXPIRING)
    for document in documents:
        document.ensure_indexes()
    run_once(BACKFILL, lambda: backfill_expires_day())


def backfill_expires_day() -> int:
    """Give records written before ``expires_day`` existed their day, register those days
    for the sweep and drop the ``expires_at`` indexes nothing uses any more. A one-off
    pass over the three collections (run by :func:`ensure_indexes`); returns how many
    records it changed."""
    days: set[str] = set()
    changed = 0
    for document in EXPIRING:
        coll = collection(document)
        for doc in coll.find({"expires_day": {"$exists": False}}, {"expires_at": 1}):
            if not isinstance(doc.get("expires_at"), datetime):
                continue
            day = utc_day(doc["expires_at"])
            coll.update_one({"_id": doc["_id"]}, {"$set": {"expires_day": day}})
            days.add(day)
            changed += 1
        if "expires_at_1" in coll.index_information():
            coll.drop_index("expires_at_1")
    if days:
        state().update_one(
            {"_id": EXPIRY_DAYS}, {"$addToSet": {"days": {"$each": sorted(days)}}}, upsert=True
        )
    return changed
