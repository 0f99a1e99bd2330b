"""What the scheduler learns from ``activity.recorded``: interests and products.

* ``interest_records`` — one record per (message, user): a weighted count per category
  (view 1, add to cart 2, purchase 3) and the product last looked at in each category.
  A user's interests are the sum of their records. Campaign segments use the
  categories; ``{favorite_category}`` is the top one and ``{product_name}`` the product
  last looked at in it.
* ``known_products`` — every product seen in activity (name, category, price), used to
  seed mock orders with products that exist.

Records are insert-only with the id ``<event id>:<user id>``: a redelivered message
inserts nothing new (duplicate key), and two messages about one user handled at the
same time cannot lose each other's counts (FerretDB 1.x can lose one of two concurrent
updates of the same document; inserts are safe).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from herald_common.db import bulk_write, find_in, insert_all_new, named
from herald_common.events import Activity
from pymongo import ASCENDING, UpdateOne

INTERESTS = "interest_records"
PRODUCTS = "known_products"
KIND_WEIGHT = {"view": 1, "add_to_cart": 2, "purchase": 3}


def category_key(category: str) -> str:
    """A field name for ``category`` (field names may not contain '.' or start with '$')."""
    return category.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def category_from_key(key: str) -> str:
    return key.replace("%2E", ".").replace("%24", "$").replace("%25", "%")


@dataclass
class Interest:
    """A user's interests as learned from activity."""

    user_id: str
    categories: dict[str, int] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def favorite_category(self) -> str | None:
        if not self.categories:
            return None
        # Highest weight; ties broken by name so the choice is stable.
        return min(self.categories.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def product_in(self, category: str | None) -> dict[str, Any] | None:
        return self.products.get(category) if category else None

    def matches(self, categories: Iterable[str]) -> bool:
        mine = {c.casefold() for c, n in self.categories.items() if n > 0}
        return any(c.casefold() in mine for c in categories)


def ensure_indexes() -> None:
    named(INTERESTS).create_index([("user_id", ASCENDING)])


def record_activity(messages: Sequence[tuple[str, Sequence[Activity]]]) -> int:
    """Apply ``activity.recorded`` messages (event id, activities) with one insert of
    their interest records and one bulk write of the products they name; returns how
    many records were new."""
    now = datetime.now(UTC)
    records = [
        _interest_record(event_id, user_id, items, now)
        for event_id, activities in messages
        for user_id, items in _by_user(activities).items()
    ]
    # Records applied before (a redelivery) are skipped.
    inserted = insert_all_new(named(INTERESTS), records)
    _remember_products([a for _, activities in messages for a in activities], now)
    return inserted


def _by_user(activities: Sequence[Activity]) -> dict[str, list[Activity]]:
    per_user: dict[str, list[Activity]] = defaultdict(list)
    for activity in activities:
        per_user[activity.user_id].append(activity)
    return per_user


def _interest_record(
    event_id: str, user_id: str, items: Sequence[Activity], now: datetime
) -> dict[str, Any]:
    """What one message says about one user's interests: category weights and the
    newest product looked at per category."""
    weights: dict[str, int] = defaultdict(int)
    latest: dict[str, dict[str, Any]] = {}
    for a in sorted(items, key=lambda x: x.occurred_at):
        if not a.category:
            continue
        key = category_key(a.category)
        weights[key] += KIND_WEIGHT[a.kind] * a.quantity
        if a.kind != "purchase":
            # Something looked at (maybe not bought yet) is what a promotion names.
            latest[key] = {
                "product_id": a.product_id,
                "name": a.product_name or f"Product {a.product_id}",
                "price": a.price,
                "at": a.occurred_at,
            }
    return {
        "_id": f"{event_id}:{user_id}",
        "user_id": user_id,
        "categories": dict(weights),
        "products": latest,
        "at": max(a.occurred_at for a in items),
        "recorded_at": now,
    }


def _remember_products(activities: Sequence[Activity], now: datetime) -> None:
    seen: dict[str, Activity] = {}
    for a in activities:
        if a.product_name or a.category:
            seen[a.product_id] = a
    if not seen:
        return
    ops = []
    for pid, a in seen.items():
        fields: dict[str, Any] = {"updated_at": now}
        if a.product_name:
            fields["name"] = a.product_name
        if a.category:
            fields["category"] = a.category
        if a.price is not None:
            fields["price"] = a.price
        ops.append(UpdateOne({"_id": pid}, {"$set": fields}, upsert=True))
    bulk_write(named(PRODUCTS), ops, ordered=False)


def get_interests(user_ids: Sequence[str]) -> dict[str, Interest]:
    """Interests of ``user_ids`` (:func:`~herald_common.db.find_in` by user; users
    without activity are absent)."""
    out: dict[str, Interest] = {}
    seen_at: dict[tuple[str, str], Any] = {}
    projection = {"user_id": 1, "categories": 1, "products": 1}
    for doc in find_in(named(INTERESTS), "user_id", user_ids, projection=projection):
        uid = doc["user_id"]
        interest = out.setdefault(uid, Interest(user_id=uid))
        for key, weight in (doc.get("categories") or {}).items():
            category = category_from_key(key)
            interest.categories[category] = interest.categories.get(category, 0) + int(weight)
        for key, product in (doc.get("products") or {}).items():
            category = category_from_key(key)
            at = product.get("at")
            if (uid, category) not in seen_at or (at and at > seen_at[(uid, category)]):
                seen_at[(uid, category)] = at
                interest.products[category] = dict(product)
    return out


def known_products(limit: int = 500) -> list[dict[str, Any]]:
    """Products seen in activity, as ``{product_id, name, category, price}``."""
    docs = named(PRODUCTS).find({"name": {"$exists": True}}).sort("_id", 1).limit(limit)
    return [
        {
            "product_id": d["_id"],
            "name": d["name"],
            "category": d.get("category"),
            "price": float(d.get("price") or 0.0),
        }
        for d in docs
    ]
