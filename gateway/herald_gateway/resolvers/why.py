"""Why: ``Notification.reason`` (mapped from the service's ``reason``) and
``Query.myDeliveryLog`` (``GET /v1/deliveries/log`` of the notifications service)."""

from __future__ import annotations

from typing import Any

from tartiflette import Resolver

from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME
from herald_gateway.resolvers.common import once_per_request, page_size


def log_entry(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(node["id"]),
        "type": str(node["type"]).upper(),
        "decision": node["decision"],
        "reason": node["reason"],
        "reasonCode": node["reason_code"],
        "at": node["at"],
        "until": node.get("until"),
    }


@Resolver("Query.myDeliveryLog", schema_name=SCHEMA_NAME)
@once_per_request
async def resolve_my_delivery_log(
    parent: Any, args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """A page of the caller's delivery log."""
    ctx.user()
    page = await ctx.gateway.services.notifications.get(
        "/v1/deliveries/log",
        ctx.call,
        first=page_size(ctx, args.get("first", 20)),
        after=args.get("after"),
    )
    return {
        "edges": [
            {"cursor": e["cursor"], "node": log_entry(e["node"])} for e in page.get("edges", [])
        ],
        "pageInfo": {
            "hasNextPage": bool(page["page_info"]["has_next_page"]),
            "endCursor": page["page_info"].get("end_cursor"),
        },
    }
