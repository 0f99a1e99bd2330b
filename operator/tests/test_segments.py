"""The segment categories the operator accepts are the product catalog's."""

from __future__ import annotations

from herald_common.resources.segments import CATALOG_CATEGORIES
from herald_recommendations.catalog import CATEGORIES


def test_catalog_categories_match_the_recommendations_catalog() -> None:
    assert CATALOG_CATEGORIES == tuple(c.name for c in CATEGORIES)
