"""Data access: catalog, activity reads, model and stored recommendations (synchronous;
call through ``herald_common.db.run_db`` from async code).

Everything that reads many records streams them through a cursor, so memory stays
bounded whatever the data size. FerretDB has no ``$lookup`` and ``$group`` only with
``$sum``/``$count``: joins and aggregation happen here, in Python, page by page.

Every query is an equality (or an ``$in`` of strings) on ``_id`` or on the leading field
of an index: FerretDB answers only those from an index and reads the whole collection for
a range or a sort. So batches of ids are read with ``find_in``, the catalog is read one
category at a time, users changed since a time are read one ``updated_day`` at a time,
and what would be a sort or a scan is kept in ``storage_state`` (one document per kind,
read by ``_id``): the activity watermark (newest ``updated_at``), the model versions that
have neighbour rows, and the last finished batch run. The batch job's model build reads
every active user once (the one whole-collection read of a service path).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from herald_common.clock import utc_day
from herald_common.db import (
    collection,
    conditional_upsert,
    find_in,
    named,
    run_once,
)
from pymongo import ASCENDING

from herald_recommendations.algorithm import Interaction
from herald_recommendations.catalog import Product, catalog_key, category_specs, generate_catalog
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

# storage_state documents (``_id``).
STATE = "storage_state"
WATERMARK = "activity_watermark"  # {updated_at}: the newest ActiveUser.updated_at
MODEL_VERSIONS = "model_versions"  # {versions: [...]}: versions with neighbour rows
LAST_RUN = "last_finished_run"  # {run_id, started_at}: newest ok/partial batch run
BACKFILL = "recommendations.state_documents"  # herald_common.db.run_once marker


def state() -> Any:
    """The ``storage_state`` collection (single-document atomic updates)."""
    return named(STATE)


def ensure_indexes() -> None:
    """Create every index (idempotent). A database of the older layout gets its state
    documents and ``updated_day`` once (a marker document remembers it)."""
    for doc in (ProductDoc, CatalogMeta, ModelState, RecommendationDoc, BatchRun):
        doc.ensure_indexes()
    collection(ActivityDoc).create_index([("user_id", ASCENDING), ("occurred_at", ASCENDING)])
    collection(ActivityDoc).create_index([("ingested_at", ASCENDING)])
    collection(ActiveUser).create_index([("updated_day", ASCENDING)])
    collection(ItemNeighbors).create_index([("model_version", ASCENDING)])
    collection(RecommendationDoc).create_index([("outbox_pending", ASCENDING)])
    run_once(BACKFILL, backfill_state)


def backfill_state() -> None:
    """Bring a database written before the state documents existed up to date: active
    users get ``updated_day`` and the watermark, the stored model versions and the last
    finished run are recorded, the unused ``updated_at`` index goes. One pass over
    those collections (run by :func:`ensure_indexes` once per database); safe to repeat
    and to run while the service ingests (every step only moves state forward)."""
    users = collection(ActiveUser)
    newest: datetime | None = None
    for doc in users.find({}, {"updated_at": 1, "updated_day": 1}):
        at = doc.get("updated_at")
        if not isinstance(at, datetime):
            continue
        newest = at if newest is None or at > newest else newest
        if doc.get("updated_day") != utc_day(at):
            users.update_one(
                {"_id": doc["_id"], "updated_at": at}, {"$set": {"updated_day": utc_day(at)}}
            )
    if newest is not None:
        advance_watermark(newest)
    if "updated_at_1" in users.index_information():
        users.drop_index("updated_at_1")
    versions = [v for v in collection(ItemNeighbors).distinct("model_version") if v]
    if versions:
        state().update_one(
            {"_id": MODEL_VERSIONS}, {"$addToSet": {"versions": {"$each": versions}}}, upsert=True
        )
    last = None
    for run in collection(BatchRun).find({}, {"status": 1, "started_at": 1}):
        if run.get("status") in ("ok", "partial") and isinstance(run.get("started_at"), datetime):
            if last is None or run["started_at"] > last["started_at"]:
                last = run
    if last is not None:
        record_finished_run(last["_id"], last["started_at"])


# --- catalog ---------------------------------------------------------------------------


def seed_catalog(seed: int, products: int, categories: int, *, replace: bool = False) -> bool:
    """Load the generated catalog unless it (or, without ``replace``, any) is present.
    Returns True when products were written."""
    key = catalog_key(seed, products, categories)
    meta = CatalogMeta.objects(id="catalog").first()
    if meta is not None and (meta.key == key or not replace):
        return False
    coll = collection(ProductDoc)
    coll.drop()  # the old catalog, whole (no scan); then its index again
    ProductDoc.ensure_indexes()
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
        category_names=sorted({d["category"] for d in docs}),
        seeded_at=datetime.now(UTC),
    ).save()
    return True


def catalog_version() -> str | None:
    meta = collection(CatalogMeta).find_one({"_id": "catalog"}, {"key": 1, "seeded_at": 1})
    if meta is None:
        return None
    return f"{meta['key']}@{meta['seeded_at'].timestamp()}"


def catalog_categories() -> list[str]:
    """The categories of the loaded catalog (none without a catalog). A catalog seeded
    before the names were stored is a generated one: its names follow from its size."""
    meta = collection(CatalogMeta).find_one(
        {"_id": "catalog"}, {"categories": 1, "category_names": 1}
    )
    if meta is None:
        return []
    names = meta.get("category_names")
    return list(names) if names else [c.name for c in category_specs(int(meta["categories"]))]


def load_catalog() -> dict[str, Product]:
    """The whole catalog keyed by id (a few MB even for 100k products), read one
    category at a time (an indexed equality each)."""
    coll = collection(ProductDoc)
    return {
        d["_id"]: Product(
            id=d["_id"],
            name=d["name"],
            category=d["category"],
            price=float(d["price"]),
            popularity=float(d.get("popularity") or 0.0),
            complement_id=d.get("complement_id"),
        )
        for category in catalog_categories()
        for d in coll.find({"category": category})
    }


# --- activity (written by herald_recommendations.activity_store) ------------------------


def interactions_of(doc: Mapping[str, Any]) -> list[Interaction]:
    items = [
        Interaction(e["p"], e["k"], float(e["t"]), e.get("s")) for e in doc.get("recent") or []
    ]
    items.sort(key=lambda i: i.at)
    return items


def load_interactions(user_ids: Sequence[str]) -> dict[str, list[Interaction]]:
    """The (newest, capped) interactions of these users, by user
    (:func:`~herald_common.db.find_in` by ``_id``)."""
    return {d["_id"]: interactions_of(d) for d in find_in(collection(ActiveUser), "_id", user_ids)}


def iter_user_interactions(
    page_size: int, since: datetime | None = None
) -> Iterator[tuple[str, list[Interaction]]]:
    """``(user id, interactions)`` of every user with activity (ingested at or after
    ``since``), streamed through cursors: memory holds one page of users.

    Without ``since`` this reads the whole collection (the batch job's pass over every
    user). With it, one ``updated_day`` at a time from the day of ``since`` to the day of
    the watermark (no stored ``updated_at`` is newer), each an indexed equality.
    """
    coll = collection(ActiveUser)
    if since is None:
        for doc in coll.find({}, batch_size=page_size):
            yield doc["_id"], interactions_of(doc)
        return
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    watermark = activity_watermark()
    if watermark is None:
        return
    day, last = date.fromisoformat(utc_day(since)), date.fromisoformat(utc_day(watermark))
    while day <= last:
        for doc in coll.find({"updated_day": day.isoformat()}, batch_size=page_size):
            at = doc.get("updated_at")
            if at is not None and (at if at.tzinfo else at.replace(tzinfo=UTC)) >= since:
                yield doc["_id"], interactions_of(doc)
        day += timedelta(days=1)


def active_user_count() -> int:
    """How many users have activity (the offline evaluation's progress total; an admin
    command, not a request path)."""
    return int(ActiveUser.objects.count())


def known_active(user_ids: Iterable[str]) -> set[str]:
    """Those of ``user_ids`` that have activity (:func:`~herald_common.db.find_in`)."""
    found = find_in(collection(ActiveUser), "_id", user_ids, projection={"_id": 1})
    return {d["_id"] for d in found}


def advance_watermark(at: datetime) -> None:
    state().update_one({"_id": WATERMARK}, {"$max": {"updated_at": at}}, upsert=True)


def activity_watermark() -> datetime | None:
    """When activity was last ingested (the newest ``updated_at``)."""
    doc = state().find_one({"_id": WATERMARK})
    at = doc.get("updated_at") if doc else None
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


def forget_user(user_id: str) -> None:
    """Drop a deleted user's activity and recommendations."""
    collection(ActivityDoc).delete_many({"user_id": user_id})
    collection(ActiveUser).delete_one({"_id": user_id})
    collection(RecommendationDoc).delete_one({"_id": user_id, "outbox_pending": {"$ne": True}})


