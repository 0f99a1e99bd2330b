"""Typed ``NotificationCampaign`` and ``Schedule`` resources (pydantic).

Field names are Python's (``time_zone``) with the CRD's camelCase names as aliases
(``timeZone``); documents are validated against the CRD first (:mod:`.loading`), so the
models only have to type what the schema already allowed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from herald_common.resources.cron import LOCAL_INTERVAL_ANNOTATION, parse_interval
from herald_common.resources.tasks import TaskName


class _Camel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Metadata(_Camel):
    """The part of ``metadata`` Herald reads."""

    name: str
    namespace: str = "default"
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None


class Audience(_Camel):
    """Users opted into the campaign's type, optionally narrowed by a segment."""

    categories: list[str] = Field(default_factory=list)
    user_ids: list[str] = Field(default_factory=list, alias="userIds")


class Template(_Camel):
    """Content rendered per user."""

    title: str
    body: str
    data: dict[str, Any] = Field(default_factory=dict)


class CampaignSpec(_Camel):
    """``spec`` of a NotificationCampaign."""

    type: Literal["promotion", "recommendation"]
    schedule: str | None = None
    time_zone: str = Field(default="UTC", alias="timeZone")
    run_at: AwareDatetime | None = Field(default=None, alias="runAt")
    audience: Audience = Field(default_factory=Audience)
    template: Template
    suspend: bool = False
    dry_run: bool = Field(default=False, alias="dryRun")


class ScheduleSpec(_Camel):
    """``spec`` of a Schedule."""

    task: TaskName
    schedule: str
    time_zone: str = Field(default="UTC", alias="timeZone")
    parameters: dict[str, Any] = Field(default_factory=dict)
    suspend: bool = False
    requested_run_at: AwareDatetime | None = Field(default=None, alias="requestedRunAt")


class _Resource(_Camel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: Metadata
    # Where the resource came from (a file path, or "<cluster>"): for messages only.
    source: str = ""

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.metadata.name}"

    @property
    def local_interval(self) -> timedelta | None:
        """The ``herald.io/local-interval`` annotation as a timedelta, or None."""
        raw = self.metadata.annotations.get(LOCAL_INTERVAL_ANNOTATION)
        return parse_interval(raw) if raw else None


class NotificationCampaign(_Resource):
    """A campaign; :func:`herald_common.resources.firing.campaign_fired` maps it to the
    ``campaign.fired`` payload."""

    kind: Literal["NotificationCampaign"]
    spec: CampaignSpec


class Schedule(_Resource):
    """A recurring system task."""

    kind: Literal["Schedule"]
    spec: ScheduleSpec


Resource = NotificationCampaign | Schedule
