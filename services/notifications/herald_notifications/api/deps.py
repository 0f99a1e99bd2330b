"""Shared route dependencies."""

from __future__ import annotations

from fastapi import Request
from herald_common.errors import Unavailable

from herald_notifications.service import NotificationService


def service(request: Request) -> NotificationService:
    svc: NotificationService | None = getattr(request.app.state, "notifications", None)
    if svc is None:
        raise Unavailable("notifications service is starting")
    return svc
