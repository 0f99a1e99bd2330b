"""The delivery decision: a pure function of the request, the user's replicated
preferences, how many promotions the user already got today, and the time.

No storage and no clock inside, so every rule is unit-tested directly. The order of
the rules matters and is part of the contract:

1. deleted user → suppress ``user_deleted`` (even order updates: there is no inbox);
2. unknown user (``user.registered`` not replicated yet — events race) → defer
   ``unknown_user`` for a short recheck; after ``unknown_user_grace`` since the request
   was first seen → suppress ``unknown_user``;
3. type opted out → suppress ``opted_out`` (order updates cannot be opted out of);
4. order updates → deliver (transactional: no quiet hours, no cap, never held);
   then a type the user's digest holds → hold ``digest`` until the next slot
   (:func:`digest_slot`); the digest, not the held item, meets quiet hours and the cap;
5. quiet hours (for ``quiet_hours_types``) → defer ``quiet_hours`` until the window ends;
6. promotions over the daily cap → suppress ``daily_cap``;
7. otherwise deliver.

Quiet hours come before the cap on purpose: a promotion deferred overnight is counted
against the day it is actually delivered on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from herald_common.events import NotificationRequested
from herald_common.preferences import DigestPreference, Preferences

Outcome = Literal["deliver", "suppress", "defer", "hold"]
REASONS = (
    "user_deleted",
    "unknown_user",
    "opted_out",
    "quiet_hours",
    "daily_cap",
    "superseded",
    "digest",
)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Service-wide knobs of the decision (from settings)."""

    quiet_hours_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"promotion", "recommendation"})
    )
    unknown_user_recheck: timedelta = timedelta(seconds=10)
    unknown_user_grace: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Decision:
    """What to do with one request; ``deliver_at`` is set for deferrals."""

    outcome: Outcome
    reason: str | None = None
    deliver_at: datetime | None = None

    @staticmethod
    def deliver() -> Decision:
        return Decision("deliver")

    @staticmethod
    def suppress(reason: str) -> Decision:
        return Decision("suppress", reason)

    @staticmethod
    def defer(reason: str, until: datetime) -> Decision:
        return Decision("defer", reason, until)

    @staticmethod
    def hold(slot: datetime) -> Decision:
        return Decision("hold", "digest", slot)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on ``day`` in ``zone``. A time the clocks skip
    (spring forward) is read with the offset before the jump (02:30 → 03:30 summer
    time); a time that happens twice (fall back) is its first occurrence."""
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def digest_slot(digest: DigestPreference, timezone: str, now: datetime) -> datetime:
    """The next digest slot strictly after ``now`` (aware, UTC): the next full hour of
    the user's wall clock (hourly), or the next ``at`` of it (daily)."""
    zone = ZoneInfo(timezone)
    now = now.astimezone(UTC)
    if digest.frequency == "hourly":
        # Offsets are whole quarters of an hour: the next local full hour is one of the
        # next four UTC quarter-hours (five across a DST change of 30 minutes).
        quarter = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        for step in range(1, 9):
            candidate = quarter + timedelta(minutes=15 * step)
            if candidate.astimezone(zone).minute == 0:
                return candidate
        raise ValueError(f"no full hour within two hours in {timezone}")
    if digest.frequency == "daily" and digest.at is not None:
        at = time.fromisoformat(digest.at)
        today = now.astimezone(zone).date()
        for offset in range(3):
            candidate = local_instant(today + timedelta(days=offset), at, zone)
            if candidate > now:
                return candidate
    raise ValueError("digest_slot needs an hourly or daily digest")


DEFAULT_POLICY = DeliveryPolicy()


def decide(
    request: NotificationRequested,
    preferences: Preferences | None,
    promotions_today: int,
    now: datetime,
    *,
    user_deleted: bool = False,
    first_seen: datetime | None = None,
    policy: DeliveryPolicy = DEFAULT_POLICY,
) -> Decision:
    """Decide whether ``request`` is delivered now, deferred, or suppressed.

    ``preferences`` is None when the replica has no live user; ``user_deleted`` tells a
    deleted user from one not replicated yet. ``first_seen`` is when this request was
    first evaluated (for re-evaluations of a deferred request); ``now`` must be aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if user_deleted:
        return Decision.suppress("user_deleted")
    if preferences is None:
        since = first_seen or now
        give_up_at = since + policy.unknown_user_grace
        if now >= give_up_at:
            return Decision.suppress("unknown_user")
        return Decision.defer("unknown_user", min(now + policy.unknown_user_recheck, give_up_at))
    if not preferences.wants(request.type):
        return Decision.suppress("opted_out")
    if request.type == "order_update":
        return Decision.deliver()
    if preferences.digest.holds(request.type):
        return Decision.hold(digest_slot(preferences.digest, preferences.timezone, now))
    if request.type in policy.quiet_hours_types:
        ends = preferences.quiet_hours_end(now)
        if ends is not None:
            return Decision.defer("quiet_hours", ends)
    cap = preferences.max_promotions_per_day
    if request.type == "promotion" and cap is not None and promotions_today >= cap:
        return Decision.suppress("daily_cap")
    return Decision.deliver()
