"""The delivery decision, rule by rule (pure: no servers)."""

from datetime import UTC, datetime, timedelta

import pytest
from herald_common.events import NotificationRequested
from herald_common.preferences import Preferences, QuietHours
from herald_notifications.decisions import Decision, DeliveryPolicy, decide

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def req(type_: str = "promotion") -> NotificationRequested:
    return NotificationRequested(
        idempotency_key="k",
        user_id="u",
        type=type_,
        content="hi",
        source="test",
        requested_at=NOON,
    )


def test_plain_request_is_delivered() -> None:
    for type_ in ("promotion", "order_update", "recommendation"):
        assert decide(req(type_), Preferences(), 0, NOON) == Decision.deliver()


@pytest.mark.parametrize(
    ("type_", "prefs"),
    [("promotion", {"promotions": False}), ("recommendation", {"recommendations": False})],
)
def test_opted_out_type_is_suppressed(type_, prefs) -> None:
    assert decide(req(type_), Preferences(**prefs), 0, NOON) == Decision.suppress("opted_out")


def test_order_updates_are_always_delivered() -> None:
    strict = Preferences(
        order_updates=False,
        promotions=False,
        quiet_hours=QuietHours(start="00:00", end="23:59"),
        max_promotions_per_day=0,
    )
    assert decide(req("order_update"), strict, 99, NOON) == Decision.deliver()


