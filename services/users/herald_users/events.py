"""Events the users service publishes (it consumes none).

Each builder takes the user's state *after* the change, so every event is a full
snapshot whose ``revision`` equals the stored one. They are staged in the outbox with
the change itself (see :mod:`herald_users.domain`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald_common.events import (
    Envelope,
    UserDeleted,
    UserPreferencesUpdated,
    UserRegistered,
    make_event,
)
from herald_common.preferences import Preferences

SOURCE = "users"


def user_registered(
    *,
    user_id: str,
    name: str,
    email: str,
    roles: list[str],
    preferences: Preferences,
    revision: int,
    created_at: datetime,
) -> Envelope[Any]:
    """``user.registered``: a new account, with everything a replica needs."""
    return make_event(
        UserRegistered(
            user_id=user_id,
            name=name,
            email=email,
            roles=list(roles),
            preferences=preferences,
            revision=revision,
            created_at=created_at,
        ),
        source=SOURCE,
    )


def user_preferences_updated(
    *, user_id: str, name: str, email: str, preferences: Preferences, revision: int
) -> Envelope[Any]:
    """``user.preferences_updated``: the profile or preferences changed (full snapshot)."""
    return make_event(
        UserPreferencesUpdated(
            user_id=user_id, name=name, email=email, preferences=preferences, revision=revision
        ),
        source=SOURCE,
    )


def user_deleted(*, user_id: str, revision: int) -> Envelope[Any]:
    """``user.deleted``: the account is gone; replicas drop it."""
    return make_event(UserDeleted(user_id=user_id, revision=revision), source=SOURCE)
