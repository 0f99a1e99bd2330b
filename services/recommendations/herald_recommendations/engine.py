"""Domain layer: compute, store and announce a user's recommendations.

Synchronous (mongoengine); async callers go through ``herald_common.db.run_db``. Pure
scoring lives in :mod:`herald_recommendations.algorithm`; this module loads the inputs,
stores the result and decides about notifications.

Notification rules
------------------
* Only users whose replicated preferences opt into ``recommendation`` are notified
  (unknown users, e.g. the generated ``mock-u-…`` shoppers, are not).
* Batch: one request per user and batch, idempotency key ``rec:<user>:<batch_id>``;
  skipped when the user's top items are exactly the ones last notified.
* Incremental refresh: a request only when the top items changed *materially* — at
  least ``notify_min_new_items`` (2) of the top ``notify_top_n`` (5) were not in the
  last notified top items — and the last recommendation notification is at least
  ``notify_min_interval_seconds`` (1 h) old. Key ``rec:<user>:live-<hash of the top
  items>``.
* The request is staged in the recommendations document's outbox in the same write as
  the new recommendations, so it is published even if the process dies right after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from herald_common import replica
from herald_common.clock import Clock, utcnow
from herald_common.events import NotificationRequested, make_event
from herald_common.outbox import outbox_update

from herald_recommendations import model_store, storage
from herald_recommendations.algorithm import (
    ALGORITHM_VERSION,
    Interaction,
    Model,
    Params,
    Recommendation,
    catalog_model,
    material_change,
    recommend,
    top_ids,
)
from herald_recommendations.catalog import Product
from herald_recommendations.config import RecommendationsSettings

log = logging.getLogger(__name__)

NotifyMode = Literal["none", "batch", "incremental"]
CATALOG_RECHECK_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Recomputed:
    """What one recompute did."""

    user_id: str
    items: int
    notified: bool
    notification_key: str | None = None


class RecommendationEngine:
    """Catalog and model caches plus the compute → store → notify path."""

    def __init__(self, settings: RecommendationsSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.params: Params = settings
        self.clock = clock or utcnow
        self._catalog: dict[str, Product] = {}
        self._catalog_version: str | None = None
        self._catalog_checked = 0.0
        self._base_model: Model | None = None

    # --- set-up and caches ------------------------------------------------------------

    def ensure_ready(self) -> None:
        """Indexes, and the configured catalog when the database has none yet."""
        storage.ensure_indexes()
        replica.ensure_indexes()
        s = self.settings
        storage.seed_catalog(s.catalog_seed, s.catalog_products, s.catalog_categories)

    def catalog(self) -> dict[str, Product]:
        """The catalog, reloaded when the generator replaced it (checked every few seconds)."""
        now = time.monotonic()
        if self._catalog and now - self._catalog_checked < CATALOG_RECHECK_SECONDS:
            return self._catalog
        self._catalog_checked = now
        version = storage.catalog_version()
        if version != self._catalog_version:
            self._catalog = storage.load_catalog()
            self._catalog_version = version
            self._base_model = None
        return self._catalog

    def base_model(self) -> Model:
        """The stored model without neighbours (popularity + ranking, cached per version)."""
        catalog = self.catalog()
        state = model_store.load_model_state()
        version = state["version"] if state else None
        if self._base_model is None or self._base_model.version != (version or self._cold_version):
            if state is None:
                model = catalog_model(self._cold_version)
            else:
                model = Model(
                    version=state["version"],
                    neighbors={},
                    popularity=dict(state.get("popularity") or {}),
                )
            model.ranked(catalog)
            self._base_model = model
        return self._base_model

    @property
    def _cold_version(self) -> str:
        return f"{ALGORITHM_VERSION}@catalog"

    def set_model(self, model: Model) -> None:
        """Use a freshly built model (the batch job) without reloading it."""
        model.ranked(self.catalog())
        self._base_model = dataclasses.replace(model, neighbors={})

    # --- compute ------------------------------------------------------------------------

    def compute(
        self,
        interactions: Sequence[Interaction],
        model: Model | None = None,
        limit: int | None = None,
    ) -> tuple[list[Recommendation], str]:
        """Recommendations for these interactions and the model version used."""
        catalog = self.catalog()
        if model is None:
            base = self.base_model()
            anchors = {i.product_id for i in interactions}
            model = dataclasses.replace(
                base, neighbors=model_store.load_neighbors(base.version, anchors)
            )
        now = self.clock().timestamp()
        recs = recommend(
            interactions, model, catalog, now, limit or self.settings.stored_items, self.params
        )
        return recs, model.version

    def refresh_user(
        self,
        user_id: str,
        *,
        trigger: str,
        notify: NotifyMode = "none",
        batch_id: str | None = None,
        interactions: Sequence[Interaction] | None = None,
        model: Model | None = None,
    ) -> Recomputed:
        """Recompute one user's recommendations, store them, maybe stage a notification."""
        if interactions is None:
            interactions = storage.load_interactions([user_id]).get(user_id, [])
        recs, version = self.compute(interactions, model)
        return self.store(user_id, recs, version, trigger=trigger, notify=notify, batch_id=batch_id)

    # --- store and notify -----------------------------------------------------------------

    def opted_in(self, user_id: str) -> bool:
        preferences = replica.get_preferences(user_id)
        return preferences is not None and preferences.wants("recommendation")

    def store(
        self,
        user_id: str,
        recs: Sequence[Recommendation],
        model_version: str,
        *,
        trigger: str,
        notify: NotifyMode = "none",
        batch_id: str | None = None,
    ) -> Recomputed:
        now = self.clock()
        update: dict[str, Any] = {
            "set__items": [
                {
                    "product_id": r.product_id,
                    "score": r.score,
                    "explanation": r.explanation,
                    "reason": r.reason,
                }
                for r in recs
            ],
            "set__model_version": model_version,
            "set__generated_at": now,
            "set__trigger": trigger,
            "set__batch_id": batch_id,
        }
        key = self._notification_key(user_id, recs, notify, batch_id, now)
        if key is not None:
            top = top_ids(recs, self.settings.notify_top_n)
            update.update(
                {"set__notified_items": top, "set__notified_at": now, "set__notified_key": key},
                **outbox_update(self._notification(user_id, recs, key, now)),
            )
        storage.save_recommendations(user_id, update)
        return Recomputed(user_id, len(recs), key is not None, key)

    def _notification_key(
        self,
        user_id: str,
        recs: Sequence[Recommendation],
        notify: NotifyMode,
        batch_id: str | None,
        now: datetime,
    ) -> str | None:
        s = self.settings
        if notify == "none" or not recs or not self.opted_in(user_id):
            return None
        previous = (
            storage.load_recommendations(user_id, ("notified_items", "notified_at", "notified_key"))
            or {}
        )
        before: list[str] = previous.get("notified_items") or []
        top = top_ids(recs, s.notify_top_n)
        if notify == "batch":
            key = f"rec:{user_id}:{batch_id}"
            if previous.get("notified_key") == key or set(top) == set(before[: s.notify_top_n]):
                return None
            return key
        if not material_change(before, top, s.notify_top_n, s.notify_min_new_items):
            return None
        last = previous.get("notified_at")
        if last is not None:
            if last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            if (now - last).total_seconds() < s.notify_min_interval_seconds:
                return None
        digest = hashlib.sha256(",".join(top).encode()).hexdigest()[:12]
        key = f"rec:{user_id}:live-{digest}"
        return None if previous.get("notified_key") == key else key

    def _notification(
        self, user_id: str, recs: Sequence[Recommendation], key: str, now: datetime
    ) -> Any:
        catalog = self.catalog()
        top = list(recs)[: self.settings.notify_top_n]
        first = catalog[top[0].product_id]
        more = len(top) - 1
        body = f"{first.name}: {top[0].explanation}."
        if more:
            body += f" And {more} more picks for you."
        payload = NotificationRequested(
            idempotency_key=key,
            user_id=user_id,
            type="recommendation",
            content={
                "title": "New recommendations for you",
                "body": body,
                "data": {"product_ids": [r.product_id for r in top]},
            },
            collapse_key=f"recommendations:{user_id}",
            source=self.settings.service_name,
            requested_at=now,
        )
        return make_event(payload, source=self.settings.service_name)

    # --- read ------------------------------------------------------------------------------

    def view(self, user_id: str, first: int) -> dict[str, Any]:
        """The API view of a user's recommendations; computed (and stored) on first ask."""
        doc = storage.load_recommendations(user_id)
        if doc is None:
            self.refresh_user(user_id, trigger="on_demand")
            doc = storage.load_recommendations(user_id) or {}
        catalog = self.catalog()
        items = []
        for item in doc.get("items", []):
            product = catalog.get(item["product_id"])
            if product is None:
                continue  # the catalog was replaced since: skip vanished products
            items.append(
                {
                    "product_id": product.id,
                    "name": product.name,
                    "category": product.category,
                    "price": product.price,
                    "score": item["score"],
                    "explanation": item["explanation"],
                }
            )
            if len(items) >= first:
                break
        generated = doc.get("generated_at")
        if generated is not None and generated.tzinfo is None:
            generated = generated.replace(tzinfo=UTC)
        return {
            "user_id": user_id,
            "model_version": doc.get("model_version"),
            "generated_at": generated,
            "items": items,
        }


def product_view(product: Product) -> Mapping[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "category": product.category,
        "price": product.price,
        "popularity": product.popularity,
    }
