"""Model storage: the item-neighbour model's rows and which version is current.

* ``item_neighbors`` — one row per (version, product): its nearest neighbours, keyed
  ``<version>|<product id>`` (read by ``_id``).
* ``model_state`` — ``current``: the version readers use, when it was built, item
  popularity and build statistics.
* ``storage_state.model_versions`` — versions that have rows, so older ones are removed
  by indexed equality.

A new version's rows are written before it becomes current, and older rows are removed
after: readers never see a half-written model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from herald_common.db import collection, find_in

from herald_recommendations.algorithm import Model
from herald_recommendations.models import ItemNeighbors, ModelState
from herald_recommendations.storage import MODEL_VERSIONS, state


def save_model(model: Model, built_at: datetime, stats: Mapping[str, Any]) -> None:
    """Write the neighbour rows of the new version, then make it current, then drop older
    versions' rows: readers never see a half-written model."""
    coll = collection(ItemNeighbors)
    known = (state().find_one({"_id": MODEL_VERSIONS}) or {}).get("versions") or []
    if model.version in known:
        coll.delete_many({"model_version": model.version})  # leftovers of a crashed run
    else:
        # Recorded before its rows exist, so even a crashed run's rows are removed later.
        state().update_one(
            {"_id": MODEL_VERSIONS}, {"$addToSet": {"versions": model.version}}, upsert=True
        )
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
    collection(ModelState).replace_one(
        {"_id": "current"},
        {
            "version": model.version,
            "built_at": built_at,
            "popularity": dict(model.popularity),
            "stats": dict(stats),
        },
        upsert=True,
    )
    # Older versions, one indexed equality each.
    versions = (state().find_one({"_id": MODEL_VERSIONS}) or {}).get("versions") or []
    for version in versions:
        if version != model.version:
            coll.delete_many({"model_version": version})
            state().update_one({"_id": MODEL_VERSIONS}, {"$pull": {"versions": version}})


def neighbor_key(version: str, product_id: str) -> str:
    return f"{version}|{product_id}"


def load_model_state() -> dict[str, Any] | None:
    return collection(ModelState).find_one({"_id": "current"})


def load_neighbors(version: str, product_ids: Iterable[str]) -> dict[str, list[tuple[str, float]]]:
    """Neighbour rows of these products in model ``version``
    (:func:`~herald_common.db.find_in` by ``_id``)."""
    keys = (neighbor_key(version, pid) for pid in product_ids)
    docs = find_in(collection(ItemNeighbors), "_id", keys)
    return {
        d["_id"].split("|", 1)[1]: [(n["p"], float(n["s"])) for n in d.get("neighbors", [])]
        for d in docs
    }
