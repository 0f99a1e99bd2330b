"""Request and response bodies of the inbox API (snake_case JSON), and its dependencies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from herald_common.app import Caller
from herald_common.errors import Unavailable
from pydantic import BaseModel, ConfigDict, Field

from herald_notifications.domain import MAX_IDS, DeliveriesDomain, InboxDomain
from herald_notifications.service import NotificationService

__all__ = ["Caller", "Deliveries", "Inbox"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdsIn(Body):
    ids: list[Annotated[str, Field(max_length=200)]] = Field(max_length=MAX_IDS)


class OptionalIdsIn(Body):
    ids: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=MAX_IDS, description="null or absent: every unseen one"
    )


class SnoozeIn(Body):
    until: str = Field(
        max_length=100,
        description="ISO-8601 with a zone, in the future, at most 30 days ahead",
        examples=["2026-03-10T18:00:00+01:00"],
    )


class NotificationOut(BaseModel):
    """A notification as the API (and the real-time push) shows it."""

    # Fields added by the inbox's other features pass through unchanged.
    model_config = ConfigDict(extra="allow")

    id: str
    user_id: str
    type: str
    content: str | dict[str, Any]
    sent_at: str
    read: bool
    read_at: str | None
    seen: bool
    seen_at: str | None
    archived: bool
    archived_at: str | None
    snoozed_until: str | None
    collapse_key: str | None
    source: str


class EdgeOut(BaseModel):
    cursor: str
    node: NotificationOut


class PageInfoOut(BaseModel):
    has_next_page: bool
    end_cursor: str | None


class PageOut(BaseModel):
    edges: list[EdgeOut]
    page_info: PageInfoOut
    total_count: int | None = Field(
        description="How many the whole list holds; null when asked with total=false"
    )


class CountOut(BaseModel):
    count: int


class ChangedOut(BaseModel):
    changed: int = Field(description="how many notifications changed")


def _service(request: Request) -> NotificationService:
    svc: NotificationService | None = getattr(request.app.state, "notifications", None)
    if svc is None:
        raise Unavailable("notifications service is starting")
    return svc


def inbox_domain(request: Request) -> InboxDomain:
    """FastAPI dependency: the process's inbox use cases (set up in the lifespan)."""
    return _service(request).inbox


def deliveries_domain(request: Request) -> DeliveriesDomain:
    """FastAPI dependency: delivery records, the delivery log and email states."""
    return _service(request).deliveries


Inbox = Annotated[InboxDomain, Depends(inbox_domain)]
Deliveries = Annotated[DeliveriesDomain, Depends(deliveries_domain)]
