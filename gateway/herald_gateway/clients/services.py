"""Typed wrappers over the internal HTTP APIs (contracts in ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from herald_gateway.clients.base import CallContext, ServiceClient
from herald_gateway.config import GatewaySettings
from herald_gateway.errors import GraphQLFailure, bad_input

SERVICE_NAMES = ("users", "notifications", "recommendations", "scheduler")


def _seg(value: str) -> str:
    """A path segment from caller input: no way to reach another route."""
    try:
        return quote(str(value), safe="")
    except UnicodeEncodeError:
        raise bad_input("an id holds text that is not valid Unicode") from None


def _note(notification_id: str) -> str:
    """A notification id as a path segment; an empty one exists nowhere (and would
    address the list route instead)."""
    if not str(notification_id).strip():
        raise GraphQLFailure("no such notification", "NOT_FOUND")
    return _seg(notification_id)


class UsersClient(ServiceClient):
    """users (4001): accounts, tokens, profile, preferences."""

    async def register(self, body: dict[str, Any], ctx: CallContext) -> Any:
        return await self.request("POST", "/v1/auth/register", ctx, json=body)

    async def login(self, email: str, password: str, ctx: CallContext) -> Any:
        return await self.request(
            "POST", "/v1/auth/login", ctx, json={"email": email, "password": password}
        )

    async def refresh(self, refresh_token: str, ctx: CallContext) -> Any:
        return await self.request(
            "POST", "/v1/auth/refresh", ctx, json={"refresh_token": refresh_token}
        )

    async def logout(self, ctx: CallContext, refresh_token: str | None = None) -> None:
        body = {"refresh_token": refresh_token} if refresh_token else {}
        await self.request("POST", "/v1/auth/logout", ctx, json=body)

    async def me(self, ctx: CallContext) -> Any:
        return await self.get("/v1/users/me", ctx)

    async def user(self, user_id: str, ctx: CallContext) -> Any:
        return await self.get(f"/v1/users/{_seg(user_id)}", ctx)

    async def users(self, ids: list[str], ctx: CallContext) -> list[Any]:
        return await self.get("/v1/users", ctx, ids=",".join(ids)) or []

    async def update_me(self, body: dict[str, Any], ctx: CallContext) -> Any:
        return await self.request("PATCH", "/v1/users/me", ctx, json=body)

    async def update_preferences(self, patch: dict[str, Any], ctx: CallContext) -> Any:
        return await self.request("PATCH", "/v1/users/me/preferences", ctx, json=patch)

    async def delete_me(self, ctx: CallContext) -> None:
        await self.request("DELETE", "/v1/users/me", ctx)


class NotificationsClient(ServiceClient):
    """notifications (4002): the inbox."""

    async def list(
        self,
        ctx: CallContext,
        *,
        first: int,
        after: str | None,
        unread_only: bool,
        type_: str | None,
        archived: bool = False,
        total: bool = True,
    ) -> Any:
        return await self.get(
            "/v1/notifications",
            ctx,
            first=first,
            after=after,
            unread_only=unread_only,
            type=type_,
            archived="true" if archived else None,
            total=None if total else "false",
        )

    async def unread_count(self, ctx: CallContext) -> int:
        body = await self.get("/v1/notifications/unread-count", ctx)
        return int(body["count"])

    async def get_one(self, notification_id: str, ctx: CallContext) -> Any:
        return await self.get(f"/v1/notifications/{_note(notification_id)}", ctx)

    async def mark_read(self, notification_id: str, ctx: CallContext) -> Any:
        return await self.request("POST", f"/v1/notifications/{_note(notification_id)}/read", ctx)

    async def mark_all_read(self, ctx: CallContext) -> int:
        body = await self.request("POST", "/v1/notifications/read-all", ctx)
        return int(body["changed"])

    async def unseen_count(self, ctx: CallContext) -> int:
        body = await self.get("/v1/notifications/unseen-count", ctx)
        return int(body["count"])

    async def mark_read_many(self, ids: Sequence[str], ctx: CallContext) -> int:
        body = await self.request(
            "POST", "/v1/notifications/read", ctx, json={"ids": None if ids is None else list(ids)}
        )
        return int(body["changed"])

    async def mark_seen(self, ids: Sequence[str] | None, ctx: CallContext) -> int:
        body = await self.request(
            "POST", "/v1/notifications/seen", ctx, json={"ids": None if ids is None else list(ids)}
        )
        return int(body["changed"])

    async def archive_all_read(self, ctx: CallContext) -> int:
        body = await self.request("POST", "/v1/notifications/archive-read", ctx)
        return int(body["changed"])

    async def change(self, notification_id: str, action: str, ctx: CallContext, **body: Any) -> Any:
        """``archive``, ``unarchive`` or ``snooze`` one notification."""
        path = f"/v1/notifications/{_note(notification_id)}/{action}"
        return await self.request("POST", path, ctx, json=body or None)

    async def delete(self, notification_id: str, ctx: CallContext) -> None:
        await self.request("DELETE", f"/v1/notifications/{_note(notification_id)}", ctx)


class RecommendationsClient(ServiceClient):
    """recommendations (4003): the catalog and each user's recommendations."""

    async def mine(self, first: int, ctx: CallContext) -> Any:
        return await self.get("/v1/recommendations/me", ctx, first=first)

    async def products(self, ids: list[str], ctx: CallContext) -> list[Any]:
        return await self.get("/v1/products", ctx, ids=",".join(ids)) or []


