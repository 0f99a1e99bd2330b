"""Settings of the recommendations service (env prefix ``HERALD_RECOMMENDATIONS_``)."""

from __future__ import annotations

from herald_common.settings import HeraldSettings, component_config
from pydantic import Field

from herald_recommendations.algorithm import Params


class RecommendationsSettings(HeraldSettings, Params):
    """Everything the service, the batch job and the CLI read from the environment."""

    model_config = component_config("RECOMMENDATIONS")

    service_name: str = "recommendations"
    mongodb_db: str = "herald_recommendations"
    host: str = "127.0.0.1"
    port: int = 4003

    # Consumer queues (tests give each run its own names).
    activity_queue: str = "recommendations.activity"
    users_queue: str = "recommendations.users"
    # Activity messages stored together (each holds up to 1000 activities), collected
    # for at most the wait after the first one arrived.
    activity_batch_max: int = Field(default=20, ge=1, le=500)
    activity_batch_wait_ms: int = Field(default=20, ge=0, le=1000)

    # Catalog seeded at start-up when the database has none (the generator may replace it).
    catalog_seed: int = 42
    catalog_products: int = Field(default=2000, ge=1, le=200_000)
    catalog_categories: int = Field(default=24, ge=1, le=40)

    # Model: the knobs of algorithm.Params are inherited (half_life_days, weights, ...).
    stored_items: int = Field(default=20, ge=1, le=200)

    # Incremental refresh (a purchase, or a burst of views, of a recent activity).
    incremental_enabled: bool = True
    incremental_debounce_seconds: float = Field(default=2.0, ge=0)
    incremental_concurrency: int = Field(default=2, ge=1, le=32)  # refreshes at once
    # A user's next refresh starts at least this long after the last one started.
    incremental_min_interval_seconds: float = Field(default=10.0, ge=0)
    burst_views: int = Field(default=3, ge=1)
    burst_window_seconds: float = Field(default=600.0, gt=0)
    # Only activity this fresh triggers a refresh: bulk imports of history do not.
    incremental_max_age_seconds: float = Field(default=900.0, gt=0)
    # Notify on a refresh only if this many of the top items are new, and not more often
    # than the interval (the batch job has its own, per-batch rule).
    notify_top_n: int = Field(default=5, ge=1, le=50)
    notify_min_new_items: int = Field(default=2, ge=1)
    notify_min_interval_seconds: float = Field(default=3600.0, ge=0)

    # Per user, the newest activities kept for scoring (the raw log keeps everything).
    max_user_activities: int = Field(default=1000, ge=10, le=100_000)

    # Batch job.
    batch_page_size: int = Field(default=500, ge=1, le=10_000)
    activity_future_tolerance_seconds: float = Field(default=300.0, ge=0)
