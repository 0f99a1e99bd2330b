"""Alert rules and Grafana dashboards, checked with Prometheus's own promtool: the rules
load, each alert's unit test passes, every dashboard query parses and reads only series
that Herald exports, RabbitMQ's plugin exports, or the rules record."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .monitoring import (
    DASHBOARDS,
    ROOT,
    RULE_TESTS,
    RULES,
    concrete,
    dashboard_exprs,
    exported_metric_names,
    metric_names,
    rules,
)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: bash dev/tools.sh prometheus"
)
# rabbitmq_prometheus (per-object endpoint) series the dashboards and rules read; the live
# test proves the broker exports each of them.
RABBITMQ_SERIES = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_messages_published_total",
    "rabbitmq_queue_consumers",
    "rabbitmq_connections",
    "rabbitmq_channels",
    "rabbitmq_process_resident_memory_bytes",
}


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


@needs_promtool
def test_promtool_check_rules() -> None:
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout


@needs_promtool
def test_promtool_unit_tests_of_every_alert() -> None:
    out = promtool("test", "rules", str(RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])}
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert tested == alerts, f"alerts without a unit test: {alerts - tested}"
    # Each alert has a case where it fires and one where it stays quiet (a quiet case is
    # either an empty expectation or series in a firing case that must not fire).
    firing = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert firing == alerts


def test_alerts_read_recorded_series_only() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    for rule in rules():
        if "alert" in rule:
            assert metric_names(rule["expr"]) <= recorded, rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert "for" in rule


def test_recording_rules_read_exported_series() -> None:
    known = exported_metric_names() | RABBITMQ_SERIES
    for rule in rules():
        if "record" in rule:
            assert metric_names(rule["expr"]) <= known, (rule["record"], metric_names(rule["expr"]))


def test_dashboards_are_grafana_json() -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert {p.name for p in files} == {
        "herald-overview.json",
        "herald-rabbitmq.json",
        "herald-gateway.json",
    }
    uids = set()
    for path in files:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        assert board["title"].startswith("Herald / ")
        assert board["schemaVersion"] >= 36
        names = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "namespace"} <= names
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], (path.name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24


@needs_promtool
def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses each query: every one becomes a recording rule of a scratch file."""
    queries = dashboard_exprs()
    assert len(queries) >= 30
    groups = [
        {
            "name": "dashboards",
            "rules": [
                {"record": f"dashboard:query_{i}", "expr": concrete(expr)}
                for i, (_, _, expr) in enumerate(queries)
            ],
        }
    ]
    scratch = tmp_path / "dashboard-queries.yaml"
    scratch.write_text(yaml.safe_dump({"groups": groups}))
    out = promtool("check", "rules", str(scratch))
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_queries_read_series_that_exist() -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    known = exported_metric_names() | RABBITMQ_SERIES | recorded | {"up"}
    for board, title, expr in dashboard_exprs():
        unknown = metric_names(concrete(expr)) - known
        assert not unknown, f"{board} / {title}: {sorted(unknown)} is exported by nothing"


def test_dashboards_cover_what_operators_watch() -> None:
    exprs = {
        board: " ".join(e for b, _, e in dashboard_exprs() if b == board)
        for board, _, _ in dashboard_exprs()
    }
    overview = exprs["herald-overview.json"]
    assert "herald_notifications_decisions_total" in overview and "by (type, outcome)" in overview
    assert "herald_event_handler_duration_seconds_bucket" in overview
    # End-to-end latency: from a request's event to its notification in the inbox.
    assert "herald_notifications_end_to_end_seconds_bucket" in overview
    rabbit = exprs["herald-rabbitmq.json"]
    assert "rabbitmq_queue_messages_ready" in rabbit and ".*\\\\.dlq" in rabbit
    assert "rate(rabbitmq_queue_messages_published_total" in rabbit
    gateway = exprs["herald-gateway.json"]
    assert 'route="/graphql"' in gateway and "herald_gateway_cache_total" in gateway
    assert "sum by (code) (rate(herald_gateway_graphql_errors_total" in gateway
    assert "herald_operator_reconciles_total" in overview
    assert "herald_operator_reconcile_duration_seconds_bucket" in overview


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.99, sum by (service, le) (rate(x_bucket{a="b{c}"}[5m]))) / on (le) y_total > 1e3 and z:rec'
    assert metric_names(expr) == {"x_bucket", "y_total", "z:rec"}
