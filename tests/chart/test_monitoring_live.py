"""Monitoring proven on a running Herald: dev/prometheus.sh (what `make up` starts)
scrapes every component and RabbitMQ while shoppers use Herald through GraphQL; every
recording rule and every dashboard query then returns data, and every alert evaluates."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .monitoring import ROOT, concrete, dashboard_exprs, metric_names, rules
from .test_monitoring import RABBITMQ_SERIES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# All of Herald as processes: the end-to-end suite's fixture (dev/run.sh up on free ports).
_spec = importlib.util.spec_from_file_location(
    "herald_e2e_fixtures", ROOT / "tests/e2e/conftest.py"
)
assert _spec and _spec.loader
_e2e = sys.modules.setdefault("herald_e2e_fixtures", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(_e2e)
herald = _e2e.herald
ADMIN = _e2e.ADMIN

PROMETHEUS_SH = ROOT / "dev" / "prometheus.sh"


def _outside_kubernetes(expr: str) -> bool:
    """Whether the query can have data here: the operator runs only in Kubernetes (no
    `make up` process), so its series are proven by its own tests (operator/tests,
    test_metrics.py and the kube test of reconcile outcomes) and promtool's rule tests."""
    return not any(name.startswith("herald_operator_") for name in metric_names(expr))


@pytest.fixture(scope="module")
def prometheus(herald: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    run_dir = tmp_path_factory.mktemp("prometheus")
    env = {
        **herald.env,
        "HERALD_PROMETHEUS_PORT": str(_e2e.free_port()),
        "HERALD_PROMETHEUS_DIR": str(run_dir),
        "HERALD_PROMETHEUS_INTERVAL": "1s",
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


def test_every_rule_and_dashboard_query_returns_data(herald: Any, prometheus: str) -> None:
    asyncio.run(_use_herald(herald))
    # Every target is scraped (Prometheus lists its targets a moment after it is ready).
    deadline = time.monotonic() + 30
    while True:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"][
            "activeTargets"
        ]
        if len(targets) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    health = {t["labels"]["component"]: t["health"] for t in targets}
    assert set(health) == {
        "users",
        "notifications",
        "recommendations",
        "scheduler",
        "gateway",
        "rabbitmq",
    }

    def all_up() -> bool:
        now = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return all(t["health"] == "up" for t in now)

    deadline = time.monotonic() + 30
    while not all_up():
        assert time.monotonic() < deadline, httpx.get(f"{prometheus}/api/v1/targets").text[:3000]
        time.sleep(1)

    here = [r for r in rules() if "record" in r and _outside_kubernetes(r["expr"])]
    recorded = [(f"rule {r['record']}", r["expr"]) for r in here]
    recorded += [(f"series {r['record']}", r["record"]) for r in here]
    panels = [
        (f"{board} / {title}", concrete(expr, "1m"))
        for board, title, expr in dashboard_exprs()
        if _outside_kubernetes(expr)
    ]
    broker = [(f"rabbitmq {name}", name) for name in sorted(RABBITMQ_SERIES)]
    missing = _wait_for_data(prometheus, recorded + panels + broker, timeout=150)
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
