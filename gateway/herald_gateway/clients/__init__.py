"""HTTP clients of the internal services (pooled, with timeouts and error mapping)."""

from herald_gateway.clients.base import CallContext, ServiceClient
from herald_gateway.clients.services import (
    NotificationsClient,
    RecommendationsClient,
    SchedulerClient,
    Services,
    UsersClient,
)

__all__ = [
    "CallContext",
    "NotificationsClient",
    "RecommendationsClient",
    "SchedulerClient",
    "ServiceClient",
    "Services",
    "UsersClient",
]
