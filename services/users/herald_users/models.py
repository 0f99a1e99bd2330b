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
rotation and reuse detection, insert-only.
"""

from __future__ import annotations

from typing import Any

from herald_common.outbox import OutboxDocument
from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    StringField,
)


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


class RefreshToken(Document):
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
    expires_at = DateTimeField(required=True)

    meta = {
        "collection": "refresh_tokens",
        "indexes": ["family", "user_id", "expires_at"],
        "auto_create_index": False,
    }


class RefreshTokenUse(Document):
    """A refresh token that was exchanged: the first insert wins, a second use is reuse."""

    jti = StringField(primary_key=True)
    used_at = DateTimeField(required=True)
    expires_at = DateTimeField(required=True)  # of the token: when this can be swept

    meta = {
        "collection": "refresh_token_uses",
        "indexes": ["expires_at"],
        "auto_create_index": False,
    }


class RevokedSession(Document):
    """A revoked session (refresh-token family): logout, reuse detected, deletion."""

    family = StringField(primary_key=True)
    user_id = StringField(required=True)
    reason = StringField(required=True)
    revoked_at = DateTimeField(required=True)
    expires_at = DateTimeField(required=True)  # no token of the family outlives this

    meta = {
        "collection": "revoked_sessions",
        "indexes": ["expires_at"],
        "auto_create_index": False,
    }


def ensure_indexes() -> None:
    """Create the indexes (idempotent); called at startup and by the CLI."""
    for document in (User, RefreshToken, RefreshTokenUse, RevokedSession):
        document.ensure_indexes()
