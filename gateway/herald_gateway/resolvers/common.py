"""Helpers shared by the resolvers."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from herald_gateway.clients.services import SERVICE_NAMES
from herald_gateway.context import RequestContext
from herald_gateway.errors import bad_input

T = TypeVar("T")
Resolve = Callable[[Any, dict[str, Any], RequestContext, Any], Awaitable[T]]


def once_per_request(resolver: Resolve[T]) -> Resolve[T]:
    """Resolve a root query field once per (field, arguments) in a request.

    ``{ a: unreadCount b: unreadCount }`` makes one service call: every alias awaits
    the same resolution, and shares its value or its error.
    """

    @functools.wraps(resolver)
    async def resolve(parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any) -> T:
        key = (str(info.field_name), json.dumps(args, sort_keys=True, default=str))
        pending = ctx.memo.get(key)
        if pending is None:
            pending = ctx.memo[key] = asyncio.ensure_future(resolver(parent, args, ctx, info))
        result: T = await pending
        return result

    return resolve


def page_size(ctx: RequestContext, value: Any, name: str = "first") -> int:
    """A page size in ``1..max_page_size`` or a BAD_USER_INPUT naming the argument."""
    limit = ctx.gateway.settings.max_page_size
    if not isinstance(value, int) or value < 1 or value > limit:
        raise bad_input(f"{name} must be between 1 and {limit}", field=name)
    return value


def enum_value(value: str | None) -> str | None:
    """GraphQL enum value → the services' lowercase spelling."""
    return None if value is None else value.lower()


def service_of_queue(queue: str) -> str:
    """Queues are named ``<service>.<purpose>``: the owner is the prefix."""
    owner = queue.split(".", 1)[0]
    if owner not in SERVICE_NAMES or "." not in queue:
        raise bad_input(
            f"unknown queue {queue!r}: queue names start with one of {list(SERVICE_NAMES)}",
            field="queue",
        )
    return owner