def test_quiet_hours_defer_until_the_window_ends_in_the_users_zone() -> None:
    # 12:00 UTC is 21:00 in Tokyo; quiet 20:00-08:00 local ends at 23:00 UTC.
    prefs = Preferences(timezone="Asia/Tokyo", quiet_hours=QuietHours(start="20:00", end="08:00"))
    decision = decide(req(), prefs, 0, NOON)
    assert decision == Decision.defer("quiet_hours", datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    assert decide(req("recommendation"), prefs, 0, NOON).outcome == "defer"
    # At the end of the window it goes out.
    assert decide(req(), prefs, 0, decision.deliver_at).outcome == "deliver"


def test_quiet_hours_types_are_configurable() -> None:
    prefs = Preferences(quiet_hours=QuietHours(start="11:00", end="13:00"))
    only_promotions = DeliveryPolicy(quiet_hours_types=frozenset({"promotion"}))
    assert decide(req("recommendation"), prefs, 0, NOON, policy=only_promotions).outcome == (
        "deliver"
    )
    assert decide(req("promotion"), prefs, 0, NOON, policy=only_promotions).outcome == "defer"


def test_daily_cap_applies_to_promotions_only() -> None:
    prefs = Preferences(max_promotions_per_day=3)
    assert decide(req(), prefs, 2, NOON) == Decision.deliver()
    assert decide(req(), prefs, 3, NOON) == Decision.suppress("daily_cap")
    assert decide(req("recommendation"), prefs, 3, NOON) == Decision.deliver()
    assert decide(req(), Preferences(max_promotions_per_day=None), 500, NOON).outcome == "deliver"
    assert decide(req(), Preferences(max_promotions_per_day=0), 0, NOON).reason == "daily_cap"


def test_quiet_hours_come_before_the_cap() -> None:
    # Deferred overnight, the promotion counts against the day it is delivered on.
    prefs = Preferences(
        quiet_hours=QuietHours(start="11:00", end="13:00"), max_promotions_per_day=1
    )
    assert decide(req(), prefs, 1, NOON).reason == "quiet_hours"


def test_opt_out_comes_before_quiet_hours() -> None:
    prefs = Preferences(promotions=False, quiet_hours=QuietHours(start="11:00", end="13:00"))
    assert decide(req(), prefs, 0, NOON).reason == "opted_out"


def test_unknown_user_is_rechecked_then_given_up() -> None:
    policy = DeliveryPolicy(
        unknown_user_recheck=timedelta(seconds=10), unknown_user_grace=timedelta(minutes=1)
    )
    first = decide(req("order_update"), None, 0, NOON, policy=policy)
    assert first == Decision.defer("unknown_user", NOON + timedelta(seconds=10))
    # Re-evaluated later: the recheck never goes past the grace period...
    later = NOON + timedelta(seconds=55)
    assert decide(req(), None, 0, later, first_seen=NOON, policy=policy) == Decision.defer(
        "unknown_user", NOON + timedelta(minutes=1)
    )
    # ...and at its end the request is suppressed.
    end = NOON + timedelta(minutes=1)
    assert decide(req(), None, 0, end, first_seen=NOON, policy=policy) == Decision.suppress(
        "unknown_user"
    )


def test_deleted_user_gets_nothing() -> None:
    for type_ in ("promotion", "order_update"):
        assert decide(req(type_), None, 0, NOON, user_deleted=True) == Decision.suppress(
            "user_deleted"
        )


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(req(), Preferences(), 0, datetime(2026, 3, 10, 12, 0))


# --- digests: the hold rule and the slots ------------------------------------------------


def _digest(**kw: object) -> Preferences:
    from herald_common.preferences import DigestPreference

    return Preferences(timezone="Europe/Paris", digest=DigestPreference(**kw))  # type: ignore[arg-type]


def test_digest_holds_its_types_until_the_next_slot_and_never_order_updates() -> None:
    prefs = _digest(frequency="hourly", types=["recommendation"])
    assert decide(req("recommendation"), prefs, 0, NOON) == Decision.hold(
        datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    )
    assert decide(req("promotion"), prefs, 0, NOON) == Decision.deliver()
    assert decide(req("order_update"), _digest(frequency="hourly"), 0, NOON) == Decision.deliver()
    assert decide(req("promotion"), _digest(frequency="off"), 0, NOON) == Decision.deliver()


def test_held_items_skip_quiet_hours_and_the_cap_the_digest_meets_them() -> None:
    from herald_common.preferences import DigestPreference

    prefs = Preferences(
        quiet_hours=QuietHours(start="11:00", end="14:00"),
        max_promotions_per_day=1,
        digest=DigestPreference(frequency="daily", at="18:00"),
    )
    assert decide(req("promotion"), prefs, 5, NOON) == Decision.hold(
        datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
    )
    # Opting out still wins over holding.
    opted_out = prefs.model_copy(update={"promotions": False})
    assert decide(req("promotion"), opted_out, 0, NOON) == Decision.suppress("opted_out")


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        # Winter time (UTC+1): 08:00 local is 07:00 UTC.
        ("2026-03-27T06:59:00+00:00", "2026-03-27T07:00:00+00:00"),
        ("2026-03-27T07:00:00+00:00", "2026-03-28T07:00:00+00:00"),
        # Summer time starts on 29 March at 02:00: 08:00 local is 06:00 UTC from then.
        ("2026-03-28T07:30:00+00:00", "2026-03-29T06:00:00+00:00"),
        ("2026-03-29T06:30:00+00:00", "2026-03-30T06:00:00+00:00"),
        # Winter time again from 25 October.
        ("2026-10-24T07:00:00+00:00", "2026-10-25T07:00:00+00:00"),
    ],
)
def test_daily_slot_is_the_users_wall_clock_across_dst(now: str, slot: str) -> None:
    from herald_notifications.decisions import digest_slot

    digest = _digest(frequency="daily", at="08:00").digest
    got = digest_slot(digest, "Europe/Paris", datetime.fromisoformat(now))
    assert got == datetime.fromisoformat(slot)


def test_slots_at_times_the_clock_skips_or_repeats_and_half_hour_zones() -> None:
    from herald_common.preferences import DigestPreference
    from herald_notifications.decisions import digest_slot

    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    # 02:30 does not exist in Paris on 29 March: read with the winter offset (03:30 CEST).
    skipped = digest_slot(DigestPreference(frequency="daily", at="02:30"), "Europe/Paris", saturday)
    assert skipped == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 02:30 happens twice on 25 October: the first one (still summer time).
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    twice = digest_slot(DigestPreference(frequency="daily", at="02:30"), "Europe/Paris", autumn)
    assert twice == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    hourly = DigestPreference(frequency="hourly")
    # India is UTC+05:30: its full hours are at :30 UTC.
    assert digest_slot(hourly, "Asia/Kolkata", saturday) == datetime(
        2026, 3, 28, 12, 30, tzinfo=UTC
    )
    # Across the jump the next full hour of the Paris clock is still one UTC hour away.
    assert digest_slot(hourly, "Europe/Paris", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) == (
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    )
