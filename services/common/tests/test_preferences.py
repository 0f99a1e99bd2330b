"""Preference logic: quiet hours across midnight and time zones, partial updates."""

from datetime import UTC, datetime

import pytest
from herald_common.preferences import Preferences, PreferencesPatch, QuietHours
from pydantic import ValidationError


def test_quiet_hours_wrapping_midnight_in_the_users_zone() -> None:
    prefs = Preferences(timezone="Europe/Paris", quiet_hours=QuietHours(start="22:00", end="07:30"))
    # 21:30 UTC = 22:30 in Paris (winter): quiet
    assert prefs.in_quiet_hours(datetime(2026, 1, 10, 21, 30, tzinfo=UTC))
    # 07:00 UTC = 08:00 Paris: not quiet
    assert not prefs.in_quiet_hours(datetime(2026, 1, 10, 7, 0, tzinfo=UTC))
    end = prefs.quiet_hours_end(datetime(2026, 1, 10, 21, 30, tzinfo=UTC))
    assert end == datetime(2026, 1, 11, 6, 30, tzinfo=UTC)


def test_daytime_window() -> None:
    prefs = Preferences(quiet_hours=QuietHours(start="12:00", end="13:00"))
    assert prefs.in_quiet_hours(datetime(2026, 1, 1, 12, 15, tzinfo=UTC))
    assert not prefs.in_quiet_hours(datetime(2026, 1, 1, 13, 0, tzinfo=UTC))


def test_partial_update_keeps_other_fields() -> None:
    prefs = Preferences(promotions=False, max_promotions_per_day=3)
    updated = prefs.apply(PreferencesPatch(timezone="America/New_York"))
    assert updated.promotions is False
    assert updated.max_promotions_per_day == 3
    assert updated.timezone == "America/New_York"
    cleared = updated.apply(PreferencesPatch.model_validate({"max_promotions_per_day": None}))
    assert cleared.max_promotions_per_day is None


def test_order_updates_always_wanted() -> None:
    prefs = Preferences(order_updates=False, promotions=False)
    assert prefs.wants("order_update")
    assert not prefs.wants("promotion")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"channels": ["pigeon"]}, "channels"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"max_promotions_per_day": -1}, "max_promotions_per_day"),
        ({"promotions": None}, "promotions"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_patches_name_the_field(patch: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        PreferencesPatch.model_validate(patch)
    locs = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert field in locs


def test_in_app_channel_is_always_on() -> None:
    assert Preferences(channels=["email"]).channels == ["in_app", "email"]


def test_validating_many_preferences_reuses_the_time_zone_list() -> None:
    from herald_common.preferences import _known_timezones

    for _ in range(3):
        Preferences.model_validate({"timezone": "Europe/Paris"})
    # One scan of the tz database per process, however many users are validated.
    assert _known_timezones.cache_info().currsize == 1
    assert "Europe/Paris" in _known_timezones()