# --- recommendations -----------------------------------------------------------------------


def load_recommendations(
    user_id: str, fields: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """A user's stored recommendations document (only ``fields`` when given)."""
    projection = dict.fromkeys(fields, 1) if fields is not None else None
    return collection(RecommendationDoc).find_one({"_id": user_id}, projection)


def save_recommendations(user_id: str, update: Mapping[str, Any]) -> None:
    """Store a user's recommendations (mongoengine update keywords, outbox included:
    one atomic single-document write)."""
    RecommendationDoc.objects(id=user_id).update_one(upsert=True, **update)


def unpublished_requests() -> int:
    """How many recommendation documents still hold staged notification requests (an
    indexed count by the outbox flag, at the end of a batch)."""
    return int(collection(RecommendationDoc).count_documents({"outbox_pending": True}))


# --- batch runs ---------------------------------------------------------------------------


def save_run(run: BatchRun) -> None:
    """Store a batch run record as it stands (started, then finished)."""
    run.save()


def record_finished_run(run_id: str, started_at: datetime) -> None:
    """Remember a run that finished (ok or partial) unless a later-started one is."""
    # A run that started later and finished already stays the last one.
    conditional_upsert(
        state(),
        {"_id": LAST_RUN, "started_at": {"$lt": started_at}},
        {"$set": {"run_id": run_id, "started_at": started_at}},
    )


def last_finished_run() -> dict[str, Any] | None:
    """The newest finished (ok or partial) batch run."""
    pointer = state().find_one({"_id": LAST_RUN})
    if pointer is None:
        return None
    return collection(BatchRun).find_one({"_id": pointer["run_id"]})
