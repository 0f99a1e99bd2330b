"""Monitoring proven on a running Herald: dev/prometheus.sh (what `make up` starts)
scrapes every component, RabbitMQ and the operator (``herald-operator`` as a process
against the Kubernetes test control plane) while shoppers use Herald through GraphQL and
NotificationCampaigns and Schedules are reconciled, one of them refused; every recording
rule and every dashboard query then returns data, and every alert evaluates."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from herald_testing.kube import KubeControlPlane, stop_process, wait_until

from .monitoring import ROOT, concrete, dashboard_exprs, rules
from .test_monitoring import RABBITMQ_SERIES

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.kube]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = sys.modules.setdefault(name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module


# All of Herald as processes: the end-to-end suite's fixture (dev/run.sh up on free ports).
_e2e = _load("herald_e2e_fixtures", ROOT / "tests/e2e/conftest.py")
herald = _e2e.herald
ADMIN = _e2e.ADMIN
# The operator tests' helpers: Herald's CRDs, resource bodies, reads of a namespace.
_kube = _load("herald_operator_kube_helpers", ROOT / "operator/tests/kube_helpers.py")

PROMETHEUS_SH = ROOT / "dev" / "prometheus.sh"
COMPONENTS = {"users", "notifications", "recommendations", "scheduler", "gateway", "rabbitmq"}


@dataclass
class Operator:
    """A running ``herald-operator`` and the namespace it watches."""

    namespace: str
    metrics: str  # host:port of its /metrics
    api: Any
    log: Path
    process: subprocess.Popen[bytes]


# Session-scoped so that it starts before the (session-scoped) Herald and comes up while
# Herald does; it only watches its own namespace, where nothing else writes.
@pytest.fixture(scope="session")
def operator(
    kube_control_plane: KubeControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """``python -m herald_operator`` (what the chart's Deployment runs: leader election,
    probes and /metrics on its health port) watching a namespace of its own. Plain-text
    logs, so that a failure's log tail reads well."""
    run_dir = tmp_path_factory.mktemp("operator")
    port = _e2e.free_port()
    with kube_control_plane.api_client() as api:
        _kube.install_crds(api)
        namespace = _kube.create_namespace(api, f"t-{secrets.token_hex(4)}")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HERALD_")},
            "KUBECONFIG": kube_control_plane.kubeconfig,
            "HERALD_OPERATOR_NAMESPACES": namespace,
            "HERALD_OPERATOR_HEALTH_PORT": str(port),
            "HERALD_OPERATOR_LEASE_NAMESPACE": namespace,
            "HERALD_OPERATOR_IDENTITY": "monitoring-live",
            "HERALD_OPERATOR_LOG_JSON": "false",
            "HERALD_OPERATOR_SCHEDULER_IMAGE": "registry.invalid/herald/scheduler:test",
            "HERALD_OPERATOR_RECOMMENDATIONS_IMAGE": "registry.invalid/herald/recommendations:test",
            "HERALD_OPERATOR_NOTIFICATIONS_IMAGE": "registry.invalid/herald/notifications:test",
        }
        log = run_dir / "operator.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "herald_operator"],
                env=env,
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            yield Operator(
                namespace=namespace, metrics=f"127.0.0.1:{port}", api=api, log=log, process=proc
            )
        finally:
            stop_process(proc)
            from kubernetes import client

            client.CoreV1Api(api).delete_namespace(namespace, propagation_policy="Background")


