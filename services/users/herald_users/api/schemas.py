"""Request and response bodies of the users API (snake_case JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Request
from herald_common.errors import ErrorBody
from herald_common.preferences import Preferences, PreferencesPatch
from pydantic import BaseModel, ConfigDict, Field

from herald_users.domain import Session, UsersDomain, preferences_of
from herald_users.models import User


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(Body):
    name: str = Field(max_length=1000, examples=["Ada Lovelace"])
    email: str = Field(max_length=1000, examples=["ada@example.com"])
    password: str = Field(max_length=4096, description="10-128 characters, two classes or more")
    preferences: PreferencesPatch | None = Field(
        default=None, description="Any subset; the rest takes the defaults"
    )


class LoginRequest(Body):
    email: str = Field(max_length=1000)
    password: str = Field(max_length=4096)


class RefreshRequest(Body):
    refresh_token: str = Field(min_length=1, max_length=8192)


class LogoutRequest(Body):
    refresh_token: str | None = Field(default=None, max_length=8192)


class ProfilePatch(Body):
    name: str | None = Field(default=None, max_length=1000)


class UserOut(BaseModel):
    """A user as the API shows it (never the password hash)."""

    id: str
    name: str
    email: str
    roles: list[str]
    preferences: Preferences
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            name=user.name,
            email=user.email,
            roles=list(user.roles),
            preferences=preferences_of(user),
            created_at=user.created_at,
        )


class AuthTokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    user: UserOut

    @classmethod
    def of(cls, session: Session) -> AuthTokens:
        return cls(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            expires_in=session.expires_in,
            user=UserOut.of(session.user),
        )


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI description of the typed error responses a route can give."""
    return {status: {"model": ErrorBody} for status in statuses}


def domain(request: Request) -> UsersDomain:
    """FastAPI dependency: the service's domain object (set up in the lifespan)."""
    users: UsersDomain = request.app.state.domain
    return users


# The typed route dependency: ``users: Users``.
Users = Annotated[UsersDomain, Depends(domain)]
