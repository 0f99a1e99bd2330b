"""Field resolvers of object types that need more than their parent dict."""

from __future__ import annotations

from typing import Any

from tartiflette import Resolver

from herald_gateway import mapping
from herald_gateway.context import RequestContext
from herald_gateway.engine import SCHEMA_NAME


@Resolver("OrderItem.product", schema_name=SCHEMA_NAME)
async def resolve_order_item_product(
    parent: dict[str, Any], args: dict[str, Any], ctx: RequestContext, info: Any
) -> Any:
    """The catalog entry; every item of the response is fetched in one batch."""
    found = await ctx.loader("products").load(parent["productId"])
    return mapping.product(found) if found else None
