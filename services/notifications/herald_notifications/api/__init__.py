"""HTTP routes of the notifications service (see ARCHITECTURE.md, notifications 4002)."""

from herald_notifications.api.deliveries import router as deliveries_router
from herald_notifications.api.emails import router as emails_router
from herald_notifications.api.notifications import router as notifications_router

__all__ = ["deliveries_router", "emails_router", "notifications_router"]
