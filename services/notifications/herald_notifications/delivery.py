"""Delivery: turning ``notification.requested`` into inbox entries (synchronous; the
async :class:`herald_notifications.service.NotificationService` calls it through
``run_db``; storage is :mod:`herald_notifications.delivery_store`, deferred requests
come back through :mod:`herald_notifications.deferred`).

Guarantees, with any number of consumer replicas and with redelivery:

* **Idempotency.** ``notifications.idempotency_key`` and ``deliveries.idempotency_key``
  are unique: a second insert with a key is a no-op. A request whose key already has a
  notification or a delivery record is not decided again.
* **Collapse.** Every request of a ``(user, collapse_key)`` group inserts a version
  document (unique per idempotency key); the group's order is
  ``(requested_at, idempotency_key)``. A request older than the group's newest is
  recorded as suppressed ``superseded`` and never shown. After inserting its
  notification, every request *settles* the group: unread notifications older than the
  newest version are marked ``replaced``. Whichever request finishes last sees every
  version, so one unread notification per group stays visible (the newest: it is never
  hidden); read ones are never touched. No read-modify-write decides the winner, so this
  holds with racing replicas. A batch decides its collapsing requests together: in one
  batch only the newest request of a group is stored (the others are superseded), the
  groups are read together, versions and notifications are inserted with one write
  each, and a group is updated only when it has an unread notification to hide.
* **Daily cap.** Promotions reserve a place in a per-``(user, local day)`` document
  with one conditional update (``n < cap`` and key not yet in it), so concurrent
  replicas cannot exceed the cap and a redelivered request reuses its own place.
* **Bulk writes.** Plain notifications and delivery records of a batch are written with
  ``insert_many(ordered=False)``; duplicate-key errors of redelivered ones are ignored.
* **Events derived from state.** ``notification.created`` is not staged in an outbox: the
  consumer publishes it (confirmed) after the insert and before it acknowledges the
  request, with an id derived from the notification
  (:func:`herald_notifications.builders.created_event`). A crash in between redelivers
  the request; the redelivery finds the stored notification and publishes the same event
  again, which consumers recognise by its id. This saves two writes per notification on
  the hot path.
* **Index-served lookups only, a few per batch.** A batch reads its users, its groups'
  newest versions and their unread notifications with one ``$in`` query each (per
  chunk, :func:`herald_common.db.find_in`: the local server pushes an ``$in`` of strings
  down to an index), and looks up earlier decisions only for requests the broker may
  have delivered before (``maybe_seen``); for a first delivery the unique indexes are
  the guard.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from herald_common import replica
from herald_common.events import Envelope, NotificationRequested
from herald_common.preferences import Preferences

from herald_notifications import delivery_store, digest_store
from herald_notifications.builders import (
    build_notification,
    created_event,
    ms,
    new_notification_doc,
    new_record,
)
from herald_notifications.decisions import Decision, DeliveryPolicy, decide
from herald_notifications.metrics import count_decision


@dataclass
class Outcome:
    """What happened to the requests of one call: notifications created (raw documents,
    for the real-time push) and how many requests were handled."""

    created: list[dict[str, Any]] = field(default_factory=list)
    handled: int = 0
    # stored by an earlier attempt whose notification.created may not have gone out
    existing: list[dict[str, Any]] = field(default_factory=list)

    def events(self, *, source: str) -> list[Envelope[Any]]:
        """``notification.created`` for everything this call stored or found stored."""
        return [created_event(d, source=source) for d in (*self.created, *self.existing)]


# --- users and the daily cap ------------------------------------------------------------


def user_state(user: dict[str, Any] | None) -> tuple[Preferences | None, bool]:
    """``(preferences, deleted)`` of a replicated user (None: not replicated yet)."""
    if user is None:
        return None, False
    if user.get("deleted"):
        return None, True
    return Preferences.model_validate(user.get("preferences") or {}), False


def local_day(preferences: Preferences, now: datetime) -> str:
    """The user's calendar day at ``now`` (the daily cap resets at local midnight)."""
    return now.astimezone(ZoneInfo(preferences.timezone)).date().isoformat()


