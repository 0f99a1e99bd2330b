"""Data access: catalog, activity, model and stored recommendations (synchronous;
call through ``herald_common.db.run_db`` from async code).

Everything that reads many records streams them in keyset-paginated pages (``_id``
order), so memory stays bounded whatever the data size. FerretDB has no ``$lookup``
and ``$group`` only with ``$sum``/``$count``: joins and aggregation happen here, in
Python, page by page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from herald_recommendations.algorithm import Interaction, Model
from herald_recommendations.catalog import Product, catalog_key, generate_catalog
from herald_recommendations.models import (
    ActiveUser,
    ActivityDoc,
    BatchRun,
    CatalogMeta,
    ItemNeighbors,
    ModelState,
    ProductDoc,
    RecommendationDoc,
)

DUPLICATE_KEY = 11000


def ensure_indexes() -> None:
    """Create every index (idempotent)."""
    for doc in (ProductDoc, CatalogMeta, ModelState, RecommendationDoc, BatchRun):
        doc.ensure_indexes()
    ActivityDoc._get_collection().create_index([("user_id", ASCENDING), ("occurred_at", ASCENDING)])
    ActivityDoc._get_collection().create_index([("ingested_at", ASCENDING)])
    ActiveUser._get_collection().create_index([("updated_at", ASCENDING)])
    ItemNeighbors._get_collection().create_index([("model_version", ASCENDING)])
    RecommendationDoc._get_collection().create_index([("outbox_pending", ASCENDING)])


# --- catalog ---------------------------------------------------------------------------


def seed_catalog(seed: int, products: int, categories: int, *, replace: bool = False) -> bool:
    """Load the generated catalog unless it (or, without ``replace``, any) is present.
    Returns True when products were written."""
    key = catalog_key(seed, products, categories)
    meta = CatalogMeta.objects(id="catalog").first()
    if meta is not None and (meta.key == key or not replace):
        return False
    coll = ProductDoc._get_collection()
    coll.delete_many({})
    docs = [
        {
            "_id": p.id,
            "name": p.name,
            "category": p.category,
            "price": p.price,
            "popularity": p.popularity,
            "complement_id": p.complement_id,
        }
        for p in generate_catalog(seed, products, categories)
    ]
    for start in range(0, len(docs), 5000):
        coll.insert_many(docs[start : start + 5000], ordered=False)
    CatalogMeta(
        id="catalog",
        key=key,
        products=products,
        categories=categories,
        seeded_at=datetime.now(UTC),
    ).save()
    return True


def catalog_version() -> str | None:
    meta = CatalogMeta._get_collection().find_one({"_id": "catalog"}, {"key": 1, "seeded_at": 1})
    if meta is None:
        return None
    return f"{meta['key']}@{meta['seeded_at'].timestamp()}"


def load_catalog() -> dict[str, Product]:
    """The whole catalog keyed by id (a few MB even for 100k products)."""
    return {
        d["_id"]: Product(
            id=d["_id"],
            name=d["name"],
            category=d["category"],
            price=float(d["price"]),
            popularity=float(d.get("popularity") or 0.0),
            complement_id=d.get("complement_id"),
        )
        for d in ProductDoc._get_collection().find({})
    }


# --- activity --------------------------------------------------------------------------


def insert_activities(docs: Sequence[dict[str, Any]]) -> int:
    """Bulk insert (unordered); documents whose ``_id`` exists are skipped. Returns how
    many were new."""
    if not docs:
        return 0
    try:
        result = ActivityDoc._get_collection().insert_many(list(docs), ordered=False)
        return len(result.inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return int(exc.details.get("nInserted", len(docs) - len(errors)))


def _entry(
    doc_id: str, product_id: str, kind: str, at: datetime, session_id: str | None
) -> dict[str, Any]:
    # Sub-documents, not arrays: FerretDB 1.x stores no nested arrays.
    return {"i": doc_id, "p": product_id, "k": kind, "t": at.timestamp(), "s": session_id}


def activity_entry(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The compact per-user copy of a stored activity document."""
    return _entry(
        doc["_id"], doc["product_id"], doc["kind"], doc["occurred_at"], doc.get("session_id")
    )


def append_user_activity(
    user_id: str, entries: Sequence[dict[str, Any]], now: datetime, keep: int
) -> int:
    """Merge activity into the user's document, keeping the newest ``keep`` entries.

    Entries are de-duplicated by activity id, so a redelivered batch changes nothing.
    Read-merge-write with a revision check (optimistic concurrency: two consumers
    updating the same user retry instead of losing entries). Returns how many were new.
    """
    if not entries:
        return 0
    coll = ActiveUser._get_collection()
    for _ in range(20):
        doc = coll.find_one({"_id": user_id}, {"recent": 1, "rev": 1})
        recent = list((doc or {}).get("recent") or [])
        known = {e["i"] for e in recent}
        fresh = [e for e in entries if e["i"] not in known]
        if doc is not None and not fresh:
            return 0
        merged = sorted(recent + fresh, key=lambda e: (e["t"], e["i"]))[-keep:]
        latest = datetime.fromtimestamp(merged[-1]["t"], UTC)
        fields = {"recent": merged, "last_activity_at": latest, "updated_at": now}
        if doc is None:
            try:
                coll.insert_one({"_id": user_id, "rev": 1, **fields})
            except DuplicateKeyError:
                continue  # someone created it meanwhile: merge again
            return len(fresh)
        rev = doc.get("rev", 0)
        result = coll.update_one({"_id": user_id, "rev": rev}, {"$set": {**fields, "rev": rev + 1}})
        if result.matched_count:
            return len(fresh)
    raise RuntimeError(f"user {user_id}: too many concurrent activity updates")


