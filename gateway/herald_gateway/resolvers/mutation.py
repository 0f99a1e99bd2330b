"""Mutation resolvers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tartiflette import Resolver

from herald_gateway import mapping
from herald_gateway.activity import track_activity
from herald_gateway.cache import COUNTS, ENTITIES, ME
from herald_gateway.clients.services import replay_dead_letters
from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME
from herald_gateway.errors import bad_input
from herald_gateway.resolvers.common import service_of_queue

T = TypeVar("T")
MAX_INBOX_IDS = 100


async def _change(
    ctx: RequestContext, entities: tuple[str, ...], call: Callable[[], Awaitable[T]]
) -> T:
    """Run a change of the caller's data; the cached ``entities`` go whatever the outcome
    (even a failed call may have changed something, e.g. a timeout after commit)."""
    user = ctx.user()
    try:
        return await call()
    finally:
        await ctx.gateway.cache.invalidate(user.user_id, entities, "mutation")


@Resolver("Mutation.register", schema_name=SCHEMA_NAME)
async def resolve_register(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """Create an account; answers with tokens like ``login``."""
    data = args["input"]
    body: dict[str, Any] = {
        "name": data["name"],
        "email": data["email"],
        "password": data["password"],
    }
    if data.get("preferences"):
        body["preferences"] = mapping.preferences_patch(data["preferences"])
    tokens = await ctx.gateway.services.users.register(body, ctx.call)
    return mapping.auth_payload(tokens)


@Resolver("Mutation.login", schema_name=SCHEMA_NAME)
async def resolve_login(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    tokens = await ctx.gateway.services.users.login(args["email"], args["password"], ctx.call)
    return mapping.auth_payload(tokens)


@Resolver("Mutation.refreshToken", schema_name=SCHEMA_NAME)
async def resolve_refresh(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    tokens = await ctx.gateway.services.users.refresh(args["refreshToken"], ctx.call)
    return mapping.auth_payload(tokens)


@Resolver("Mutation.logout", schema_name=SCHEMA_NAME)
async def resolve_logout(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> bool:
    """Revokes the access token (and the refresh token when given)."""
    ctx.user()
    await ctx.gateway.services.users.logout(ctx.call, args.get("refreshToken"))
    return True


@Resolver("Mutation.updatePreferences", schema_name=SCHEMA_NAME)
async def resolve_update_preferences(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """Partial preferences update; the cached profile is dropped at once."""
    ctx.user()
    patch = mapping.preferences_patch(args["input"])
    if not patch:
        raise bad_input("input: give at least one preference to change", field="input")
    users = ctx.gateway.services.users
    updated = await _change(ctx, (ME,), lambda: users.update_preferences(patch, ctx.call))
    return mapping.user(updated)


@Resolver("Mutation.updateProfile", schema_name=SCHEMA_NAME)
async def resolve_update_profile(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    ctx.user()
    name = str(args["name"]).strip()
    if not name:
        raise bad_input("name: must not be empty", field="name")
    users = ctx.gateway.services.users
    updated = await _change(ctx, (ME,), lambda: users.update_me({"name": name}, ctx.call))
    return mapping.user(updated)


@Resolver("Mutation.deleteAccount", schema_name=SCHEMA_NAME)
async def resolve_delete_account(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> bool:
    user = ctx.user()
    await ctx.gateway.services.users.delete_me(ctx.call)
    await ctx.gateway.cache.invalidate(user.user_id, ENTITIES, "mutation")
    return True


@Resolver("Mutation.markNotificationRead", schema_name=SCHEMA_NAME)
async def resolve_mark_read(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    notes = ctx.gateway.services.notifications
    data = await _inbox_change(ctx, lambda: notes.mark_read(args["id"], ctx.call))
    return mapping.notification(data)


@Resolver("Mutation.markAllNotificationsRead", schema_name=SCHEMA_NAME)
async def resolve_mark_all_read(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    notes = ctx.gateway.services.notifications
    return await _inbox_change(ctx, lambda: notes.mark_all_read(ctx.call))


def _ids(args: dict[str, Any], *, required: bool = True) -> list[str] | None:
    raw = args.get("ids")
    if raw is None and not required:
        return None
    ids = [str(i) for i in raw or []]
    if len(ids) > MAX_INBOX_IDS:
        raise bad_input(f"ids: at most {MAX_INBOX_IDS} per call", field="ids")
    return ids


async def _inbox_change(ctx: RequestContext, call: Callable[[], Awaitable[T]]) -> T:
    """Run an inbox change; the cached counts go whatever the outcome."""
    return await _change(ctx, COUNTS, call)


@Resolver("Mutation.markNotificationsRead", schema_name=SCHEMA_NAME)
async def resolve_mark_many_read(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    """Up to 100 ids read; others' and unknown ids are skipped, not counted."""
    ids = _ids(args) or []
    notes = ctx.gateway.services.notifications
    return await _inbox_change(ctx, lambda: notes.mark_read_many(ids, ctx.call))