def decide_and_reserve(
    request: NotificationRequested,
    user: dict[str, Any] | None,
    now: datetime,
    policy: DeliveryPolicy,
    first_seen: datetime | None = None,
) -> Decision:
    """The pure decision plus the atomic cap reservation for a promotion to deliver."""
    preferences, deleted = user_state(user)
    cap = preferences.max_promotions_per_day if preferences else None
    day = local_day(preferences, now) if preferences else ""
    promotion = request.type == "promotion"
    today = delivery_store.promotions_on(request.user_id, day) if promotion and cap else 0
    decision = decide(
        request, preferences, today, now, user_deleted=deleted, first_seen=first_seen, policy=policy
    )
    if decision.outcome == "deliver" and promotion and cap is not None:
        if not delivery_store.reserve_promotion(request.user_id, day, request.idempotency_key, cap):
            decision = Decision.suppress("daily_cap")  # another replica took the last place
    return decision


# --- collapse groups --------------------------------------------------------------------


def _order(request: NotificationRequested) -> tuple[datetime, str]:
    """A request's place in its collapse group."""
    return ms(request.requested_at), request.idempotency_key


def _group(request: NotificationRequested) -> delivery_store.Group:
    assert request.collapse_key is not None
    return request.user_id, request.collapse_key


def _look_up(
    candidates: Sequence[NotificationRequested],
) -> tuple[list[tuple[bool, str | None]], set[delivery_store.Group]]:
    """``(superseded, replaced id)`` of each request (one per group): whether its group
    has a newer request, and the unread notification it will hide; and the groups that
    had versions. Two reads for the whole batch: the groups' newest versions, then the
    unread notifications of the groups that have one."""
    groups = [_group(r) for r in candidates]
    newest = delivery_store.newest_versions(groups)
    # A group's notifications go with its versions (retention, user deletion): a group
    # without one has nothing to replace.
    unread = delivery_store.unread_of(g for g in groups if g in newest)
    looked: list[tuple[bool, str | None]] = []
    for request, group in zip(candidates, groups, strict=True):
        top, order = newest.get(group), _order(request)
        if top is None:
            looked.append((False, None))
        elif delivery_store.place(top) > order:
            looked.append((True, None))
        else:
            older = [d for d in unread.get(group, ()) if delivery_store.place(d) < order]
            replaced = max(older, key=delivery_store.place) if older else None
            looked.append((False, str(replaced["_id"]) if replaced else None))
    return looked, set(newest)


def deliver_collapsing(
    requests: Sequence[NotificationRequested], now: datetime, *, source: str
) -> tuple[list[dict[str, Any]], set[str]]:
    """Deliver requests that have a collapse key, decided ``deliver``: the notifications
    created (redeliveries already stored create none) and the idempotency keys of the
    requests superseded by a newer one of their group (in the batch or stored).

    Only inserts decide a group's order (one version document per request, unique by
    ``(group, idempotency_key)``), so racing replicas need no atomic read-modify-write:
    whichever finishes last sees every version inserted before it and hides the rest.
    Per batch: the groups are read together, the versions and the notifications are
    inserted with one write each, and only groups with something to hide are updated;
    then the versions older than each winner are deleted (one write).
    """
    newest: dict[delivery_store.Group, NotificationRequested] = {}
    superseded: set[str] = set()
    for request in requests:
        group = _group(request)
        other = newest.get(group)
        if other is not None:
            older, request = sorted((other, request), key=_order)
            superseded.add(older.idempotency_key)
        newest[group] = request
    candidates = list(newest.values())
    looked, versioned = _look_up(candidates)
    winners: list[tuple[NotificationRequested, str | None]] = []
    for request, (newer_exists, replaced) in zip(candidates, looked, strict=True):
        if newer_exists:
            superseded.add(request.idempotency_key)
        else:
            winners.append((request, replaced))
    if not winners:
        return [], superseded
    delivery_store.add_versions(
        [delivery_store.version(*_group(r), *_order(r), now) for r, _ in winners]
    )
    created = delivery_store.insert_notifications(
        [new_notification_doc(r, now, source=source, replaced_id=rid) for r, rid in winners]
    )
    delivery_store.settle_collapse(_group(r) for r, _ in winners)
    # Each winner's version is now the newest its group has seen: older ones decide
    # nothing any more (a group seen for the first time has none to prune).
    pruned = [r for r, _ in winners if _group(r) in versioned]
    if pruned:
        delivery_store.prune_versions(
            [_group(r) for r in pruned], before=min(r.requested_at for r in pruned)
        )
    return created, superseded


