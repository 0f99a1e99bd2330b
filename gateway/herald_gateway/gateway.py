"""The gateway's process-wide parts, shared by every request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from herald_common.auth import TokenVerifier
from herald_common.messaging import Broker

from herald_gateway.budget import CallerSlots
from herald_gateway.cache import ResponseCache
from herald_gateway.catalog import ProductCatalog
from herald_gateway.clients import Services
from herald_gateway.clients.base import CallContext
from herald_gateway.config import GatewaySettings
from herald_gateway.ratelimit import RateLimiter
from herald_gateway.realtime import RealtimeHub
from herald_gateway.revocations import Revocations


@dataclass
class Gateway:
    settings: GatewaySettings
    services: Services
    verifier: TokenVerifier
    redis: Any
    broker: Broker | None
    cache: ResponseCache
    limiter: RateLimiter
    # Per-caller service-call slots (herald_gateway.budget); None: no fairness limit.
    slots: CallerSlots | None = None
    # Per-caller slots for executing operations; None: no limit.
    request_slots: CallerSlots | None = None
    # The process's listener for revoked token ids (closes their WebSockets).
    revocations: Revocations | None = None
    # The process's one pub/sub connection for every open subscription.
    realtime: RealtimeHub | None = None
    # Product facts for enrichment and the products loader (herald_gateway.catalog).
    catalog: ProductCatalog | None = None

    def __post_init__(self) -> None:
        if self.catalog is None:
            self.catalog = ProductCatalog(
                self.services.recommendations.products,
                ttl_seconds=self.settings.product_cache_seconds,
                size=self.settings.product_cache_size,
            )

    async def products(self, ids: Iterable[str], call: CallContext) -> dict[str, Any]:
        """Known products among ``ids``, by id (:class:`ProductCatalog`)."""
        assert self.catalog is not None
        return await self.catalog.get(ids, call)

    async def publish(self, event: Any) -> None:
        if self.broker is None:
            from herald_gateway.errors import GraphQLFailure

            raise GraphQLFailure("the message broker is not connected", "UNAVAILABLE")
        await self.broker.publish(event)