@Resolver("Mutation.markNotificationsSeen", schema_name=SCHEMA_NAME)
async def resolve_mark_seen(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    """The given ids (none: every unseen one) seen; returns how many changed."""
    ids = _ids(args, required=False)
    notes = ctx.gateway.services.notifications
    return await _inbox_change(ctx, lambda: notes.mark_seen(ids, ctx.call))


@Resolver("Mutation.archiveNotification", schema_name=SCHEMA_NAME)
async def resolve_archive(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    notes = ctx.gateway.services.notifications
    data = await _inbox_change(ctx, lambda: notes.change(args["id"], "archive", ctx.call))
    return mapping.notification(data)


@Resolver("Mutation.unarchiveNotification", schema_name=SCHEMA_NAME)
async def resolve_unarchive(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    notes = ctx.gateway.services.notifications
    data = await _inbox_change(ctx, lambda: notes.change(args["id"], "unarchive", ctx.call))
    return mapping.notification(data)


@Resolver("Mutation.archiveAllRead", schema_name=SCHEMA_NAME)
async def resolve_archive_all_read(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    notes = ctx.gateway.services.notifications
    return await _inbox_change(ctx, lambda: notes.archive_all_read(ctx.call))


@Resolver("Mutation.snoozeNotification", schema_name=SCHEMA_NAME)
async def resolve_snooze(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    """The service checks ``until`` (zone, future, ≤ 30 days: else BAD_USER_INPUT)."""
    notes = ctx.gateway.services.notifications
    until = str(args["until"])
    data = await _inbox_change(
        ctx, lambda: notes.change(args["id"], "snooze", ctx.call, until=until)
    )
    return mapping.notification(data)


@Resolver("Mutation.deleteNotification", schema_name=SCHEMA_NAME)
async def resolve_delete_notification(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> bool:
    """Owner only: anyone else gets NOT_FOUND, as for an id that does not exist."""
    notes = ctx.gateway.services.notifications
    await _inbox_change(ctx, lambda: notes.delete(args["id"], ctx.call))
    return True


@Resolver("Mutation.trackActivity", schema_name=SCHEMA_NAME)
async def resolve_track_activity(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    """Publishes ``activity.recorded`` for the caller; returns how many were accepted."""
    return await track_activity(ctx, list(args.get("events") or []))


@Resolver("Mutation.fireCampaign", schema_name=SCHEMA_NAME)
async def resolve_fire_campaign(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """Admin only: the scheduler runs the campaign now."""
    ctx.admin()
    run = await ctx.gateway.services.scheduler.fire(
        args["name"], bool(args.get("dryRun")), ctx.call
    )
    return mapping.campaign_run(run)


@Resolver("Mutation.replayDeadLetters", schema_name=SCHEMA_NAME)
async def resolve_replay(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> int:
    """Admin only: the owning service moves dead letters back to their queue."""
    ctx.admin()
    queue = args["queue"]
    limit = args.get("limit", 100)
    if not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise bad_input("limit must be between 1 and 10000", field="limit")
    client = ctx.gateway.services.by_name(service_of_queue(queue))
    return await replay_dead_letters(client, ctx.call, queue, limit)
