"""Reading and changing users: profile, preferences, deletion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Response
from herald_common.app import Admin, Caller
from herald_common.auth import Principal
from herald_common.errors import BadUserInput, Unavailable
from herald_common.preferences import PreferencesPatch
from herald_common.unsubscribe import secret_for, verify
from pydantic import BaseModel

from herald_users.api.schemas import ProfilePatch, UserOut, Users, errors

router = APIRouter(prefix="/v1/users", tags=["users"])
MAX_IDS = 500


@router.get("/me", responses=errors(401, 404))
async def get_me(caller: Caller, users: Users) -> UserOut:
    """The caller."""
    return UserOut.of(await users.get(caller, caller.user_id))


@router.patch("/me", responses=errors(400, 401, 404))
async def update_me(
    body: ProfilePatch,
    caller: Caller,
    users: Users,
) -> UserOut:
    """Change the caller's profile (``name``). Publishes ``user.preferences_updated``
    when something changed."""
    if "name" in body.model_fields_set and body.name is None:
        raise BadUserInput("name must not be null", field="name")
    return UserOut.of(await users.update_profile(caller, name=body.name))


@router.patch("/me/preferences", responses=errors(400, 401, 404))
async def update_preferences(
    patch: PreferencesPatch,
    caller: Caller,
    users: Users,
) -> UserOut:
    """Partial update of the caller's notification preferences: only the fields present
    change (``quiet_hours: null`` and ``max_promotions_per_day: null`` clear them).
    Publishes ``user.preferences_updated`` with the full snapshot when something changed.
    """
    return UserOut.of(await users.update_preferences(caller, patch))


@router.delete("/me", status_code=204, response_class=Response, responses=errors(401, 404))
async def delete_me(caller: Caller, users: Users) -> Response:
    """Delete the caller's account and revoke all its sessions. Publishes
    ``user.deleted``; the email can be registered again."""
    await users.delete(caller)
    return Response(status_code=204)


class UnsubscribeResult(BaseModel):
    """What a one-click unsubscribe turned off."""

    user_id: str
    type: str
    preferences: dict[str, Any]


@router.post("/unsubscribe/{token}", responses=errors(400, 404, 503))
async def unsubscribe(token: str = Path(max_length=1000), *, users: Users) -> UnsubscribeResult:
    """One-click unsubscribe (RFC 8058): the signed token of an email's
    ``List-Unsubscribe`` link (no bearer token; the signature is the credential) turns
    that notification type off for its user. Repeating it changes nothing."""
    settings = users.settings
    try:
        secret = secret_for(settings.unsubscribe_secret, settings.environment)
    except ValueError as exc:
        raise Unavailable("unsubscribe links are not configured on this server") from exc
    user_id, type_ = verify(secret, token)
    field = {"promotion": "promotions", "recommendation": "recommendations"}[type_]
    user = await users.update_preferences(
        Principal(user_id=user_id), PreferencesPatch.model_validate({field: False})
    )
    out = UserOut.of(user)
    return UnsubscribeResult(
        user_id=user_id, type=type_, preferences=out.preferences.model_dump(mode="json")
    )


@router.get("/{user_id}", responses=errors(401, 403, 404))
async def get_user(
    user_id: str,
    caller: Caller,
    users: Users,
) -> UserOut:
    """A user by id: the caller themselves, or anyone for an admin (else 403)."""
    return UserOut.of(await users.get(caller, user_id))


@router.get("", responses=errors(400, 401, 403))
async def list_users(
    ids: str = Query(description="Comma-separated user ids", examples=["a1,b2"]),
    *,
    _: Admin,
    users: Users,
) -> list[UserOut]:
    """Users by id (admin): live users among ``ids``, in that order; unknown ids are
    left out."""
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if len(wanted) > MAX_IDS:
        raise BadUserInput(f"at most {MAX_IDS} ids at once", field="ids")
    return [UserOut.of(u) for u in await users.get_many(wanted)]