@pytest.fixture(scope="module")
def watched_operator(operator: Operator) -> Iterator[Operator]:
    """The operator once it leads and watches (its /readyz answers 200); told to stop
    (SIGTERM) when this module is done, so that it shuts down while the session goes on
    (the session fixture's teardown waits for it)."""

    def ready() -> bool:
        try:
            return httpx.get(f"http://{operator.metrics}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    deadline = time.monotonic() + 60
    while not ready():
        assert operator.process.poll() is None, operator.log.read_text()[-4000:]
        assert time.monotonic() < deadline, operator.log.read_text()[-4000:]
        time.sleep(0.25)
    yield operator
    if operator.process.poll() is None:
        operator.process.terminate()


def _reconcile_some(op: Operator) -> None:
    """A Schedule and a campaign reconciled, and a campaign refused (its segment category
    does not exist): success and failed outcomes of both handlers' metrics."""
    cluster = _kube.Cluster(op.api, op.namespace)
    cluster.create(_kube.schedule_body("sweep"))
    cluster.create(_kube.campaign_body("flash-sale", audience={"categories": ["Books"]}))
    cluster.create(_kube.campaign_body("spaceships", audience={"categories": ["Spaceships"]}))

    expected = [
        ("Schedule", "sweep", "Ready"),
        ("NotificationCampaign", "flash-sale", "Ready"),
        ("NotificationCampaign", "spaceships", "Failed"),
    ]

    def reconciled() -> bool:
        conditions = [cluster.condition(kind, name, type_) for kind, name, type_ in expected]
        return all(c and c["status"] == "True" for c in conditions)

    wait_until(reconciled, timeout=30, what=f"statuses {expected}")


@pytest.fixture(scope="module")
def prometheus(
    herald: Any, watched_operator: Operator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    run_dir = tmp_path_factory.mktemp("prometheus")
    env = {
        **herald.env,
        "HERALD_PROMETHEUS_PORT": str(_e2e.free_port()),
        "HERALD_PROMETHEUS_DIR": str(run_dir),
        "HERALD_PROMETHEUS_INTERVAL": "1s",
        "HERALD_PROMETHEUS_OPERATOR": watched_operator.metrics,
    }
    up = subprocess.run(
        ["/bin/bash", str(PROMETHEUS_SH), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield f"http://127.0.0.1:{env['HERALD_PROMETHEUS_PORT']}"
    finally:
        subprocess.run(
            ["/bin/bash", str(PROMETHEUS_SH), "down"], env=env, capture_output=True, timeout=60
        )


async def _gql(
    client: httpx.AsyncClient, url: str, query: str, variables: Any = None, token: str | None = None
) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = await client.post(url, json={"query": query, "variables": variables}, headers=headers)
    body = r.json()
    assert "errors" not in body, json.dumps(body)[:1000]
    return body["data"]


async def _use_herald(herald: Any) -> None:
    """Shoppers register, set preferences (one in quiet hours right now, so promotions
    are deferred), browse, buy, read their inbox; an admin fires a campaign; a malformed
    event is dead-lettered."""
    async with httpx.AsyncClient(timeout=30) as client:
        url = herald.graphql
        now = time.gmtime()
        quiet = {
            "start": f"{(now.tm_hour - 1) % 24:02d}:00",
            "end": f"{(now.tm_hour + 2) % 24:02d}:00",
        }
        tokens = []
        for i in range(3):
            email = f"watch-{i}-{uuid.uuid4().hex[:6]}@example.com"
            data = await _gql(
                client,
                url,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
                {"i": {"name": f"Watcher {i}", "email": email, "password": "Correct-Horse-42"}},
            )
            token = data["register"]["accessToken"]
            tokens.append(token)
            prefs: dict[str, Any] = {"promotions": True, "recommendations": True, "timezone": "UTC"}
            if i == 0:
                prefs["quietHours"] = quiet
            if i == 1:
                prefs["promotions"] = False
            await _gql(
                client,
                url,
                "mutation($p: PreferencesInput!) { updatePreferences(input: $p) { preferences { promotions } } }",
                {"p": prefs},
                token,
            )
            await _gql(
                client,
                url,
                "mutation($e: [ActivityInput!]!) { trackActivity(events: $e) }",
                {
                    "e": [
                        {"kind": "VIEW", "productId": "p-00003"},
                        {"kind": "PURCHASE", "productId": "p-00003"},
                    ]
                },
                token,
            )
        admin = await _gql(
            client,
            url,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            {"e": ADMIN[0], "p": ADMIN[1]},
        )
        await _gql(
            client,
            url,
            'mutation { fireCampaign(name: "flash-sale") { runId } }',
            None,
            admin["login"]["accessToken"],
        )
        for _ in range(3):
            for token in tokens:
                await _gql(
                    client,
                    url,
                    "{ me { id } unreadCount recommendations(first: 3) { productId } "
                    "notifications(first: 5) { totalCount } }",
                    None,
                    token,
                )
        # Refused requests are counted too (UNAUTHENTICATED).
        await client.post(
            url, json={"query": "{ me { id } }"}, headers={"authorization": "Bearer nope"}
        )

    import aio_pika

    connection = await aio_pika.connect_robust(herald.env["HERALD_AMQP_URL"])
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(
            herald.env.get("HERALD_EVENTS_EXCHANGE", "herald.events")
        )
        await exchange.publish(
            aio_pika.Message(b"{not an event", content_type="application/json"),
            routing_key="notification.requested",
        )


def _query(prometheus: str, expr: str) -> dict[str, Any]:
    r = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]


def _wait_for_data(
    prometheus: str, exprs: list[tuple[str, str]], timeout: float
) -> list[tuple[str, str]]:
    """The (label, expr) pairs still without data after ``timeout`` seconds."""
    missing = list(exprs)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        missing = [(label, e) for label, e in missing if not _query(prometheus, e)["result"]]
        if missing:
            time.sleep(2)
    return missing


# ``operator`` before ``herald``: both are session fixtures, set up in this order.
def test_every_rule_and_dashboard_query_returns_data(
    operator: Operator, herald: Any, prometheus: str
) -> None:
    asyncio.run(_use_herald(herald))
    # Every target is scraped (Prometheus lists its targets a moment after it is ready).
    deadline = time.monotonic() + 30
    while True:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"][
            "activeTargets"
        ]
        if len(targets) > len(COMPONENTS) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    health = {t["labels"]["component"]: t["health"] for t in targets}
    assert set(health) == COMPONENTS | {"operator"}

    def all_up() -> bool:
        now = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return all(t["health"] == "up" for t in now)

    deadline = time.monotonic() + 30
    while not all_up():
        assert time.monotonic() < deadline, httpx.get(f"{prometheus}/api/v1/targets").text[:3000]
        time.sleep(1)
    # Reconciles after the operator's first scrape: its counters rise under Prometheus's
    # eyes, so rates and latency quantiles have real values.
    _reconcile_some(operator)

    recording = [r for r in rules() if "record" in r]
    recorded = [(f"rule {r['record']}", r["expr"]) for r in recording]
    recorded += [(f"series {r['record']}", r["record"]) for r in recording]
    panels = [
        (f"{board} / {title}", concrete(expr, "1m")) for board, title, expr in dashboard_exprs()
    ]
    # The operator's series moved while Prometheus watched: both kinds reconciled, their
    # durations observed, and the refused campaign is what HeraldOperatorReconcileFailing's
    # input counts.
    operator_moved = [
        (
            "operator reconciled both kinds",
            'count(sum by (kind) (increase(herald_operator_reconciles_total{outcome="success"}[5m])) > 0) == 2',
        ),
        (
            "operator reconcile durations observed",
            "histogram_quantile(0.99, sum by (le) (rate(herald_operator_reconcile_duration_seconds_bucket[5m]))) >= 0",
        ),
        (
            "refused campaign counted",
            'herald:operator_reconcile_failures:increase5m{kind="NotificationCampaign"} > 0',
        ),
    ]
    broker = [(f"rabbitmq {name}", name) for name in sorted(RABBITMQ_SERIES)]
    missing = _wait_for_data(prometheus, recorded + panels + broker + operator_moved, timeout=150)
    assert not missing, "no data for:\n" + "\n".join(
        f"  {label}: {expr}" for label, expr in missing
    )

    # Every alert expression evaluates (empty: nothing is wrong), and Prometheus itself
    # reports every rule healthy.
    for rule in rules():
        if "alert" in rule:
            _query(prometheus, rule["expr"])
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {r.get("record") or r["alert"] for r in rules()}
    assert all(r["health"] == "ok" for r in loaded.values()), [
        (n, r.get("lastError")) for n, r in loaded.items() if r["health"] != "ok"
    ]
