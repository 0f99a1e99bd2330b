"""What the scheduler learns from ``activity.recorded``: interests and products.

* ``user_interests`` — per user, a weighted count per category (view 1, add to cart 2,
  purchase 3) and the latest product looked at in each category. Campaign segments use
  the categories; ``{favorite_category}`` is the top one and ``{product_name}`` the
  product last looked at in it.
* ``known_products`` — every product seen in activity (name, category, price), used to
  seed mock orders with products that exist.

Applying an activity message twice must not count twice: each user's document keeps
the ids of the last messages applied to it and the update only matches when the
message is not among them (one atomic conditional upsert per user).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mongoengine
from herald_common.events import Activity
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

INTERESTS = "user_interests"
PRODUCTS = "known_products"
KIND_WEIGHT = {"view": 1, "add_to_cart": 2, "purchase": 3}
# How many applied message ids a user's document remembers (redeliveries come soon).
REMEMBERED_EVENTS = 200


def _db() -> Any:
    return mongoengine.get_db()


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


def record_activity(event_id: str, activities: Sequence[Activity]) -> int:
    """Apply one ``activity.recorded`` message; returns how many users changed."""
    per_user: dict[str, list[Activity]] = defaultdict(list)
    for activity in activities:
        per_user[activity.user_id].append(activity)
    changed = 0
    now = datetime.now(UTC)
    coll = _db()[INTERESTS]
    for user_id, items in per_user.items():
        inc: dict[str, int] = defaultdict(int)
        latest: dict[str, dict[str, Any]] = {}
        for a in sorted(items, key=lambda x: x.occurred_at):
            if not a.category:
                continue
            key = category_key(a.category)
            inc[f"categories.{key}"] += KIND_WEIGHT[a.kind] * a.quantity
            if a.kind != "purchase":
                # Something looked at (maybe not bought yet) is what a promotion names.
                latest[f"products.{key}"] = {
                    "product_id": a.product_id,
                    "name": a.product_name or f"Product {a.product_id}",
                    "price": a.price,
                    "at": a.occurred_at,
                }
        update: dict[str, Any] = {
            "$push": {"events": event_id},
            "$set": {"updated_at": now, **latest},
        }
        if inc:
            update["$inc"] = dict(inc)
        try:
            result = coll.update_one(
                {"_id": user_id, "events": {"$ne": event_id}}, update, upsert=True
            )
        except DuplicateKeyError:
            continue  # this message was applied to this user already
        changed += int(bool(result.modified_count or result.upserted_id is not None))
        # Forget the oldest remembered id once the list is full. ($push with $slice
        # would do it in one write, but FerretDB 1.x ignores $slice.) One push, one pop:
        # the list never grows past REMEMBERED_EVENTS + 1.
        coll.update_one(
            {"_id": user_id, f"events.{REMEMBERED_EVENTS}": {"$exists": True}},
            {"$pop": {"events": -1}},
        )
    _remember_products(activities, now)
    return changed


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
    _db()[PRODUCTS].bulk_write(ops, ordered=False)


def get_interests(user_ids: Sequence[str]) -> dict[str, Interest]:
    """Interests of ``user_ids`` in one query (users without activity are absent)."""
    if not user_ids:
        return {}
    out: dict[str, Interest] = {}
    cursor = _db()[INTERESTS].find(
        {"_id": {"$in": list(user_ids)}}, {"categories": 1, "products": 1}
    )
    for doc in cursor:
        out[doc["_id"]] = Interest(
            user_id=doc["_id"],
            categories={
                category_from_key(k): int(v) for k, v in (doc.get("categories") or {}).items()
            },
            products={
                category_from_key(k): dict(v) for k, v in (doc.get("products") or {}).items()
            },
        )
    return out


def known_products(limit: int = 500) -> list[dict[str, Any]]:
    """Products seen in activity, as ``{product_id, name, category, price}``."""
    docs = _db()[PRODUCTS].find({"name": {"$exists": True}}).sort("_id", 1).limit(limit)
    return [
        {
            "product_id": d["_id"],
            "name": d["name"],
            "category": d.get("category"),
            "price": float(d.get("price") or 0.0),
        }
        for d in docs
    ]
