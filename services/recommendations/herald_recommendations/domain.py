"""The recommendations service's use cases for its API: a user's recommendations and
the catalog (look-ups by id, pages by category).

Routes only translate HTTP; this object validates what they pass and pages the catalog.
Computing and storing recommendations is :class:`~herald_recommendations.engine.
RecommendationEngine`'s (shared with the consumers and the batch job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald_common.db import run_db
from herald_common.errors import BadUserInput, NotFound

from herald_recommendations.engine import RecommendationEngine, product_view

MAX_IDS = 500


class Recommendations:
    """Reads for the API, on top of the engine's cached catalog."""

    def __init__(self, engine: RecommendationEngine) -> None:
        self.engine = engine

    async def of_user(self, user_id: str, first: int) -> dict[str, Any]:
        """A user's stored recommendations, best first (computed on the first ask)."""
        return await run_db(self.engine.view, user_id, first)

    async def products(self, ids: str) -> list[Mapping[str, Any]]:
        """Products by comma-separated ``ids``: unknown ids left out, order kept."""
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        if not wanted:
            raise BadUserInput("ids: give at least one product id", field="ids")
        if len(wanted) > MAX_IDS:
            raise BadUserInput(f"ids: at most {MAX_IDS} ids per request", field="ids")
        catalog = await run_db(self.engine.catalog)
        return [product_view(catalog[i]) for i in dict.fromkeys(wanted) if i in catalog]

    async def page(
        self, *, category: str | None, first: int, after: str | None
    ) -> list[Mapping[str, Any]]:
        """A page of the catalog (optionally one ``category``) in id order after
        ``after``."""
        catalog = await run_db(self.engine.catalog)
        selected = sorted(
            pid
            for pid, p in catalog.items()
            if (category is None or p.category == category) and (after is None or pid > after)
        )[:first]
        return [product_view(catalog[pid]) for pid in selected]

    async def product(self, product_id: str) -> Mapping[str, Any]:
        """One product; :class:`NotFound` when the catalog has no such id."""
        catalog = await run_db(self.engine.catalog)
        product = catalog.get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id!r}", field="id")
        return product_view(product)
