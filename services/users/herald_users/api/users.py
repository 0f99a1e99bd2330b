"""Reading and changing users: profile, preferences, deletion."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from herald_common.app import admin_principal, current_principal
from herald_common.auth import Principal
from herald_common.errors import BadUserInput
from herald_common.preferences import PreferencesPatch

from herald_users.api.schemas import ProfilePatch, UserOut, domain, errors
from herald_users.domain import UsersDomain

router = APIRouter(prefix="/v1/users", tags=["users"])
MAX_IDS = 500


@router.get("/me", responses=errors(401, 404))
async def get_me(
    caller: Principal = Depends(current_principal), users: UsersDomain = Depends(domain)
) -> UserOut:
    """The caller."""
    return UserOut.of(await users.get(caller, caller.user_id))


@router.patch("/me", responses=errors(400, 401, 404))
async def update_me(
    body: ProfilePatch,
    caller: Principal = Depends(current_principal),
    users: UsersDomain = Depends(domain),
) -> UserOut:
    """Change the caller's profile (``name``). Publishes ``user.preferences_updated``
    when something changed."""
    if "name" in body.model_fields_set and body.name is None:
        raise BadUserInput("name must not be null", field="name")
    return UserOut.of(await users.update_profile(caller, name=body.name))


@router.patch("/me/preferences", responses=errors(400, 401, 404))
async def update_preferences(
    patch: PreferencesPatch,
    caller: Principal = Depends(current_principal),
    users: UsersDomain = Depends(domain),
) -> UserOut:
    """Partial update of the caller's notification preferences: only the fields present
    change (``quiet_hours: null`` and ``max_promotions_per_day: null`` clear them).
    Publishes ``user.preferences_updated`` with the full snapshot when something changed.
    """
    return UserOut.of(await users.update_preferences(caller, patch))


@router.delete("/me", status_code=204, response_class=Response, responses=errors(401, 404))
async def delete_me(
    caller: Principal = Depends(current_principal), users: UsersDomain = Depends(domain)
) -> Response:
    """Delete the caller's account and revoke all its sessions. Publishes
    ``user.deleted``; the email can be registered again."""
    await users.delete(caller)
    return Response(status_code=204)


@router.get("/{user_id}", responses=errors(401, 403, 404))
async def get_user(
    user_id: str,
    caller: Principal = Depends(current_principal),
    users: UsersDomain = Depends(domain),
) -> UserOut:
    """A user by id: the caller themselves, or anyone for an admin (else 403)."""
    return UserOut.of(await users.get(caller, user_id))


@router.get("", responses=errors(400, 401, 403))
async def list_users(
    ids: str = Query(description="Comma-separated user ids", examples=["a1,b2"]),
    _: Principal = Depends(admin_principal),
    users: UsersDomain = Depends(domain),
) -> list[UserOut]:
    """Users by id (admin): live users among ``ids``, in that order; unknown ids are
    left out."""
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if len(wanted) > MAX_IDS:
        raise BadUserInput(f"at most {MAX_IDS} ids at once", field="ids")
    return [UserOut.of(u) for u in await users.get_many(wanted)]
