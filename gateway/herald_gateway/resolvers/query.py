"""Query resolvers (each resolved once per distinct arguments in a request)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tartiflette import Resolver

from herald_gateway import mapping
from herald_gateway.cache import INBOX, ME, RECOMMENDATIONS, UNREAD, UNSEEN
from herald_gateway.clients.services import SERVICE_NAMES, dead_letters
from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME
from herald_gateway.errors import GraphQLFailure, bad_input
from herald_gateway.limits import operation_selects
from herald_gateway.resolvers.common import (
    enum_value,
    once_per_request,
    page_size,
    service_of_queue,
)

MAX_IDS = 100


@Resolver("Query.me", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_me(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    """The caller's profile and preferences (cached per user)."""
    user = ctx.user()
    services = ctx.gateway.services
    data = await ctx.gateway.cache.get_or_load(
        ME, user.user_id, lambda: services.users.me(ctx.call)
    )
    return mapping.user(data)


@Resolver("Query.notifications", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_notifications(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """A page of the caller's inbox (cached like the counts, per arguments). The list's
    total is asked for only when the operation selects ``totalCount``."""
    user = ctx.user()
    params = {
        "first": page_size(ctx, args.get("first", 20)),
        "after": args.get("after"),
        "unread_only": bool(args.get("unreadOnly")),
        "type_": enum_value(args.get("type")),
        "archived": bool(args.get("archived")),
        "total": operation_selects(info, "totalCount"),
    }
    notifications = ctx.gateway.services.notifications
    page = await ctx.gateway.cache.get_or_load(
        INBOX,
        user.user_id,
        lambda: notifications.list(ctx.call, **params),
        variant=json.dumps(params, sort_keys=True),
    )
    return mapping.connection(page)


async def _cached_count(
    ctx: RequestContext, entity: str, load: Callable[[], Awaitable[Any]]
) -> int:
    """One of the caller's notification counts, cached per user as ``entity``."""
    user = ctx.user()
    return int(await ctx.gateway.cache.get_or_load(entity, user.user_id, load))


@Resolver("Query.unreadCount", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_unread_count(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    """Unread notifications of the caller (cached; invalidated by notification events)."""
    notifications = ctx.gateway.services.notifications
    return await _cached_count(ctx, UNREAD, lambda: notifications.unread_count(ctx.call))


@Resolver("Query.unseenCount", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_unseen_count(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> int:
    """The badge: unseen notifications of the caller (cached like ``unreadCount``)."""
    notifications = ctx.gateway.services.notifications
    return await _cached_count(ctx, UNSEEN, lambda: notifications.unseen_count(ctx.call))


@Resolver("Query.notification", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_notification(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """One notification; null when it does not exist."""
    ctx.user()
    try:
        data = await ctx.gateway.services.notifications.get_one(args["id"], ctx.call)
    except GraphQLFailure as exc:
        if exc.code == "NOT_FOUND":
            return None
        raise
    return mapping.notification(data)


@Resolver("Query.recommendations", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_recommendations(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """The caller's recommendations (cached per user and page size)."""
    user = ctx.user()
    first = page_size(ctx, args.get("first", 10))
    services = ctx.gateway.services

    async def load() -> Any:
        body = await services.recommendations.mine(first, ctx.call)
        return body.get("items") or []

    items = await ctx.gateway.cache.get_or_load(
        RECOMMENDATIONS, user.user_id, load, variant=str(first)
    )
    return [mapping.recommendation(i) for i in items]


@Resolver("Query.orders", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_orders(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    """The caller's orders."""
    ctx.user()
    orders = await ctx.gateway.services.scheduler.my_orders(
        page_size(ctx, args.get("first", 20)), ctx.call
    )
    return [mapping.order(o) for o in orders]


def _ids(args: dict[str, Any]) -> list[str]:
    ids = [str(i) for i in args.get("ids") or []]
    if len(ids) > MAX_IDS:
        raise bad_input(f"ids: at most {MAX_IDS} per query", field="ids")
    return ids


@Resolver("Query.products", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_products(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """Catalog entries in the order asked; null for unknown ids (one service call)."""
    ctx.user()
    found = await ctx.loader("products").load_many(_ids(args))
    return [mapping.product(p) if p else None for p in found]


@Resolver("Query.product", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_product(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    ctx.user()
    found = await ctx.loader("products").load(str(args["id"]))
    return mapping.product(found) if found else None


@Resolver("Query.user", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_user(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> Any:
    """Admin only: any user (several `user` fields in one query → one service call)."""
    ctx.admin()
    found = await ctx.loader("users").load(str(args["id"]))
    return mapping.user(found) if found else None


@Resolver("Query.campaigns", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_campaigns(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """Admin only: recent campaign runs."""
    ctx.admin()
    runs = await ctx.gateway.services.scheduler.campaign_runs(
        page_size(ctx, args.get("first", 50)), ctx.call
    )
    return [mapping.campaign_run(r) for r in runs]


@Resolver("Query.deadLetters", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_dead_letters(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """Admin only: the DLQs of one queue's service, or of every service."""
    ctx.admin()
    limit = args.get("limit", 20)
    if not isinstance(limit, int) or not 0 <= limit <= 500:
        raise bad_input("limit must be between 0 and 500", field="limit")
    queue = args.get("queue")
    services = ctx.gateway.services
    if queue:
        owner = service_of_queue(queue)
        queues = await dead_letters(services.by_name(owner), ctx.call, queue, limit)
        return [mapping.dead_letter_queue(q, owner) for q in queues]

    async def of(name: str) -> list[Any]:
        try:
            queues = await dead_letters(services.by_name(name), ctx.call, None, limit)
        except GraphQLFailure as exc:
            # A service without consumer queues has no dead letters to show.
            if exc.code == "NOT_FOUND":
                return []
            raise
        return [mapping.dead_letter_queue(q, name) for q in queues]

    results = await asyncio.gather(*(of(n) for n in SERVICE_NAMES), return_exceptions=True)
    failed = [n for n, r in zip(SERVICE_NAMES, results, strict=True) if isinstance(r, Exception)]
    if failed:
        raise GraphQLFailure(f"dead letters unavailable from: {', '.join(failed)}", "UNAVAILABLE")
    return [q for r in results if isinstance(r, list) for q in r]
