"""``notificationAdded`` and ``inboxChanged``: the caller's Redis channel.

The channel carries two kinds of message: a notification (new, or back from a snooze)
and ``{"event": "inbox_changed", ...}`` (with the new counts). Each subscription
forwards its own kind only. Both read the channel through the process's
:class:`~herald_gateway.realtime.RealtimeHub` (one Redis connection for every open
subscription; a subscriber that falls behind ends with ``UNAVAILABLE``,
``extensions.reason`` ``SLOW_CONSUMER``).

An open subscription outlives a Redis outage: the hub subscribes again with back-off
and goes on delivering once Redis answers; what was published meanwhile is not
replayed (the inbox has it). As the revocation listener does after a lost subscription
(:mod:`herald_gateway.revocations`), each resumed subscription first re-checks the
caller's token (:func:`_recheck_token`; while the deny-list cannot be read, again with
the hub's back-off): a token revoked while Redis was away ends the subscription with
``UNAUTHENTICATED`` before anything more is delivered, and the connection holding it is
woken to re-check (it closes with 4401).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

from herald_common.errors import Unauthenticated, Unavailable
from herald_common.redis_client import user_channel
from tartiflette import Subscription
from tenacity import AsyncRetrying, retry_if_exception_type

from herald_gateway import mapping
from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME
from herald_gateway.errors import GraphQLFailure
from herald_gateway.realtime import REDIS_LOST, backoff, retry_logger

log = logging.getLogger(__name__)
INBOX_CHANGED = "inbox_changed"


# Each resumed subscription retries on its own (quietly: the hub logs the loss itself).
_log_retry = retry_logger("token re-check cannot run yet", logging.DEBUG)


async def _recheck_token(ctx: RequestContext) -> None:
    """After a lost subscription the caller's token must still verify (announcements of
    its revocation may have been missed while Redis was away). A rejected token ends the
    subscription with ``UNAUTHENTICATED`` and wakes the connections holding it to
    re-check (they close with 4401); a check that cannot run yet (the deny-list cannot
    be read) is retried with back-off."""
    principal = ctx.user()
    if ctx.token is None:
        return
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((*REDIS_LOST, Unavailable)),
        wait=backoff(),
        before_sleep=_log_retry,
        reraise=True,
    ):
        with attempt:
            try:
                await ctx.gateway.verifier.verify(ctx.token)
            except Unauthenticated as exc:
                if ctx.gateway.revocations is not None:
                    ctx.gateway.revocations.recheck(principal.jti)
                raise GraphQLFailure.from_herald(exc) from None
    # The hub logs the resume once; this is one subscription of possibly many.
    log.debug("real-time subscription resumed", extra={"user_id": principal.user_id})


def _is_inbox_change(data: Any) -> bool:
    return isinstance(data, dict) and data.get("event") == INBOX_CHANGED


def _is_notification(data: Any) -> bool:
    # Anything else too: an unreadable message is logged once, by notificationAdded.
    return not _is_inbox_change(data)


def _user_messages(
    ctx: RequestContext, user_id: str, wants: Callable[[Any], bool]
) -> AsyncGenerator[Any, None]:
    """The messages of the caller's channel that ``wants`` accepts (decoded JSON), with
    the token re-checked after every loss of Redis; ends when the consumer stops."""
    hub = ctx.gateway.realtime
    if hub is None:
        raise GraphQLFailure("real-time delivery is not running", "UNAVAILABLE")
    return hub.messages(user_channel(user_id), wants=wants, on_resume=partial(_recheck_token, ctx))


@Subscription("Subscription.notificationAdded", schema_name=SCHEMA_NAME)
async def subscribe_notification_added(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> AsyncIterator[dict[str, Any]]:
    """Yields each notification the notifications service publishes for the caller."""
    user = ctx.user()
    async with aclosing(_user_messages(ctx, user.user_id, _is_notification)) as messages:
        async for data in messages:
            try:
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
    async with aclosing(_user_messages(ctx, user.user_id, _is_inbox_change)) as messages:
        async for data in messages:
            try:
                if data.get("user_id") != user.user_id:
                    continue
                change = mapping.inbox_change(data)
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("unreadable inbox change", extra={"user_id": user.user_id})
                continue
            yield {"inboxChanged": change}
