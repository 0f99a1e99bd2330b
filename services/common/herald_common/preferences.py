"""User notification preferences: the one definition shared by every component.

The users service owns them; notifications and scheduler keep replicas built from
``user.*`` events; the gateway exposes them. ``PreferencesPatch`` is a partial update.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NOTIFICATION_TYPES = ("promotion", "order_update", "recommendation")
CHANNELS = ("in_app", "email", "push")
# Types a digest may hold; order updates are transactional and never held.
DIGEST_TYPES = ("promotion", "recommendation")
DigestFrequency = Literal["off", "hourly", "daily"]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHours(BaseModel):
    """A daily window ("22:00" to "07:30") in the user's time zone; may wrap midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(description="HH:MM, 24h clock")
    end: str = Field(description="HH:MM, 24h clock")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be a time of day as HH:MM (00:00-23:59)")
        return value

    def _bounds(self) -> tuple[time, time]:
        return time.fromisoformat(self.start), time.fromisoformat(self.end)

    def contains(self, local: time) -> bool:
        start, end = self._bounds()
        if start == end:
            return False
        if start < end:
            return start <= local < end
        return local >= start or local < end


class DigestPreference(BaseModel):
    """Hold notifications of ``types`` and deliver them together: every hour (on the
    hour) or every day at ``at``, both in the user's time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frequency: DigestFrequency = "off"
    at: str | None = Field(default=None, description="HH:MM, 24h clock (daily digests)")
    types: list[str] = Field(default_factory=lambda: list(DIGEST_TYPES))

    @field_validator("at")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise ValueError("must be a time of day as HH:MM (00:00-23:59)")
        return value

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        if "order_update" in value:
            raise ValueError("order updates are never held for a digest")
        unknown = sorted(set(value) - set(DIGEST_TYPES))
        if unknown:
            raise ValueError(f"unknown type(s) {unknown}; allowed: {list(DIGEST_TYPES)}")
        if not value:
            raise ValueError("give at least one type (or frequency off)")
        return [t for t in DIGEST_TYPES if t in value]

    @model_validator(mode="after")
    def _daily_needs_at(self) -> DigestPreference:
        if self.frequency == "daily" and self.at is None:
            raise ValueError("at: a daily digest needs a time of day (HH:MM)")
        return self

    def holds(self, notification_type: str) -> bool:
        return self.frequency != "off" and notification_type in self.types


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    # available_timezones() walks the tz database on every call (milliseconds);
    # replicas validate preferences per user, so look the set up once per process.
    return frozenset(available_timezones())


def validate_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    if value not in _known_timezones() and value != "UTC":
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


def _channels(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(CHANNELS))
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; allowed: {list(CHANNELS)}")
    # in-app delivery is always on: it is where the inbox lives.
    ordered = ["in_app", *[c for c in CHANNELS if c in value and c != "in_app"]]
    return ordered


class Preferences(BaseModel):
    """A user's complete, current notification preferences."""

    model_config = ConfigDict(extra="forbid")

    promotions: bool = True
    order_updates: bool = True
    recommendations: bool = True
    channels: list[str] = Field(default_factory=lambda: ["in_app"])
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"
    max_promotions_per_day: int | None = Field(default=None, ge=0, le=1000)
    digest: DigestPreference = Field(default_factory=DigestPreference)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return validate_timezone(value)

    @field_validator("channels")
    @classmethod
    def _ch(cls, value: list[str]) -> list[str]:
        return _channels(value)

    def wants(self, notification_type: str) -> bool:
        """Whether the user opted into this type. Order updates are transactional."""
        if notification_type == "order_update":
            return True
        if notification_type == "promotion":
            return self.promotions
        if notification_type == "recommendation":
            return self.recommendations
        raise ValueError(f"unknown notification type {notification_type!r}")

    def in_quiet_hours(self, at: datetime) -> bool:
        """True when ``at`` (aware) falls inside the user's quiet hours."""
        if self.quiet_hours is None:
            return False
        local = at.astimezone(ZoneInfo(self.timezone))
        return self.quiet_hours.contains(local.time().replace(tzinfo=None))

    def quiet_hours_end(self, at: datetime) -> datetime | None:
        """When the current quiet window ends (aware, UTC), or None if not in one."""
        if self.quiet_hours is None or not self.in_quiet_hours(at):
            return None
        tz = ZoneInfo(self.timezone)
        local = at.astimezone(tz)
        end = time.fromisoformat(self.quiet_hours.end)
        candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if candidate <= local:
            candidate = (local + timedelta(days=1)).replace(
                hour=end.hour, minute=end.minute, second=0, microsecond=0
            )
        return candidate.astimezone(ZoneInfo("UTC"))

    def apply(self, patch: PreferencesPatch) -> Preferences:
        """A new Preferences with the fields set in ``patch`` replaced."""
        changes = patch.model_dump(exclude_unset=True)
        if "quiet_hours" in changes and changes["quiet_hours"] is not None:
            changes["quiet_hours"] = QuietHours(**changes["quiet_hours"])
        if "digest" in changes:
            changes["digest"] = DigestPreference(**(changes["digest"] or {}))
        return Preferences.model_validate({**self.model_dump(), **changes})


class PreferencesPatch(BaseModel):
    """A partial preferences update: only the fields present change.

    ``quiet_hours: null`` clears the quiet window.
    """

    model_config = ConfigDict(extra="forbid")

    promotions: bool | None = None
    order_updates: bool | None = None
    recommendations: bool | None = None
    channels: list[str] | None = None
    quiet_hours: QuietHours | None = None
    timezone: str | None = None
    max_promotions_per_day: int | None = Field(default=None, ge=0, le=1000)
    digest: DigestPreference | None = None  # null: digests off

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)

    @field_validator("channels")
    @classmethod
    def _ch(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _channels(value)

    @field_validator("promotions", "order_updates", "recommendations")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("must be true or false, not null")
        return value
