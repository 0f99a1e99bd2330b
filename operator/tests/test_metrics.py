"""The operator's metrics: reconcile outcomes and durations, served on /metrics."""

from __future__ import annotations

import httpx
import kopf
import pytest
from herald_operator.health import start_health_server
from herald_operator.metrics import REGISTRY, reconciling
from herald_testing.ports import free_port


def _count(kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    return REGISTRY.get_sample_value("herald_operator_reconciles_total", labels) or 0.0


def _observed(kind: str) -> float:
    labels = {"kind": kind}
    return (
        REGISTRY.get_sample_value("herald_operator_reconcile_duration_seconds_count", labels) or 0.0
    )


def test_every_outcome_is_counted_and_timed() -> None:
    kind = "Schedule"
    before = {o: _count(kind, o) for o in ("success", "failed", "retry", "error")}
    timed = _observed(kind)
    with reconciling(kind):
        pass  # a reconcile that returns normally: counted as success
    with reconciling(kind) as result:
        result.outcome = "failed"  # what reconcile returns for a Failed status
    with pytest.raises(kopf.TemporaryError), reconciling(kind):
        raise kopf.TemporaryError("API error 503", delay=10)
    with pytest.raises(RuntimeError), reconciling(kind):
        raise RuntimeError("bug")
    after = {o: _count(kind, o) - before[o] for o in before}
    assert after == {"success": 1, "failed": 1, "retry": 1, "error": 1}
    assert _observed(kind) - timed == 4


def test_series_exist_before_any_reconcile() -> None:
    # Zeros, not absences: rate() and the HeraldOperatorReconcileFailing alert see them.
    for kind in ("NotificationCampaign", "Schedule"):
        for outcome in ("success", "failed", "retry", "error"):
            assert (
                REGISTRY.get_sample_value(
                    "herald_operator_reconciles_total", {"kind": kind, "outcome": outcome}
                )
                is not None
            )


async def test_metrics_are_served_beside_the_probes() -> None:
    port = free_port()
    runner = await start_health_server(port, leading=lambda: True, host="127.0.0.1")
    try:
        with reconciling("NotificationCampaign"):
            pass  # one successful reconcile, so the series exist
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        text = r.text
        assert (
            'herald_operator_reconciles_total{kind="NotificationCampaign",outcome="success"}'
            in text
        )
        assert (
            'herald_operator_reconcile_duration_seconds_bucket{kind="NotificationCampaign"' in text
        )
    finally:
        await runner.cleanup()
