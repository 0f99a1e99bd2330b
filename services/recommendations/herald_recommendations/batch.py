"""The batch job: rebuild the model, recompute users, stage notifications.

This is the container command of the recommendation Kubernetes Job
(``herald-recommendations batch``). Steps:

1. Stream every user's activity once and build the model (co-occurrence neighbours and
   popularity); store it and make it current.
2. Recompute and store the recommendations of all users (``--all``: everyone with
   activity plus every replicated user) or of those with activity ingested, or a
   replica change, since the last finished run (``--changed-since-last-run``). When
   neither happened, the incremental run does nothing at all (``skipped``).
3. With ``notify``, stage a ``notification.requested`` per opted-in user in the same
   write as the user's new recommendations (outbox), key ``rec:<user>:<batch_id>``;
   publish them with confirms before exiting. A crash mid-batch loses nothing: staged
   requests are published by the next relay pass (this job's next run or the
   service), and re-running the same batch reuses its keys.

``batch_id`` is given or derived from the data watermark (the newest ingestion time) and
the mode: re-running over the same data is the same batch.

Exit codes: 0 ok, 1 partial failure (some users failed, or requests stayed unpublished),
2 configuration or connection error.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from herald_common import replica
from herald_common.clock import Clock, utcnow
from herald_common.db import ping_db, run_db
from herald_common.runtime import ServiceRuntime
from pymongo.errors import ConnectionFailure

from herald_recommendations import model_store, storage
from herald_recommendations.algorithm import (
    ALGORITHM_VERSION,
    CooccurrenceBuilder,
    Model,
    derive_batch_id,
)
from herald_recommendations.config import RecommendationsSettings
from herald_recommendations.engine import RecommendationEngine
from herald_recommendations.models import BatchRun, RecommendationDoc

log = logging.getLogger(__name__)

Mode = Literal["all", "changed"]
EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG = 0, 1, 2


@dataclass
class BatchResult:
    """Counts of one run."""

    batch_id: str | None = None
    run_id: str | None = None
    mode: str = "all"
    since: datetime | None = None
    users: int = 0
    stored: int = 0
    notified: int = 0
    failed: int = 0
    unpublished: int = 0
    # incremental run with nothing to do: no activity and no replica change since the
    # last finished run (no model rebuilt, no run recorded)
    skipped: bool = False
    model_version: str | None = None
    exit_code: int = EXIT_OK
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_model(engine: RecommendationEngine, now: datetime) -> tuple[Model, dict[str, Any]]:
    """Pass 1: stream everyone's activity into the co-occurrence builder."""
    catalog = engine.catalog()
    builder = CooccurrenceBuilder(sorted(catalog), engine.params, now.timestamp())
    for _, interactions in storage.iter_user_interactions(engine.settings.batch_page_size):
        builder.add_user(interactions)
        if builder.users % 10_000 == 0:
            log.info("model: users read", extra={"users": builder.users})
    model = builder.build(f"{ALGORITHM_VERSION}@{now:%Y%m%dT%H%M%SZ}")
    stats = {
        "users": builder.users,
        "interactions": builder.interactions,
        "pairs": builder.distinct_pairs,
        "items_with_neighbors": len(model.neighbors),
    }
    return model, stats


def changed_since(since: datetime, watermark: datetime | None) -> bool:
    """Whether activity was ingested (``watermark``) or the user replica changed at or
    after ``since``: two state-document reads, so an idle schedule costs nothing."""
    replica_changed = replica.last_change()
    return any(at is not None and at >= since for at in (watermark, replica_changed))