def _interactions(doc: Mapping[str, Any]) -> list[Interaction]:
    items = [
        Interaction(e["p"], e["k"], float(e["t"]), e.get("s")) for e in doc.get("recent") or []
    ]
    items.sort(key=lambda i: i.at)
    return items


def load_interactions(user_ids: Sequence[str]) -> dict[str, list[Interaction]]:
    """The (newest, capped) interactions of these users, by user."""
    if not user_ids:
        return {}
    ids = list(user_ids)
    query: dict[str, Any] = {"_id": ids[0]} if len(ids) == 1 else {"_id": {"$in": ids}}
    return {d["_id"]: _interactions(d) for d in ActiveUser._get_collection().find(query)}


def iter_user_interactions(
    page_size: int, since: datetime | None = None
) -> Iterator[tuple[str, list[Interaction]]]:
    """``(user id, interactions)`` of every user with activity (ingested at or after
    ``since``), streamed through one cursor: memory holds one page of users."""
    query: dict[str, Any] = {} if since is None else {"updated_at": {"$gte": since}}
    for doc in ActiveUser._get_collection().find(query, batch_size=page_size):
        yield doc["_id"], _interactions(doc)


def known_active(user_ids: Iterable[str]) -> set[str]:
    ids = list(user_ids)
    if not ids:
        return set()
    return {d["_id"] for d in ActiveUser._get_collection().find({"_id": {"$in": ids}}, {"_id": 1})}


def activity_watermark() -> datetime | None:
    """When activity was last ingested (the newest ``updated_at``)."""
    doc = ActiveUser._get_collection().find_one(
        {}, {"updated_at": 1}, sort=[("updated_at", DESCENDING)]
    )
    return doc["updated_at"] if doc else None


def forget_user(user_id: str) -> None:
    """Drop a deleted user's activity and recommendations."""
    ActivityDoc._get_collection().delete_many({"user_id": user_id})
    ActiveUser._get_collection().delete_one({"_id": user_id})
    RecommendationDoc._get_collection().delete_one(
        {"_id": user_id, "outbox_pending": {"$ne": True}}
    )


# --- model -----------------------------------------------------------------------------


def save_model(model: Model, built_at: datetime, stats: Mapping[str, Any]) -> None:
    """Write the neighbour rows of the new version, then make it current, then drop older
    versions' rows: readers never see a half-written model."""
    coll = ItemNeighbors._get_collection()
    coll.delete_many({"model_version": model.version})  # leftovers of a crashed run
    rows: list[dict[str, Any]] = []
    for product_id, neighbors in model.neighbors.items():
        rows.append(
            {
                "_id": neighbor_key(model.version, product_id),
                "model_version": model.version,
                "neighbors": [{"p": p, "s": s} for p, s in neighbors],
            }
        )
        if len(rows) >= 1000:
            coll.insert_many(rows, ordered=False)
            rows = []
    if rows:
        coll.insert_many(rows, ordered=False)
    ModelState._get_collection().replace_one(
        {"_id": "current"},
        {
            "version": model.version,
            "built_at": built_at,
            "popularity": dict(model.popularity),
            "stats": dict(stats),
        },
        upsert=True,
    )
    coll.delete_many({"model_version": {"$ne": model.version}})


def neighbor_key(version: str, product_id: str) -> str:
    return f"{version}|{product_id}"


def load_model_state() -> dict[str, Any] | None:
    return ModelState._get_collection().find_one({"_id": "current"})


def load_neighbors(version: str, product_ids: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
    """Neighbour rows of these products in model ``version`` (``_id`` look-ups)."""
    keys = [neighbor_key(version, pid) for pid in product_ids]
    if not keys:
        return {}
    return {
        d["_id"].split("|", 1)[1]: [(n["p"], float(n["s"])) for n in d.get("neighbors", [])]
        for d in ItemNeighbors._get_collection().find({"_id": {"$in": keys}})
    }


# --- batch runs ---------------------------------------------------------------------------


def last_finished_run() -> dict[str, Any] | None:
    return BatchRun._get_collection().find_one(
        {"status": {"$in": ["ok", "partial"]}}, sort=[("started_at", DESCENDING)]
    )
