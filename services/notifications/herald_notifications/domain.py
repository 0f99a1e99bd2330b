"""The use cases the routes in ``api/`` call, independent of HTTP.

:class:`InboxDomain` validates input, runs the reads (:mod:`herald_notifications.inbox`)
and changes (:mod:`herald_notifications.inbox_store`) in a worker thread, wakes the
outbox relay for the events a change staged, and tells the user's other devices.
:class:`DeliveriesDomain` answers what happened to requests: delivery records, the
delivery log, email states (who may read which).

Cross-device sync: after a change, the new counts are read and one message
``{"event": "inbox_changed", "user_id", "kind", "ids", "unread_count", "unseen_count"}``
is published on the user's Redis channel (the one ``notificationAdded`` listens to; the
gateway serves it as ``inboxChanged``). Like every real-time push it is fire-and-forget:
the inbox stays the source of truth.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from herald_common.auth import Principal
from herald_common.db import run_db
from herald_common.errors import BadUserInput, Forbidden, NotFound
from herald_common.redis_client import bump_inbox_versions, user_channel

from herald_notifications import delivery_log, delivery_store, inbox, inbox_store
from herald_notifications.email import state as email_state
from herald_notifications.inbox_store import Change
from herald_notifications.metrics import REALTIME_FAILED
from herald_notifications.views import Page, record_to_api

if TYPE_CHECKING:
    from herald_notifications.service import NotificationService

log = logging.getLogger(__name__)

MAX_IDS = 100
MAX_SNOOZE = timedelta(days=30)


def parse_until(value: str, now: datetime) -> datetime:
    """A snooze end: ISO-8601 with a zone, after ``now``, at most 30 days ahead."""
    try:
        until = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadUserInput(
            "until: not an ISO-8601 date-time (e.g. 2026-03-10T18:00:00+01:00)", field="until"
        ) from exc
    if until.tzinfo is None or until.utcoffset() is None:
        raise BadUserInput("until: give a time zone (Z or an offset)", field="until")
    if until <= now:
        raise BadUserInput("until: must be in the future", field="until")
    if until - now > MAX_SNOOZE:
        raise BadUserInput("until: at most 30 days ahead", field="until")
    return until


def check_ids(ids: list[str] | None) -> None:
    if ids is not None and len(ids) > MAX_IDS:
        raise BadUserInput(f"ids: at most {MAX_IDS} per call", field="ids")


def inbox_message(change: Change, unread: int, unseen: int) -> dict[str, Any]:
    return {
        "event": "inbox_changed",
        "user_id": change.user_id,
        "kind": change.kind,
        "ids": change.ids,
        "unread_count": unread,
        "unseen_count": unseen,
    }


class InboxDomain:
    """One process's inbox operations (bound to its :class:`NotificationService`)."""

    def __init__(self, service: NotificationService) -> None:
        self.service = service

    @property
    def source(self) -> str:
        return self.service.source

    # --- reads ---------------------------------------------------------------------------

    async def page(
        self,
        caller: Principal,
        *,
        first: int,
        after: str | None,
        unread_only: bool,
        type_: str | None,
        archived: bool,
        total: bool = True,
    ) -> Page:
        return await run_db(
            inbox.list_notifications,
            caller.user_id,
            first=first,
            after=after or None,
            unread_only=unread_only,
            type_=type_,
            archived=archived,
            total=total,
        )

    async def unread_count(self, caller: Principal) -> int:
        return await run_db(inbox.unread_count, caller.user_id)

    async def unseen_count(self, caller: Principal) -> int:
        return await run_db(inbox.unseen_count, caller.user_id)

    async def get(self, caller: Principal, notification_id: str) -> dict[str, Any]:
        return await run_db(inbox.get_notification, notification_id, caller)

    # --- changes -------------------------------------------------------------------------

    async def mark_read(self, caller: Principal, notification_id: str) -> dict[str, Any]:
        doc, change = await run_db(
            inbox_store.mark_read, notification_id, caller, self.service.now(), source=self.source
        )
        await self.changed(change)
        return doc

    async def mark_read_many(self, caller: Principal, ids: list[str]) -> int:
        check_ids(ids)
        change = await run_db(
            inbox_store.mark_read_many,
            caller.user_id,
            ids,
            self.service.now(),
            source=self.source,
        )
        await self.changed(change)
        return len(change.ids)

    async def mark_all_read(self, caller: Principal) -> int:
        change = await run_db(
            inbox_store.mark_all_read, caller.user_id, self.service.now(), source=self.source
        )
        await self.changed(change)
        return len(change.ids)

    async def mark_seen(self, caller: Principal, ids: list[str] | None) -> int:
        check_ids(ids)
        change = await run_db(
            inbox_store.mark_seen, caller.user_id, ids, self.service.now(), source=self.source
        )
        await self.changed(change)
        return len(change.ids)

    async def archive(
        self, caller: Principal, notification_id: str, *, archived: bool
    ) -> dict[str, Any]:
        doc, change = await run_db(
            inbox_store.archive,
            notification_id,
            caller,
            self.service.now(),
            source=self.source,
            archived=archived,
        )
        await self.changed(change)
        return doc

    async def archive_all_read(self, caller: Principal) -> int:
        change = await run_db(
            inbox_store.archive_all_read, caller.user_id, self.service.now(), source=self.source
        )
        await self.changed(change)
        return len(change.ids)

    async def snooze(self, caller: Principal, notification_id: str, until: str) -> dict[str, Any]:
        now = self.service.now()
        when = parse_until(until, now)
        doc, change = await run_db(
            inbox_store.snooze, notification_id, caller, when, now, source=self.source
        )
        await self.changed(change)
        return doc

    async def delete(self, caller: Principal, notification_id: str) -> None:
        change = await run_db(
            inbox_store.delete, notification_id, caller, self.service.now(), source=self.source
        )
        await self.changed(change)

    async def wake_snoozed(self, now: datetime | None = None) -> int:
        """The snooze sweep: woken notifications are pushed again as new
        (``notificationAdded``) and as an ``unsnoozed`` change."""
        woken = await run_db(
            inbox_store.wake_snoozed, now or self.service.now(), source=self.source
        )
        if not woken:
            return 0
        self.service.outbox_written()
        by_user: dict[str, list[str]] = {}
        for doc in woken:
            by_user.setdefault(doc["user_id"], []).append(doc["_id"])
        await self.service.push_created(woken)
        for user_id, ids in by_user.items():
            await self.changed(Change(user_id, "unsnoozed", ids), staged=False)
        return len(woken)

    async def changed(self, change: Change, *, staged: bool = True) -> None:
        """After a change: relay its events now and tell the user's devices."""
        if not change.ids:
            return
        if staged:
            self.service.outbox_written()
        redis = self.service.redis
        if redis is None:
            return
        try:
            unread, unseen = await run_db(inbox.counts, change.user_id)
            message = inbox_message(change, unread, unseen)
            async with redis.pipeline(transaction=False) as pipe:
                bump_inbox_versions(pipe, {change.user_id})
                pipe.publish(user_channel(change.user_id), json.dumps(message))
                await pipe.execute()
        except Exception:
            REALTIME_FAILED.inc()
            log.warning("inbox change push failed; the inbox has it", exc_info=True)