def compute(
    engine: RecommendationEngine,
    *,
    mode: Mode,
    notify: bool,
    batch_id: str | None,
) -> BatchResult:
    """The synchronous body of a run (storage and CPU work)."""
    s = engine.settings
    started = engine.clock()
    watermark = storage.activity_watermark()
    previous = storage.last_finished_run() if mode == "changed" else None
    since = previous["started_at"] if previous else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if since is not None and not changed_since(since, watermark):
        log.info("batch skipped: nothing changed", extra={"since": str(since)})
        return BatchResult(mode=mode, since=since, skipped=True)
    batch_id = batch_id or derive_batch_id(watermark.timestamp() if watermark else None, mode)
    result = BatchResult(
        batch_id=batch_id, mode=mode, since=since, run_id=f"{batch_id}@{started:%Y%m%dT%H%M%S.%fZ}"
    )
    run = BatchRun(
        id=result.run_id,
        batch_id=batch_id,
        mode=mode,
        status="running",
        started_at=started,
        since=since,
    )
    storage.save_run(run)
    log.info("batch started", extra={"batch_id": batch_id, "mode": mode, "since": str(since)})

    model, stats = build_model(engine, started)
    model_store.save_model(model, started, stats)
    engine.set_model(model)
    result.model_version = model.version
    log.info("model built", extra={"version": model.version, **stats})

    def refresh(user_id: str, interactions: list[Any]) -> None:
        result.users += 1
        try:
            outcome = engine.refresh_user(
                user_id,
                trigger="batch",
                notify="batch" if notify else "none",
                batch_id=batch_id,
                interactions=interactions,
                model=model,
            )
        except Exception as exc:  # one bad user must not stop the batch
            result.failed += 1
            if len(result.errors) < 20:
                result.errors.append(f"{user_id}: {type(exc).__name__}: {exc}")
            log.warning("user failed", extra={"user_id": user_id}, exc_info=True)
            return
        result.stored += 1
        result.notified += int(outcome.notified)

    for user_id, interactions in storage.iter_user_interactions(s.batch_page_size, since):
        refresh(user_id, interactions)
        if result.users % s.batch_page_size == 0:
            log.info(
                "batch progress",
                extra={"users": result.users, "notified": result.notified, "failed": result.failed},
            )
    # Registered users without activity get the popularity fallback.
    query = {"updated_at": {"$gte": since}} if since is not None else None
    for users in replica.iter_users(query, batch_size=s.batch_page_size):
        ids = [u["_id"] for u in users]
        active = storage.known_active(ids)
        for user_id in ids:
            if user_id not in active:
                refresh(user_id, [])

    run.status = "partial" if result.failed else "ok"
    run.finished_at = utcnow()
    run.counts = {
        "users": result.users,
        "stored": result.stored,
        "notified": result.notified,
        "failed": result.failed,
    }
    storage.save_run(run)
    storage.record_finished_run(run.id, started)
    return result


async def run_batch(
    settings: RecommendationsSettings,
    *,
    mode: Mode = "all",
    notify: bool = True,
    batch_id: str | None = None,
    clock: Clock | None = None,
) -> BatchResult:
    """Run one batch; the result's ``exit_code`` is the process exit code."""
    runtime = ServiceRuntime(
        settings,
        documents=[RecommendationDoc],
        use_redis=False,
        verify_tokens=False,
        configure_logs=False,
    )
    try:
        await runtime.start()
        if not await run_db(ping_db):
            raise ConnectionFailure(f"MongoDB at {settings.mongodb_uri} does not answer")
        engine = RecommendationEngine(settings, clock=clock)
        await run_db(engine.ensure_ready)
    except Exception as exc:  # noqa: BLE001 - any start-up failure is a config/connection error
        log.error("batch cannot start: %s", exc)
        await _stop(runtime)
        return BatchResult(
            mode=mode, exit_code=EXIT_CONFIG, errors=[f"{type(exc).__name__}: {exc}"]
        )
    try:
        try:
            result = await run_db(compute, engine, mode=mode, notify=notify, batch_id=batch_id)
        except Exception as exc:
            # Aborted mid-run: what was stored stays, staged requests stay staged.
            log.exception("batch aborted")
            code = EXIT_CONFIG if isinstance(exc, ConnectionFailure) else EXIT_PARTIAL
            return BatchResult(mode=mode, exit_code=code, errors=[f"{type(exc).__name__}: {exc}"])
        if runtime.relay is not None:
            try:
                await runtime.relay.relay_once()
            except Exception as exc:  # noqa: BLE001 - reported; requests stay staged
                result.errors.append(f"publishing: {type(exc).__name__}: {exc}")
        result.unpublished = await run_db(storage.unpublished_requests)
    finally:
        await _stop(runtime)
    if result.failed or result.unpublished:
        result.exit_code = EXIT_PARTIAL
    log.info("batch finished", extra={k: v for k, v in result.as_dict().items() if k != "errors"})
    return result


async def _stop(runtime: ServiceRuntime) -> None:
    try:
        await runtime.stop()
    except Exception:
        log.warning("shutdown was not clean", exc_info=True)
