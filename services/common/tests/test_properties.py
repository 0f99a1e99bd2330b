"""Property tests (hypothesis) of the shared pure logic: preferences and their patches,
quiet hours across time zones, cron schedules in time zones, intervals.

Example counts are bounded (``max_examples``) so the suite stays fast; every property
states what must hold for *any* input, not for a handful of examples.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from herald_common.preferences import (
    CHANNELS,
    NOTIFICATION_TYPES,
    Preferences,
    PreferencesPatch,
    QuietHours,
    validate_timezone,
)
from herald_common.resources.cron import (
    latest_fire,
    next_fire,
    next_interval_fire,
    parse_interval,
    validate_cron,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ZONES = st.sampled_from(
    [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "America/St_Johns",
        "Asia/Kathmandu",
        "Pacific/Kiritimati",
        "America/Sao_Paulo",
    ]
)
HHMM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
QUIET = st.builds(QuietHours, start=HHMM, end=HHMM)
PREFERENCES = st.builds(
    Preferences,
    promotions=st.booleans(),
    order_updates=st.booleans(),
    recommendations=st.booleans(),
    channels=st.lists(st.sampled_from(CHANNELS), max_size=5),
    quiet_hours=st.none() | QUIET,
    timezone=ZONES,
    max_promotions_per_day=st.none() | st.integers(0, 1000),
)


# --- quiet hours -------------------------------------------------------------------------


@FAST
@given(QUIET, st.times())
def test_quiet_hours_contains_matches_its_definition(window: QuietHours, local: time) -> None:
    start, end = time.fromisoformat(window.start), time.fromisoformat(window.end)
    local = local.replace(tzinfo=None)
    if start == end:
        expected = False
    elif start < end:
        expected = start <= local < end
    else:  # wraps midnight: the complement of [end, start)
        expected = not (end <= local < start)
    assert window.contains(local) is expected


@FAST
@given(HHMM, HHMM, st.times())
def test_a_window_and_its_complement_partition_the_day(a: str, b: str, local: time) -> None:
    if a == b:
        return
    inside = QuietHours(start=a, end=b).contains(local)
    outside = QuietHours(start=b, end=a).contains(local)
    assert inside != outside


@FAST
@given(PREFERENCES, INSTANTS)
def test_quiet_hours_end_is_after_now_and_outside_the_window(
    prefs: Preferences, at: datetime
) -> None:
    end = prefs.quiet_hours_end(at)
    if not prefs.in_quiet_hours(at):
        assert end is None
        return
    assert end is not None and end.tzinfo is not None
    assert end > at
    # At most one day later (a window is shorter than a day) plus a DST shift.
    assert end - at <= timedelta(days=1, hours=3)
    # Where the end's wall-clock time exists, the window is over then.
    assert prefs.quiet_hours is not None
    local_end = end.astimezone(ZoneInfo(prefs.timezone))
    if local_end.strftime("%H:%M") == prefs.quiet_hours.end:
        assert not prefs.in_quiet_hours(end)


# --- preferences and patches -------------------------------------------------------------


@FAST
@given(PREFERENCES)
def test_preferences_round_trip_and_invariants(prefs: Preferences) -> None:
    again = Preferences.model_validate(prefs.model_dump())
    assert again == prefs
    assert prefs.channels[0] == "in_app"
    assert len(prefs.channels) == len(set(prefs.channels))
    assert prefs.wants("order_update")
    for kind in NOTIFICATION_TYPES:
        assert isinstance(prefs.wants(kind), bool)


PATCH_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "promotions": st.booleans(),
        "order_updates": st.booleans(),
        "recommendations": st.booleans(),
        "channels": st.lists(st.sampled_from(CHANNELS), max_size=4),
        "quiet_hours": st.none() | st.fixed_dictionaries({"start": HHMM, "end": HHMM}),
        "timezone": ZONES,
        "max_promotions_per_day": st.none() | st.integers(0, 1000),
    },
)


@FAST
@given(PREFERENCES, PATCH_VALUES)
def test_a_patch_changes_only_the_fields_it_sets(prefs: Preferences, values: dict) -> None:
    patch = PreferencesPatch.model_validate(values)
    result = prefs.apply(patch)
    before, after = prefs.model_dump(), result.model_dump()
    for key in before:
        if key not in values:
            assert after[key] == before[key], key
    if "quiet_hours" in values:
        assert after["quiet_hours"] == values["quiet_hours"]
    # Applying the same patch twice is the same as once.
    assert result.apply(patch) == result


JUNK = (
    st.none()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.lists(st.text(max_size=5), max_size=3)
)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "promotions",
                "channels",
                "quiet_hours",
                "timezone",
                "max_promotions_per_day",
                "unknown",
            ]
        ),
        JUNK,
        max_size=4,
    )
)
def test_any_patch_is_accepted_or_refused_with_a_validation_error(values: dict) -> None:
    """Garbage never raises anything but ValidationError (the users service turns it into
    BAD_USER_INPUT naming the field, e.g. ``channels: null``), and what applies is valid."""
    try:
        patch = PreferencesPatch.model_validate(values)
        result = Preferences().apply(patch)
    except ValidationError as exc:
        assert exc.errors() and all(e["loc"] for e in exc.errors())
        return
    assert Preferences.model_validate(result.model_dump()) == result


@FAST
@given(st.text(max_size=40))
def test_time_zone_validation_accepts_only_loadable_zones(name: str) -> None:
    try:
        validate_timezone(name)
    except ValueError:
        return
    ZoneInfo(name)  # accepted names load


@FAST
@given(st.text(max_size=8))
def test_quiet_hours_accept_only_hh_mm(text: str) -> None:
    try:
        QuietHours(start=text, end="07:00")
    except ValidationError:
        return
    hour, minute = text.split(":")
    assert len(hour) == 2 and len(minute) == 2 and 0 <= int(hour) < 24 and 0 <= int(minute) < 60


# --- cron in time zones -----------------------------------------------------------------

CRON = st.sampled_from(
    [
        "*/5 * * * *",
        "0 * * * *",
        "30 2 * * *",
        "0 9 * * 1-5",
        "15 1 1 * *",
        "0 0 29 2 *",
        "@daily",
        "@hourly",
        "@weekly",
        "45 23 * * 0",
    ]
)


@FAST
@given(CRON, ZONES, INSTANTS)
def test_next_fire_is_strictly_after_and_the_latest_fire_of_itself(
    expr: str, zone: str, after: datetime
) -> None:
    fire = next_fire(expr, zone, after)
    assert fire > after and fire.tzinfo is not None
    assert latest_fire(expr, zone, fire) == fire
    # No fire is skipped between ``after`` and ``fire``.
    assert latest_fire(expr, zone, fire - timedelta(microseconds=1)) <= after


@FAST
@given(CRON, ZONES, INSTANTS)
def test_successive_fires_increase(expr: str, zone: str, after: datetime) -> None:
    first = next_fire(expr, zone, after)
    second = next_fire(expr, zone, first)
    assert second > first


@FAST
@given(st.text(max_size=30))
def test_cron_validation_refuses_cleanly(text: str) -> None:
    try:
        validate_cron(text)
    except ValueError:
        return
    next_fire(text.strip(), "UTC", datetime(2024, 1, 1, tzinfo=UTC))


@FAST
@given(st.integers(1, 10_000), st.sampled_from(["s", "m", "h"]), INSTANTS)
def test_interval_fires_on_multiples(n: int, unit: str, after: datetime) -> None:
    interval = parse_interval(f"{n}{unit}")
    fire = next_interval_fire(interval, after)
    assert after < fire <= after + interval
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert (fire - epoch) % interval == timedelta(0)


@FAST
@given(st.text(max_size=12))
def test_interval_parsing_refuses_cleanly(text: str) -> None:
    try:
        interval = parse_interval(text)
    except ValueError:
        return
    assert interval >= timedelta(seconds=1)


@pytest.mark.parametrize("text", ["0s", "", "10", "1d", "-5m"])
def test_interval_examples_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_interval(text)
