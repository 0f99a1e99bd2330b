"""When schedules fire: cron expressions in a time zone, and local intervals.

Cron expressions are the standard 5-field kind Kubernetes CronJobs accept (plus the
``@hourly``-style macros), evaluated with croniter in the resource's IANA time zone, so
a file fires at the same instants locally and in a cluster.

Daylight saving time: a wall-clock time that does not exist (spring forward) fires at
the first instant after the gap; one that exists twice (fall back) fires once, at its
first occurrence.

``herald.io/local-interval`` (annotation, e.g. ``"10s"``) lets the local runner fire a
resource every N seconds instead of on its cron schedule, for demos; Kubernetes ignores
the annotation and keeps using the cron schedule, so one file serves both worlds.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from herald_common.preferences import validate_timezone

LOCAL_INTERVAL_ANNOTATION = "herald.io/local-interval"
MACROS = ("@annually", "@yearly", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def validate_cron(expr: str) -> str:
    """Return ``expr`` if it is a 5-field cron expression or macro, else raise ValueError."""
    text = expr.strip()
    if text.startswith("@"):
        if text not in MACROS:
            raise ValueError(f"unknown macro {text!r}; allowed: {', '.join(MACROS)}")
        return text
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression needs 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    if not croniter.is_valid(text):
        raise ValueError(f"invalid cron expression {text!r}")
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError as exc:  # e.g. "0 0 31 2 *": valid syntax, never fires
        raise ValueError(f"cron expression {text!r} never fires") from exc
    return text


def validate_time_zone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone, else raise ValueError."""
    return validate_timezone(name)


def _ambiguous(dt: datetime) -> bool:
    return dt.replace(fold=0).utcoffset() != dt.replace(fold=1).utcoffset()


def next_fire(expr: str, time_zone: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` (aware) at which ``expr`` fires in
    ``time_zone``; returned in UTC."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    it = croniter(expr, after.astimezone(ZoneInfo(time_zone)))
    candidate: datetime = it.get_next(datetime)
    # The second occurrence of a repeated wall-clock time (fold=1) was already fired by
    # the first one: a daily 02:30 job runs once on the night the clocks go back.
    while candidate.fold == 1 and _ambiguous(candidate):
        candidate = it.get_next(datetime)
    return candidate.astimezone(UTC)


def latest_fire(expr: str, time_zone: str, at: datetime) -> datetime:
    """The scheduled instant at or before ``at`` (aware): the slot a fire belongs to."""
    it = croniter(expr, (at + timedelta(microseconds=1)).astimezone(ZoneInfo(time_zone)))
    candidate: datetime = it.get_prev(datetime)
    while candidate.fold == 1 and _ambiguous(candidate):
        candidate = it.get_prev(datetime)
    return candidate.astimezone(UTC)


def parse_interval(text: str) -> timedelta:
    """``"10s"``, ``"5m"``, ``"1h"`` → timedelta; raises ValueError otherwise."""
    match = _INTERVAL.match(text or "")
    if not match:
        raise ValueError(f"interval {text!r} must look like 10s, 5m or 1h")
    seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if seconds < 1:
        raise ValueError("interval must be at least 1s")
    return timedelta(seconds=seconds)


def next_interval_fire(interval: timedelta, after: datetime) -> datetime:
    """The first multiple of ``interval`` since the epoch strictly after ``after``.

    Aligned slots make two runners (or two restarts) agree on slot boundaries, so their
    run ids collide and de-duplicate instead of firing twice.
    """
    step = interval.total_seconds()
    elapsed = (after.astimezone(UTC) - _EPOCH).total_seconds()
    slots = int(elapsed // step) + 1
    return _EPOCH + timedelta(seconds=slots * step)


def slot_run_id(name: str, slot: datetime, *, seconds: bool = False) -> str:
    """Run id of a scheduled firing: the campaign name plus the scheduled minute (UTC),
    or second for sub-minute local intervals. Two pods firing the same slot agree."""
    fmt = "%Y%m%dt%H%M%S" if seconds else "%Y%m%dt%H%M"
    return f"{name}-{slot.astimezone(UTC).strftime(fmt)}z"
