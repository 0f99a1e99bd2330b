"""What one GraphQL request carries into its resolvers: the caller and the gateway."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from herald_common.auth import Principal, bearer_token
from herald_common.errors import HeraldError

from herald_gateway.budget import CallBudget
from herald_gateway.clients import CallContext
from herald_gateway.errors import GraphQLFailure, forbidden, unauthenticated
from herald_gateway.loaders import DataLoader, batch_results

if TYPE_CHECKING:
    from herald_gateway.gateway import Gateway


@dataclass
class RequestContext:
    """Per request (or per WebSocket operation): identity, forwarding data, loaders."""

    gateway: Gateway
    principal: Principal | None = None
    token: str | None = None
    auth_error: GraphQLFailure | None = None
    forwarded_for: str | None = None
    loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)
    # Set when the operation is admitted (transport.operation.prepare).
    budget: CallBudget | None = None
    # Root query fields already being resolved, by (field, arguments): aliases of one
    # field with the same arguments share one resolution.
    memo: dict[tuple[str, str], asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def call(self) -> CallContext:
        """Headers for service calls: the caller's own token, never a gateway identity."""
        return CallContext(token=self.token, forwarded_for=self.forwarded_for, budget=self.budget)

    def user(self) -> Principal:
        """The authenticated caller, or an UNAUTHENTICATED error for this field."""
        if self.auth_error is not None:
            raise self.auth_error
        if self.principal is None:
            raise unauthenticated()
        return self.principal

    def admin(self) -> Principal:
        principal = self.user()
        if not principal.is_admin:
            raise forbidden()
        return principal

    def loader(self, name: str) -> DataLoader[Any, Any]:
        """The request's loader for ``products`` or ``users``."""
        if name not in self.loaders:
            self.loaders[name] = self._make_loader(name)
        return self.loaders[name]

    def _make_loader(self, name: str) -> DataLoader[Any, Any]:
        services = self.gateway.services
        call = self.call
        if name == "products":

            async def products(ids: list[str]) -> dict[str, Any]:
                return await self.gateway.products(ids, call)

            return DataLoader(products)
        if name == "users":

            async def users(ids: list[str]) -> dict[str, Any]:
                return batch_results(await services.users.users(ids, call))

            return DataLoader(users)
        raise KeyError(name)


def token_from(value: str | None) -> str | None:
    """The token of an ``Authorization`` value (``Bearer x`` or a bare token)."""
    if not value or not value.strip():
        return None
    if " " in value.strip():
        return bearer_token(value.strip())
    return value.strip()


async def authenticate(gateway: Gateway, authorization: str | None) -> RequestContext:
    """Verify the caller's token locally (JWKS, deny-list); errors surface per field."""
    ctx = RequestContext(gateway=gateway)
    try:
        token = token_from(authorization)
    except HeraldError as exc:
        ctx.auth_error = GraphQLFailure.from_herald(exc)
        return ctx
    if token is None:
        return ctx
    ctx.token = token
    try:
        ctx.principal = await gateway.verifier.verify(token)
    except HeraldError as exc:
        ctx.auth_error = GraphQLFailure.from_herald(exc)
    return ctx
