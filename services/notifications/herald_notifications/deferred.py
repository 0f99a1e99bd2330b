"""Deferred requests coming back (synchronous; the service's sweep and its ``user.*``
handler call it through ``run_db``): each due delivery record is leased, decided again
and either delivered, deferred again, held for a digest or suppressed.

Each record is leased with an atomic update first, so concurrent sweeps in several
replicas never evaluate one record twice at the same time; delivery itself is idempotent
anyway (unique idempotency key). A sweep that crashes leaves its records leased: they
are picked up again after :data:`RELEASE_LEASE`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from herald_common import replica
from herald_common.clock import utc_day
from herald_common.events import NotificationRequested

from herald_notifications import delivery_store, digest_store
from herald_notifications.builders import history_entry, ms
from herald_notifications.decisions import DeliveryPolicy
from herald_notifications.delivery import Outcome, decide_and_reserve, deliver_one
from herald_notifications.metrics import count_decision

log = logging.getLogger(__name__)

# How long a sweep holds a deferred record while re-evaluating it.
RELEASE_LEASE = timedelta(seconds=60)


def _reevaluate(
    record: dict[str, Any], now: datetime, policy: DeliveryPolicy, *, source: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Decide a deferred request again; returns the notification it created, or the one
    an earlier attempt had stored."""
    request = NotificationRequested.model_validate(record["request"])
    user = replica.get_users([request.user_id], include_deleted=True).get(request.user_id)
    decision = decide_and_reserve(request, user, now, policy, first_seen=record["first_at"])
    created: dict[str, Any] | None = None
    if decision.outcome == "deliver":
        superseded, created = deliver_one(request, now, source=source)
        decision = superseded or decision
    update: dict[str, Any] = {"at": ms(now), "day": utc_day(now), "lease_until": None}
    existing: dict[str, Any] | None = None
    if decision.outcome == "hold" and decision.deliver_at is not None:
        digest_store.hold([(request, decision.deliver_at)], now)
        update["outcome"] = "released"  # into the user's next digest
    elif decision.outcome == "deliver":
        update["outcome"] = "released"
        if created is None:
            # stored by an earlier, interrupted release: its event goes out again
            existing = delivery_store.stored_for(request.idempotency_key)
        stored = created or existing
        update["notification_id"] = stored["_id"] if stored else None
    elif decision.outcome == "defer":
        update.update(
            outcome="deferred", reason=decision.reason, deliver_at=ms(decision.deliver_at or now)
        )
    else:
        update.update(outcome="suppressed", reason=decision.reason)
    count_decision(decision.outcome, decision.reason, request.type)
    entry = history_entry(decision, now)
    delivery_store.decided_again(
        record["_id"], update, None if _same_decision(record, entry) else entry
    )
    return created, existing


def _same_decision(record: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether ``entry`` decides what the record's last history entry decided (a user
    change that keeps a request deferred until the same time adds no entry)."""
    history = record.get("history") or []
    fields = ("outcome", "reason", "deliver_at")
    return bool(history) and all(history[-1].get(f) == entry[f] for f in fields)


def release_due(
    now: datetime,
    policy: DeliveryPolicy,
    *,
    source: str,
    limit: int = 500,
    user_id: str | None = None,
) -> Outcome:
    """Re-evaluate deferred requests whose time has come (``deliver_at <= now``)."""
    now = ms(now)
    outcome = Outcome()
    while outcome.handled < limit:
        record = delivery_store.lease_due_record(now, RELEASE_LEASE, user_id)
        if record is None:
            break
        outcome.handled += 1
        try:
            created, existing = _reevaluate(record, now, policy, source=source)
        except Exception:
            # Leave it leased: it is retried when the lease runs out.
            log.exception("re-evaluating a deferred request failed", extra={"id": record["_id"]})
            continue
        if created is not None:
            outcome.created.append(created)
        if existing is not None:
            outcome.existing.append(existing)
    return outcome


def release_user(user_id: str, now: datetime, policy: DeliveryPolicy, *, source: str) -> Outcome:
    """Re-evaluate all deferred requests of one user now (their replica just changed:
    a user who was unknown arrived, quiet hours changed, or the user was deleted)."""
    delivery_store.make_due(user_id, ms(now))
    return release_due(now, policy, source=source, user_id=user_id)
