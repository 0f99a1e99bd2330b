"""Event consumers of the notifications service.

Queues (names from the settings):

* ``notifications.users`` ← ``user.*``: the preference replica, then the user's
  deferred requests are decided again (:meth:`NotificationService.user_changed`);
* ``notifications.requests`` ← ``notification.requested``, in batches (``BATCH_MAX``
  per batch, ``BATCH_WAIT_MS``, ``BATCH_CONCURRENCY`` batches in progress): decide,
  store, publish ``notification.created``, push (:meth:`NotificationService.deliver`);
* ``notifications.requests.urgent`` ← ``notification.requested.urgent`` (order updates,
  :data:`herald_common.events.URGENT_TYPES`): the same handler, in batches waiting at
  most ``URGENT_BATCH_WAIT_MS``, so they never wait behind a campaign's backlog;
* ``notifications.email`` ← ``notification.created``, in batches (``EMAIL_BATCH_MAX``):
  the email channel (:meth:`herald_notifications.email.channel.EmailChannel.on_created`),
  when enabled.

Handlers translate events into calls of the domain; every one is idempotent
(redelivery is normal).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from herald_common.events import (
    NOTIFICATION_REQUESTS,
    URGENT_NOTIFICATION_REQUESTS,
    USER_EVENTS,
    Envelope,
    NotificationCreated,
    NotificationRequested,
)
from herald_common.messaging import BatchHandler, Broker, Handler, PermanentError

from herald_notifications.config import NotificationsSettings
from herald_notifications.email.channel import EmailChannel
from herald_notifications.service import NotificationService


def requests_handler(service: NotificationService) -> BatchHandler:
    async def handle_requests(events: list[Envelope[Any]]) -> None:
        """``notification.requested`` (batched): decide, store, push."""
        requests: list[NotificationRequested] = []
        occurred_at: dict[str, datetime] = {}
        for event in events:
            if not isinstance(event.payload, NotificationRequested):
                raise PermanentError(f"unexpected event type {event.type!r} on the requests queue")
            requests.append(event.payload)
            occurred_at.setdefault(event.payload.idempotency_key, event.occurred_at)
        maybe_seen = {e.payload.idempotency_key for e in events if e.maybe_seen}
        await service.deliver(requests, maybe_seen=maybe_seen, occurred_at=occurred_at)

    return handle_requests


def users_handler(service: NotificationService) -> Handler:
    async def handle_user(event: Envelope[Any]) -> None:
        """``user.*``: the replica, then the user's deferred requests."""
        await service.user_changed(event)

    return handle_user


def queue_names(settings: NotificationsSettings) -> list[str]:
    return [
        settings.users_queue,
        settings.requests_queue,
        settings.urgent_requests_queue,
        settings.email_queue,
    ]


async def start_consumers(
    settings: NotificationsSettings,
    broker: Broker,
    service: NotificationService,
    email: EmailChannel | None,
) -> list[str]:
    """Declare and consume the service's queues (the email queue only with ``email``);
    returns their names."""
    await broker.consume(settings.users_queue, [USER_EVENTS], users_handler(service))
    handle_requests = requests_handler(service)
    lanes = [  # (queue, binding, batch wait, batches in progress)
        (
            settings.requests_queue,
            NOTIFICATION_REQUESTS,
            settings.batch_wait_ms,
            settings.batch_concurrency,
        ),
        (
            settings.urgent_requests_queue,
            URGENT_NOTIFICATION_REQUESTS,
            settings.urgent_batch_wait_ms,
            1,
        ),
    ]
    for queue, binding, wait_ms, concurrency in lanes:
        await broker.consume_batch(
            queue,
            [binding],
            handle_requests,
            max_batch=settings.batch_max,
            max_wait_ms=wait_ms,
            concurrency=concurrency,
        )
    queues = [settings.users_queue, *(lane[0] for lane in lanes)]
    if email is not None:
        await broker.consume_batch(
            settings.email_queue,
            [NotificationCreated.event_type],
            email.on_created,
            max_batch=settings.email_batch_max,
            max_wait_ms=settings.email_batch_wait_ms,
        )
        queues.append(settings.email_queue)
    return queues