class DeliveriesDomain:
    """What became of requests: delivery records, the delivery log, email states."""

    async def log(self, caller: Principal, *, first: int, after: str | None) -> dict[str, Any]:
        """The caller's own delivery log page (each record with a sentence)."""
        return await run_db(delivery_log.page, caller.user_id, first=first, after=after or None)

    async def records(
        self,
        caller: Principal,
        *,
        outcome: str | None,
        type_: str | None,
        first: int,
        user_id: str | None,
    ) -> list[dict[str, Any]]:
        """Suppression / deferral records, newest first: the caller's own; an admin's
        choice of everyone's (no ``user_id``) or one user's."""
        if caller.is_admin:
            owner = user_id  # None: every user's records
        elif user_id is not None and user_id != caller.user_id:
            raise Forbidden(
                "only an admin may read another user's delivery records", field="user_id"
            )
        else:
            owner = caller.user_id
        docs = await run_db(
            delivery_store.list_records, owner, outcome=outcome, type_=type_, first=first
        )
        return [record_to_api(d) for d in docs]

    async def email(self, caller: Principal, notification_id: str) -> dict[str, Any]:
        """The email state of a notification (owner or admin); NOT_FOUND when no email
        was sent for it or it is another user's."""
        doc = await run_db(email_state.get, notification_id)
        if doc is None or (doc["user_id"] != caller.user_id and not caller.is_admin):
            raise NotFound(
                f"no email for notification {notification_id!r}", field="notification_id"
            )
        return email_state.to_api(doc)
