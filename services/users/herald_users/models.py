"""Documents of the users database (``herald_users``).

``users``: one document per account. Events about a user are staged inside it
(:class:`~herald_common.outbox.OutboxDocument`) in the same single-document write as the
change, and ``revision`` grows by one in that write.

A deleted account stays as a tombstone (``deleted_at`` set, personal data and
credentials removed) so its staged ``user.deleted`` event survives until the relay has
published it and the id is never reused. Its email becomes ``deleted:<id>``: the unique
email index keeps holding (FerretDB has no partial indexes) and the address can be used
to register again.

``refresh_tokens``: one record per issued refresh token (rotation and reuse detection).
"""

from __future__ import annotations

from herald_common.outbox import OutboxDocument
from mongoengine import (
    BooleanField,
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

    meta = {
        "collection": "users",
        "indexes": [{"fields": ["email"], "unique": True}],
        "auto_create_index": False,  # created once at startup, not on every save
    }

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class RefreshToken(Document):
    """An issued refresh token.

    ``family`` is the login session: every rotation issues a new token of the same
    family. A token presented again after it was used means it was copied, so the
    whole family is revoked. ``access_jti``/``access_expires_at`` name the access token
    issued with it, so revoking a family also deny-lists its live access token.
    """

    jti = StringField(primary_key=True)
    user_id = StringField(required=True)
    family = StringField(required=True)
    used = BooleanField(default=False)
    used_at = DateTimeField(null=True)
    revoked = BooleanField(default=False)
    revoked_reason = StringField(null=True)
    access_jti = StringField(null=True)
    access_expires_at = DateTimeField(null=True)
    issued_at = DateTimeField(required=True)
    expires_at = DateTimeField(required=True)

    meta = {
        "collection": "refresh_tokens",
        "indexes": ["family", "user_id", "expires_at"],
        "auto_create_index": False,
    }


def ensure_indexes() -> None:
    """Create the indexes (idempotent); called at startup and by the CLI."""
    User.ensure_indexes()
    RefreshToken.ensure_indexes()