def deliver_one(
    request: NotificationRequested, now: datetime, *, source: str
) -> tuple[Decision | None, dict[str, Any] | None]:
    """Store one request decided ``deliver`` on its own (a released deferral): the
    notification it created, and ``superseded`` when a newer one of its group won."""
    if request.collapse_key:
        created, superseded = deliver_collapsing([request], now, source=source)
        if superseded:
            return Decision.suppress("superseded"), None
        return None, created[0] if created else None
    inserted = delivery_store.insert_notifications(
        [build_notification(request, now, source=source)]
    )
    return None, inserted[0] if inserted else None


# --- the request pipeline ---------------------------------------------------------------

UsersLookup = Callable[[Iterable[str]], dict[str, dict[str, Any]]]


def process_requests(
    requests: Iterable[NotificationRequested],
    now: datetime,
    policy: DeliveryPolicy,
    *,
    source: str,
    maybe_seen: Collection[str] = (),
    get_users: UsersLookup | None = None,
) -> Outcome:
    """Decide and store a batch of requests (in order; duplicates in the batch once).

    ``maybe_seen`` names the idempotency keys of requests the broker may have delivered
    before: only those are looked up for an earlier decision. ``get_users`` reads the
    batch's users, tombstones included (default: the replica; the service passes its
    :class:`herald_common.replica_cache.UserCache`)."""
    unique: dict[str, NotificationRequested] = {}
    for request in requests:
        unique.setdefault(request.idempotency_key, request)
    keys = list(unique)
    outcome = Outcome(handled=len(keys))
    if not keys:
        return outcome

    stored, recorded = delivery_store.earlier_decisions(k for k in keys if k in maybe_seen)
    outcome.existing.extend(stored.values())
    user_ids = [r.user_id for r in unique.values()]
    users = get_users(user_ids) if get_users else replica.get_users(user_ids, include_deleted=True)

    plain: list[dict[str, Any]] = []
    collapsing: list[NotificationRequested] = []
    decided: list[tuple[NotificationRequested, Decision]] = []
    unsettled: list[delivery_store.Group] = []
    for key, request in unique.items():
        if key in stored:
            # Redelivered after it was stored; finish a collapse an earlier attempt may
            # have left unsettled (crash between insert and settle).
            if request.collapse_key:
                unsettled.append(_group(request))
            continue
        if key in recorded:
            continue  # already suppressed or deferred: decided once
        decision = decide_and_reserve(request, users.get(request.user_id), now, policy)
        if decision.outcome == "deliver" and request.collapse_key:
            collapsing.append(request)
        elif decision.outcome == "deliver":
            plain.append(new_notification_doc(request, now, source=source))
        decided.append((request, decision))
    delivery_store.settle_collapse(unsettled)
    created, superseded = deliver_collapsing(collapsing, now, source=source)
    outcome.created.extend(created)

    records: list[dict[str, Any]] = []
    held: list[tuple[NotificationRequested, datetime]] = []
    for request, decision in decided:
        if request.idempotency_key in superseded:
            decision = Decision.suppress("superseded")
        count_decision(decision.outcome, decision.reason, request.type)
        if decision.outcome == "hold" and decision.deliver_at is not None:
            held.append((request, decision.deliver_at))
        elif decision.outcome != "deliver":
            records.append(new_record(request, decision, now))
    outcome.created.extend(delivery_store.insert_notifications(plain))
    delivery_store.insert_records(records)
    digest_store.hold(held, now)
    return outcome