class SchedulerClient(ServiceClient):
    """scheduler (4004): orders and campaign runs."""

    async def my_orders(self, first: int, ctx: CallContext) -> list[Any]:
        return await self.get("/v1/orders/me", ctx, first=first) or []

    async def campaign_runs(self, first: int, ctx: CallContext) -> list[Any]:
        return await self.get("/v1/campaigns/runs", ctx, first=first) or []

    async def fire(self, name: str, dry_run: bool, ctx: CallContext) -> Any:
        return await self.request(
            "POST", f"/v1/campaigns/{_seg(name)}/fire", ctx, json={"dry_run": dry_run}
        )


async def dead_letters(
    client: ServiceClient, ctx: CallContext, queue: str | None, limit: int
) -> list[Any]:
    """A service's dead-letter queues (admin)."""
    return await client.get("/v1/admin/dead-letters", ctx, queue=queue, limit=limit) or []


async def replay_dead_letters(
    client: ServiceClient, ctx: CallContext, queue: str, limit: int
) -> int:
    body = await client.request(
        "POST", f"/v1/admin/dead-letters/{_seg(queue)}/replay", ctx, params={"limit": limit}
    )
    return int(body["replayed"])


@dataclass
class Services:
    """The four service clients of one gateway process."""

    users: UsersClient
    notifications: NotificationsClient
    recommendations: RecommendationsClient
    scheduler: SchedulerClient

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> Services:
        """Clients for the configured URLs."""

        def make(kind: type[ServiceClient], name: str) -> Any:
            return kind(
                name,
                getattr(settings, f"{name}_url"),
                timeout=settings.service_timeout_seconds,
                connect_timeout=settings.service_connect_timeout_seconds,
                max_connections=settings.max_connections_per_service,
            )

        return cls(
            users=make(UsersClient, "users"),
            notifications=make(NotificationsClient, "notifications"),
            recommendations=make(RecommendationsClient, "recommendations"),
            scheduler=make(SchedulerClient, "scheduler"),
        )

    def by_name(self, name: str) -> ServiceClient:
        if name not in SERVICE_NAMES:
            raise KeyError(name)
        client: ServiceClient = getattr(self, name)
        return client

    def all(self) -> list[ServiceClient]:
        return [self.users, self.notifications, self.recommendations, self.scheduler]

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()
