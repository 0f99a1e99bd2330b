"""The notifications service's delivery use cases, independent of HTTP and of the
broker: delivering requests, following user changes, the deferred-request, retention
and snooze sweeps, digests, and the real-time push (:mod:`herald_notifications.consumers`
translates events into these calls).

Time comes from an injectable ``clock`` (and the sweeps take ``now``), so tests move
through quiet hours and days without sleeping.

Events: ``notification.created`` is published (confirmed) after the notifications are
stored and before the requests are acknowledged (see :mod:`herald_notifications.delivery`
for why that loses nothing); ``notification.read`` goes through the outbox relay.

Real time: after a notification is stored, its API JSON is published on the user's
Redis channel (:func:`herald_common.redis_client.user_channel`) for the gateway's
subscriptions. Pub/sub is fire-and-forget: a push lost to a Redis hiccup or a
subscriber that was not connected is acceptable, because the inbox is the source of
truth and clients re-read it (``notifications`` / ``unreadCount``) when they reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.clock import Clock, utcnow
from herald_common.db import run_db
from herald_common.events import Envelope, NotificationRequested, UserDeleted
from herald_common.messaging import Broker
from herald_common.redis_client import bump_inbox_versions, user_channel
from herald_common.replica import handle_user_event
from herald_common.replica_cache import CacheListener, UserCache
from herald_common.tasks import cancel_and_wait, start_periodic

from herald_notifications.config import NotificationsSettings
from herald_notifications.decisions import DeliveryPolicy
from herald_notifications.deferred import release_due, release_user
from herald_notifications.delivery import Outcome, process_requests
from herald_notifications.delivery_store import forget_user
from herald_notifications.digest_sweep import DigestRun, send_due
from herald_notifications.domain import DeliveriesDomain, InboxDomain
from herald_notifications.metrics import REALTIME_FAILED, observe_end_to_end
from herald_notifications.retention import purge
from herald_notifications.views import to_api

log = logging.getLogger(__name__)


def policy_from(settings: NotificationsSettings) -> DeliveryPolicy:
    return DeliveryPolicy(
        quiet_hours_types=frozenset(settings.quiet_hours_types),
        unknown_user_recheck=timedelta(seconds=settings.unknown_user_recheck_seconds),
        unknown_user_grace=timedelta(seconds=settings.unknown_user_grace_seconds),
    )


class NotificationService:
    """Handlers and sweeps of one process (several may run side by side)."""

    def __init__(
        self,
        settings: NotificationsSettings,
        *,
        broker: Broker | None = None,
        redis: Any = None,
        clock: Clock | None = None,
        outbox_written: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.redis = redis
        self.clock: Clock = clock or utcnow
        self.policy = policy_from(settings)
        self.source = settings.service_name
        self._outbox_written = outbox_written or (lambda: None)
        self._tasks: list[asyncio.Task[None]] = []
        # Users of a batch come from a process-local cache kept coherent over Redis.
        self.users: UserCache | None = None
        if settings.user_cache_seconds > 0 and settings.user_cache_size > 0:
            self.users = UserCache(
                seconds=settings.user_cache_seconds, size=settings.user_cache_size
            )
        self._listener: CacheListener | None = None
        self.inbox = InboxDomain(self)
        self.deliveries = DeliveriesDomain()

    def outbox_written(self) -> None:
        """Events were staged: let the outbox relay publish them now."""
        self._outbox_written()

    def now(self) -> datetime:
        value = self.clock()
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    # --- requests and user changes (the consumers' use cases) -----------------------------

    async def deliver(
        self,
        requests: list[NotificationRequested],
        *,
        maybe_seen: Collection[str] = (),
        occurred_at: Mapping[str, datetime] | None = None,
    ) -> Outcome:
        """Decide, store and push a batch of requests. ``maybe_seen``: keys of requests
        the broker may have delivered before; ``occurred_at``: when each request (by
        idempotency key) was raised, for the end-to-end latency metric."""
        outcome = await run_db(
            process_requests,
            requests,
            self.now(),
            self.policy,
            source=self.source,
            maybe_seen=maybe_seen,
            get_users=self.users.get_many if self.users is not None else None,
        )
        await self._after_write(outcome)
        if occurred_at:
            observe_end_to_end(outcome.created, occurred_at)
        return outcome

    async def user_changed(self, event: Envelope[Any]) -> None:
        """``user.*``: update the preference replica, then re-evaluate the user's
        deferred requests (an unknown user arrived, quiet hours changed, or the user
        is gone)."""
        await handle_user_event(event)
        user_id = event.payload.user_id
        if self._listener is not None:
            # every process's cached copy goes, this one's before the next batch
            await self._listener.applied(user_id, event.payload.revision)
        if isinstance(event.payload, UserDeleted):
            await run_db(forget_user, user_id)
        outcome = await run_db(release_user, user_id, self.now(), self.policy, source=self.source)
        await self._after_write(outcome)

    # --- the user cache ---------------------------------------------------------------------

    def start_user_cache(self) -> None:
        """Follow the replica's change announcements (nothing is cached before)."""
        if self.users is not None and self._listener is None:
            self._listener = CacheListener(
                self.users, self.settings.redis_url, self.settings.mongodb_db
            )
            self._listener.start()

    async def stop_user_cache(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    # --- sweeps ----------------------------------------------------------------------------

    async def release_due(self, now: datetime | None = None, limit: int = 500) -> Outcome:
        """Release (re-evaluate) deferred requests due at ``now`` (default: the clock)."""
        now = now or self.now()
        outcome = await run_db(release_due, now, self.policy, source=self.source, limit=limit)
        await self._after_write(outcome)
        return outcome

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Delete notifications and records older than ``retention_days``."""
        return await run_db(purge, now or self.now(), self.settings.retention_days)

    async def send_digests(self, now: datetime | None = None, limit: int = 500) -> DigestRun:
        """Send the digests whose slot has come (the ``digest`` Schedule task)."""
        run = await run_db(send_due, now or self.now(), source=self.source, limit=limit)
        await self._after_write(Outcome(created=run.created, existing=run.existing))
        return run

    async def wake_snoozed(self, now: datetime | None = None) -> int:
        """Bring back notifications whose snooze has ended (see inbox_store)."""
        return await self.inbox.wake_snoozed(now)

    def start_sweeps(self) -> None:
        self._tasks += [
            start_periodic(self.settings.sweep_interval_seconds, self.release_due, name="release"),
            start_periodic(
                self.settings.retention_sweep_interval_seconds, self.purge, name="retention"
            ),
            start_periodic(self.settings.sweep_interval_seconds, self.wake_snoozed, name="snooze"),
        ]

    async def stop_sweeps(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()

    # --- after a write ---------------------------------------------------------------------

    async def _after_write(self, outcome: Outcome) -> None:
        """Publish ``notification.created`` for what was stored (raises if the broker
        cannot confirm: the requests are then retried), then push in real time."""
        events = outcome.events(source=self.source)
        if events and self.broker is not None:
            await self.broker.publish_many(events)
        await self.push_created(outcome.created)

    async def push_created(self, docs: list[dict[str, Any]]) -> None:
        """Push new (or woken) notifications on their users' channels, one pipeline; each
        user's inbox version is bumped first (gateway caches of inbox reads)."""
        if not docs or self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                bump_inbox_versions(pipe, {doc["user_id"] for doc in docs})
                for doc in docs:
                    pipe.publish(user_channel(doc["user_id"]), json.dumps(to_api(doc)))
                await pipe.execute()
        except Exception:
            REALTIME_FAILED.inc(len(docs))
            log.warning("real-time push failed; the inbox has it", exc_info=True)
