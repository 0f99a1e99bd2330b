"""``notificationAdded`` and ``inboxChanged``: the caller's Redis channel.

The channel carries two kinds of message: a notification (new, or back from a snooze)
and ``{"event": "inbox_changed", ...}`` (with the new counts). Each subscription
forwards its own kind only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from herald_common.redis_client import user_channel
from tartiflette import Subscription

from herald_gateway import mapping
from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME

log = logging.getLogger(__name__)
INBOX_CHANGED = "inbox_changed"


async def _user_messages(ctx: RequestContext, user_id: str) -> AsyncGenerator[Any, None]:
    """Every message of the caller's channel, decoded from JSON (unreadable ones logged
    and skipped); the subscription is closed when the consumer stops."""
    pubsub = ctx.gateway.redis.pubsub()
    await pubsub.subscribe(user_channel(user_id))
    try:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                yield json.loads(message["data"])
            except (ValueError, TypeError):
                log.warning("unreadable real-time message", extra={"user_id": user_id})
    finally:
        try:
            await pubsub.unsubscribe()
            await pubsub.aclose()
        except Exception:
            log.debug("pubsub close failed", exc_info=True)


@Subscription("Subscription.notificationAdded", schema_name=SCHEMA_NAME)
async def subscribe_notification_added(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> AsyncIterator[dict[str, Any]]:
    """Yields each notification the notifications service publishes for the caller."""
    user = ctx.user()
    async with aclosing(_user_messages(ctx, user.user_id)) as messages:
        async for data in messages:
            try:
                if data.get("event") == INBOX_CHANGED:
                    continue
                node = mapping.notification(data)
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("unreadable real-time notification", extra={"user_id": user.user_id})
                continue
            # A message for someone else would be a bug upstream; never forward it.
            if node["userId"] != user.user_id:
                continue
            yield {"notificationAdded": node}


@Subscription("Subscription.inboxChanged", schema_name=SCHEMA_NAME)
async def subscribe_inbox_changed(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> AsyncIterator[dict[str, Any]]:
    """Yields each change of the caller's inbox (from any tab or device) with the
    counts after it, so a second tab's badge follows without a reload."""
    user = ctx.user()
    async with aclosing(_user_messages(ctx, user.user_id)) as messages:
        async for data in messages:
            try:
                if data.get("event") != INBOX_CHANGED or data.get("user_id") != user.user_id:
                    continue
                change = mapping.inbox_change(data)
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("unreadable inbox change", extra={"user_id": user.user_id})
                continue
            yield {"inboxChanged": change}
