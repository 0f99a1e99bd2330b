"""MongoDB documents of the recommendations service (database ``herald_recommendations``).

Hot paths (bulk activity inserts, streaming reads) use the documents' collections
through pymongo directly; the documents define collections, fields and indexes.

Every query is an equality on ``_id`` or on the leading field of an index, the only
filters the local MongoDB-compatible server (FerretDB) answers from an index. What would
otherwise need a range, a sort or ``$in`` is kept in ``storage_state``, one document per
kind, read by ``_id`` (see :mod:`herald_recommendations.storage`).
"""

from __future__ import annotations

from herald_common.outbox import OutboxDocument
from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    FloatField,
    IntField,
    ListField,
    StringField,
)


class ProductDoc(Document):
    """A catalog product (the mock catalog this service owns)."""

    id = StringField(primary_key=True)
    name = StringField(required=True)
    category = StringField(required=True)
    price = FloatField(required=True)
    popularity = FloatField(default=0.0)
    complement_id = StringField()
    meta = {"collection": "products", "indexes": ["category"]}


class CatalogMeta(Document):
    """Which generated catalog is loaded (``key`` = seed and sizes)."""

    id = StringField(primary_key=True, default="catalog")
    key = StringField(required=True)
    products = IntField(required=True)
    categories = IntField(required=True)
    # The products' categories: the catalog is read one category at a time (indexed).
    category_names = ListField(StringField())
    seeded_at = DateTimeField(required=True)
    meta = {"collection": "catalog_meta"}


class ActivityDoc(Document):
    """One stored activity. ``_id`` is deterministic (``<event id>:<index>`` for
    ingested events), so a redelivered batch inserts nothing new."""

    id = StringField(primary_key=True)
    user_id = StringField(required=True)
    kind = StringField(required=True, choices=("view", "add_to_cart", "purchase"))
    product_id = StringField(required=True)
    occurred_at = DateTimeField(required=True)
    session_id = StringField()
    quantity = IntField(default=1)
    ingested_at = DateTimeField(required=True)
    meta = {
        "collection": "activities",
        "indexes": [{"fields": ["user_id", "occurred_at"]}],
        "auto_create_index": False,
    }


class ActiveUser(Document):
    """A user with activity: the newest activities (what the model reads: one ``_id``
    look-up per user), when it last happened and when it was last ingested
    (``updated_at`` drives ``batch --changed-since-last-run``, read one ``updated_day``,
    the UTC date of ``updated_at``, at a time)."""

    id = StringField(primary_key=True)
    last_activity_at = DateTimeField()
    updated_at = DateTimeField(required=True)
    updated_day = StringField()
    # The newest activities, {i: activity id, p: product, k: kind, t: epoch, s: session}.
    recent = ListField(DictField())
    rev = IntField(default=0)  # optimistic concurrency for read-merge-write
    meta = {
        "collection": "activity_users",
        "indexes": ["updated_day"],
        "auto_create_index": False,
    }


class ModelState(Document):
    """The current model's identity, popularity table and build statistics."""

    id = StringField(primary_key=True, default="current")
    version = StringField(required=True)
    built_at = DateTimeField(required=True)
    popularity = DictField()
    stats = DictField()
    meta = {"collection": "model_state"}


class ItemNeighbors(Document):
    """Top-k co-occurrence neighbours of one product: ``[[product_id, similarity], ...]``."""

    id = StringField(primary_key=True)
    neighbors = ListField()
    model_version = StringField(required=True)
    meta = {
        "collection": "item_neighbors",
        "indexes": ["model_version"],
        "auto_create_index": False,
    }


class RecommendationDoc(OutboxDocument):
    """A user's stored recommendations; a notification request about them is staged in
    the same document (outbox), in the same write."""

    id = StringField(primary_key=True)  # the user id
    items = ListField(DictField())  # {product_id, score, explanation, reason}
    model_version = StringField(required=True)
    generated_at = DateTimeField(required=True)
    trigger = StringField(required=True)  # batch | incremental | on_demand
    batch_id = StringField()
    notified_items = ListField(StringField())
    notified_at = DateTimeField()
    notified_key = StringField()
    meta = {"collection": "recommendations"}


class BatchRun(Document):
    """One run of the batch job."""

    id = StringField(primary_key=True)  # run id (batch id + start time)
    batch_id = StringField(required=True)
    mode = StringField(required=True)
    status = StringField(required=True)  # running | ok | partial | failed
    started_at = DateTimeField(required=True)
    finished_at = DateTimeField()
    since = DateTimeField()
    counts = DictField()
    meta = {"collection": "batch_runs", "indexes": ["-started_at"]}
