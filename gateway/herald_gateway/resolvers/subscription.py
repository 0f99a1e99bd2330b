"""``notificationAdded``: the caller's new notifications from their Redis channel."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from herald_common.redis_client import user_channel
from tartiflette import Subscription

from herald_gateway import mapping
from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME

log = logging.getLogger(__name__)


@Subscription("Subscription.notificationAdded", schema_name=SCHEMA_NAME)
async def subscribe_notification_added(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> AsyncIterator[dict[str, Any]]:
    """Yields each notification the notifications service publishes for the caller."""
    user = ctx.user()
    pubsub = ctx.gateway.redis.pubsub()
    await pubsub.subscribe(user_channel(user.user_id))
    try:
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            try:
                data = json.loads(message["data"])
                node = mapping.notification(data)
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable real-time notification", extra={"user_id": user.user_id})
                continue
            # A message for someone else would be a bug upstream; never forward it.
            if node["userId"] != user.user_id:
                continue
            yield {"notificationAdded": node}
    finally:
        try:
            await pubsub.unsubscribe()
            await pubsub.aclose()
        except Exception:
            log.debug("pubsub close failed", exc_info=True)
