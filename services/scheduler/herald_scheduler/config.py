"""Scheduler settings (env prefix ``HERALD_SCHEDULER_``)."""

from __future__ import annotations

from herald_common.settings import HeraldSettings, component_config
from pydantic import Field, field_validator

ORDER_STEPS = ("placed", "paid", "shipped", "out_for_delivery")


class SchedulerSettings(HeraldSettings):
    """Everything the scheduler service, its CLI and the local runner read."""

    model_config = component_config("SCHEDULER")

    service_name: str = "scheduler"
    mongodb_db: str = "herald_scheduler"
    host: str = "127.0.0.1"
    port: int = 4004

    # Consumer queues are "<queue_prefix>.users|activity|campaigns"; tests make it unique.
    queue_prefix: str = "scheduler"
    # Activity messages handled together (each holds up to 1000 activities), collected
    # for at most the wait after the first one arrived.
    activity_batch_max: int = Field(default=20, ge=1, le=500)
    activity_batch_wait_ms: int = Field(default=20, ge=0, le=1000)

    # --- orders ---------------------------------------------------------------------
    # Seconds an order stays in each status before a sweep advances it. Local defaults
    # are short so that a new user sees the whole lifecycle within a minute.
    order_step_seconds: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(ORDER_STEPS, 10.0)
    )
    # Chance that a placed or paid order is cancelled instead of advancing.
    order_cancel_probability: float = Field(default=0.05, ge=0.0, le=1.0)
    sweep_batch_size: int = Field(default=200, ge=1, le=10_000)

    # --- campaigns ------------------------------------------------------------------
    fanout_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Notification requests awaiting their publisher confirm at the same time.
    fanout_publish_concurrency: int = Field(default=100, ge=1, le=5_000)
    # A worker holding a run renews its claim every batch; a crashed one's claim expires.
    campaign_lease_seconds: float = Field(default=120.0, gt=0)
    dry_run_samples: int = Field(default=10, ge=0, le=100)

    # --- local runner / tasks ---------------------------------------------------------
    runner_reload_seconds: float = Field(default=5.0, gt=0)
    task_timeout_seconds: float = Field(default=900.0, gt=0)

    @field_validator("order_step_seconds")
    @classmethod
    def _steps(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(ORDER_STEPS))
        if unknown:
            raise ValueError(f"unknown order status(es) {unknown}; allowed: {list(ORDER_STEPS)}")
        # A zero delay would let one sweep advance an order through several statuses.
        bad = sorted(k for k, v in value.items() if v <= 0)
        if bad:
            raise ValueError(f"delays must be positive: {bad}")
        return {**dict.fromkeys(ORDER_STEPS, 10.0), **value}

    def queue(self, name: str) -> str:
        return f"{self.queue_prefix}.{name}"
