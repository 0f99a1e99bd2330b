"""The email consumer: ``notifications.email`` ← ``notification.created``, in batches.

For each new notification whose user has ``email`` in ``channels``: record the email
``queued``, render it, send the batch over one SMTP connection, record the outcome.

Failures, per email:

* a 5xx refusal, or a campaign template that cannot render → state ``failed`` and the
  event goes to ``notifications.email.dlq`` at once (:class:`PermanentError`);
* anything else → state ``retrying`` and the event goes through the queue's back-off
  steps (``retry_delays_ms``); the attempt after the last step that still fails marks
  it ``failed`` and dead-letters it.

Redelivery is harmless: an email already ``sent`` or ``failed`` is not sent again. (A
crash between the relay accepting a message and the state write sends it twice, with
the same ``Message-ID``: at least once, never lost.)

When a batch has a failure, the batch consumer hands each of its events to the handler
alone; an event that failed in the batch is answered with the same error without
another SMTP attempt, so every attempt counts once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common import replica
from herald_common.clock import Clock, utc_day, utcnow
from herald_common.db import run_db
from herald_common.events import Envelope, NotificationCreated
from herald_common.messaging import PermanentError
from herald_common.tasks import cancel_and_wait, start_periodic
from herald_common.unsubscribe import secret_for
from prometheus_client import Counter

from herald_notifications.config import NotificationsSettings
from herald_notifications.email import state
from herald_notifications.email.render import RenderError, build_message, render
from herald_notifications.email.sender import (
    PermanentSendError,
    Relay,
    Sender,
    SendError,
    TemporarySendError,
)

log = logging.getLogger(__name__)

EMAILS = Counter(
    "herald_notifications_email_total",
    "Emails by outcome of a sending attempt (sent, retrying, failed) and type; "
    "skipped: the user has no email channel",
    ["outcome", "type"],
)


def relay_from(settings: NotificationsSettings) -> Relay:
    return Relay(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        timeout=settings.smtp_timeout_seconds,
        validate_certs=settings.smtp_validate_certs,
        ca_file=settings.smtp_ca_file,
    )


class EmailChannel:
    """Sends the emails of ``notification.created`` events (:meth:`on_created`, the
    ``notifications.email`` handler bound in :mod:`herald_notifications.consumers`)."""

    def __init__(
        self,
        settings: NotificationsSettings,
        *,
        sender: Sender | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.sender = sender or Sender(relay_from(settings))
        self.secret = secret_for(settings.unsubscribe_secret, settings.environment)
        self.clock: Clock = clock or utcnow
        # Attempts beyond the back-off steps: the last one marks the email failed.
        self.max_attempts = len(settings.retry_delays_ms) + 1
        self._failed_in_batch: dict[str, SendError] = {}
        self._tasks: list[Any] = []

    async def prepare(self) -> None:
        """Create the email state's indexes (before its consumer starts)."""
        await run_db(state.ensure_indexes)

    def start_sweeps(self) -> None:
        self._tasks.append(
            start_periodic(
                self.settings.retention_sweep_interval_seconds, self.purge, name="email-retention"
            )
        )

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()

    def now(self) -> datetime:
        value = self.clock()
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    async def purge(self, now: datetime | None = None) -> int:
        """Email states older than the retention period, whole days at a time."""
        now = now or self.now()
        cutoff = now.astimezone(UTC).date() - timedelta(days=self.settings.retention_days)
        return await run_db(state.purge, cutoff)

    # --- the handler ---------------------------------------------------------------------

    async def on_created(self, events: list[Envelope[Any]]) -> None:
        if len(events) == 1 and str(events[0].id) in self._failed_in_batch:
            # Handed back alone after its batch failed: same verdict, no second attempt.
            raise self._verdict(events[0], self._failed_in_batch.pop(str(events[0].id)))
        notes = []
        for event in events:
            if not isinstance(event.payload, NotificationCreated):
                raise PermanentError(f"unexpected event type {event.type!r} on the email queue")
            notes.append(event)
        errors = await self._send(notes)
        if not errors:
            return
        if len(events) == 1:
            raise self._verdict(events[0], errors[str(events[0].id)])
        self._failed_in_batch.update(errors)
        raise TemporarySendError(f"{len(errors)} of {len(events)} emails failed")

    def _verdict(self, event: Envelope[Any], error: SendError) -> Exception:
        if isinstance(error, PermanentSendError):
            return PermanentError(str(error))
        return error

    async def _send(self, events: list[Envelope[Any]]) -> dict[str, SendError]:
        """Send what needs sending; the errors by event id."""
        now = self.now()
        payloads: list[NotificationCreated] = [e.payload for e in events]
        users = await run_db(replica.get_users, [p.user_id for p in payloads])
        todo: list[tuple[Envelope[Any], dict[str, Any], Any]] = []
        errors: dict[str, SendError] = {}
        for event, payload in zip(events, payloads, strict=True):
            user = users.get(payload.user_id)
            channels = ((user or {}).get("preferences") or {}).get("channels") or []
            if (
                user is None
                or user.get("deleted")
                or "email" not in channels
                or not user.get("email")
            ):
                EMAILS.labels("skipped", payload.type).inc()
                continue
            doc = {
                "_id": payload.notification_id,
                "user_id": payload.user_id,
                "type": payload.type,
                "content": payload.content,
                "sent_at": payload.sent_at,
                "source": payload.source,
            }
            record = await run_db(
                state.queue,
                payload.notification_id,
                user_id=payload.user_id,
                type_=payload.type,
                to=user["email"],
                now=now,
                day=utc_day(now),
            )
            if record["state"] in state.FINAL:
                continue  # a redelivery of one already settled
            try:
                rendered = render(
                    doc,
                    name=user.get("name"),
                    public_url=self.settings.public_url,
                    secret=self.secret,
                )
            except RenderError as exc:
                await self._record(payload, int(record["attempts"]), PermanentSendError(str(exc)))
                errors[str(event.id)] = PermanentSendError(str(exc))
                continue
            message = build_message(
                rendered,
                doc=doc,
                sender=self.settings.email_from,
                to=user["email"],
                to_name=user.get("name"),
                domain=self.settings.email_message_id_domain,
            )
            todo.append((event, record, message))
        results = await self.sender.send_all([(m, r["to"]) for _, r, m in todo])
        for (event, record, _), error in zip(todo, results, strict=True):
            outcome = await self._record(event.payload, int(record["attempts"]), error)
            if error is not None:
                errors[str(event.id)] = (
                    PermanentSendError(str(error)) if outcome == "failed" else error
                )
        return errors

    async def _record(
        self, payload: NotificationCreated, attempts_before: int, error: SendError | None
    ) -> str:
        """Store the attempt's outcome; returns the new state."""
        if error is None:
            outcome = "sent"
        elif isinstance(error, PermanentSendError) or attempts_before + 1 >= self.max_attempts:
            outcome = "failed"
        else:
            outcome = "retrying"
        await run_db(
            state.attempted,
            payload.notification_id,
            outcome,
            self.now(),
            None if error is None else str(error)[:1000],
        )
        EMAILS.labels(outcome, payload.type).inc()
        if error is not None:
            log.warning(
                "email not sent",
                extra={
                    "notification_id": payload.notification_id,
                    "state": outcome,
                    "error": str(error)[:300],
                },
            )
        return outcome
