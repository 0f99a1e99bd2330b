"""Audience segments: the product categories a campaign may target.

``spec.audience.categories`` narrows a campaign to users with activity in those
categories. The names are those of the product catalog (the recommendations service's
mock catalog, checked equal by a test); matching is case-insensitive, as the
scheduler's fan-out matches them. A category outside the catalog can never match
anyone, so the operator reports such a campaign as ``Failed`` instead of running it.
"""

from __future__ import annotations

from collections.abc import Iterable

CATALOG_CATEGORIES: tuple[str, ...] = (
    "Laptops",
    "Laptop Bags",
    "Smartphones",
    "Phone Cases",
    "Headphones",
    "Cameras",
    "Memory Cards",
    "Televisions",
    "Soundbars",
    "Running Shoes",
    "Sports Socks",
    "Coffee Machines",
    "Coffee Beans",
    "Books",
    "Reading Lamps",
    "Video Games",
    "Game Controllers",
    "Yoga Mats",
    "Water Bottles",
    "Cookware",
    "Kitchen Knives",
    "Tents",
    "Sleeping Bags",
    "Watches",
    "Watch Straps",
    "Board Games",
    "Puzzles",
    "Monitors",
    "Keyboards",
    "Backpacks",
)


def unknown_categories(categories: Iterable[str], known: Iterable[str]) -> list[str]:
    """The entries of ``categories`` that are not in ``known`` (case-insensitive), in
    their original order."""
    folded = {k.casefold() for k in known}
    return [c for c in categories if c.casefold() not in folded]
