"""Operator benchmark against the Kubernetes test control plane: how long from
applying a NotificationCampaign to its CronJob existing, and how long the operator
takes to reconcile 500 campaigns in one namespace (with its API request and 429
counts, and errors).

    python -m bench.operator [--latency-samples 50] [--campaigns 500]

Starts ``herald-testenv`` (``dev/testenv``) unless ``HERALD_KUBECONFIG`` names a cluster,
runs the operator in this process (one replica, no leader election) and prints a table;
nothing here asserts a threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kopf
import kubernetes
import yaml
from herald_operator.cli import run
from herald_operator.config import OperatorSettings
from herald_operator.context import Context, make_context
from herald_testing.kube import start_control_plane, stop_process, wait_until
from kubernetes import client, watch
from rich.console import Console
from rich.table import Table

from bench import support

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "herald.io", "v1alpha1", "notificationcampaigns"


def _campaign(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NotificationCampaign",
        "metadata": {"name": name},
        "spec": {
            "type": "promotion",
            "schedule": f"{secrets.randbelow(60)} * * * *",
            "timeZone": "Europe/Paris",
            "audience": {"categories": ["Books"]},
            "template": {"title": "Hi {first_name}", "body": "New in {favorite_category}"},
        },
    }


class ErrorCounter(logging.Handler):
    """Counts the operator's (and kopf's) error records."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.messages) < 5:
            self.messages.append(f"{record.name}: {record.getMessage()[:300]}")


class CronJobWatch:
    """When each CronJob of a namespace first appeared (a watch, not polling)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self.batch: Any = client.BatchV1Api(api)
        self.namespace = namespace
        self.watch = watch.Watch()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch.stream(
                self.batch.list_namespaced_cron_job, self.namespace, timeout_seconds=3600
            ):
                name = event["object"].metadata.name
                self.seen.setdefault(name, time.perf_counter())
        except Exception:  # noqa: BLE001 - the server went away at the end of the run
            return

    def stop(self) -> None:
        self.watch.stop()


def _install_crds(api: Any) -> None:
    ext: Any = client.ApiextensionsV1Api(api)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        try:
            ext.create_custom_resource_definition(body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    custom: Any = client.CustomObjectsApi(api)

    def served() -> bool:
        try:
            for plural in (PLURAL, "schedules"):
                custom.list_cluster_custom_object(GROUP, VERSION, plural)
        except client.ApiException:
            return False
        return True

    wait_until(served, 60, what="the CRDs to be served")


def bench(kubeconfig: str, samples: int, campaigns: int) -> list[tuple[str, str]]:
    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    _install_crds(api)
    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    namespace = f"bench-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    os.environ["KUBECONFIG"] = kubeconfig  # kopf's login reads it
    settings = OperatorSettings(
        namespaces=[namespace],
        leader_election=False,
        scheduler_image="registry.invalid/herald/scheduler:bench",
        log_level="WARNING",
        log_json=False,
        kubeconfig=kubeconfig,
    )
    ctx: Context = make_context(settings)
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    logging.getLogger().setLevel(logging.WARNING)
    loop_box: dict[str, Any] = {}

    def operate() -> None:
        async def main() -> None:
            loop_box["loop"] = asyncio.get_running_loop()
            loop_box["stop"] = asyncio.Event()
            await run(settings, loop_box["stop"], ctx)

        asyncio.run(main())

    thread = threading.Thread(target=operate, daemon=True)
    thread.start()
    cronjobs = CronJobWatch(api, namespace)
    rows: list[tuple[str, str]] = []
    try:
        # Let the operator start watching (an empty namespace).
        time.sleep(3)
        # 1. One at a time: apply → CronJob exists.
        latencies = []
        for i in range(samples):
            name = f"lat-{i:03d}"
            started = time.perf_counter()
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, _campaign(name)
            )
            wait_until(
                lambda n=f"campaign-{name}": n in cronjobs.seen,
                60,
                interval=0.005,
                what=f"CronJob of {name}",
            )
            latencies.append(cronjobs.seen[f"campaign-{name}"] - started)
        # 2. Many at once: time until every campaign is Ready and has its CronJob.
        requests_before, throttled_before = ctx.kube.requests, ctx.kube.throttled
        names = [f"scale-{i:04d}" for i in range(campaigns)]
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda n: custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, _campaign(n)
                    ),
                    names,
                )
            )
        applied = time.perf_counter() - started

        def all_ready() -> bool:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            ready = sum(
                1
                for item in items
                if item["metadata"]["name"].startswith("scale-")
                and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (item.get("status") or {}).get("conditions") or []
                )
            )
            return ready == campaigns and all(f"campaign-{n}" in cronjobs.seen for n in names)

        wait_until(all_ready, 900, interval=0.5, what=f"{campaigns} campaigns to be Ready")
        total = time.perf_counter() - started
        failed = sum(
            1
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
                "items"
            ]
            if any(
                c["type"] == "Failed" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions") or []
            )
        )
        rows = [
            ("apply → CronJob exists, p50", f"{statistics.median(latencies) * 1000:.0f} ms"),
            ("apply → CronJob exists, p99", f"{support.percentile(latencies, 0.99) * 1000:.0f} ms"),
            ("apply → CronJob exists, samples", f"{samples}"),
            (f"{campaigns} campaigns created (8 clients)", f"{applied:.1f} s"),
            (f"{campaigns} campaigns all Ready with their CronJob", f"{total:.1f} s"),
            ("reconciles per second", f"{campaigns / total:.0f}"),
            ("operator API requests for them", f"{ctx.kube.requests - requests_before}"),
            ("of which throttled (429)", f"{ctx.kube.throttled - throttled_before}"),
            ("campaigns Failed", f"{failed}"),
            ("error log records", f"{errors.count}"),
        ]
        for message in errors.messages:
            print("error:", message)
    finally:
        cronjobs.stop()
        loop = loop_box.get("loop")
        if loop is not None:
            loop.call_soon_threadsafe(loop_box["stop"].set)
        thread.join(60)
        try:
            core.delete_namespace(namespace, propagation_policy="Background")
        except client.ApiException:
            pass
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--campaigns", type=int, default=500)
    args = parser.parse_args()
    existing = os.environ.get("HERALD_KUBECONFIG")
    plane = None
    if existing:
        kubeconfig = existing
    else:
        plane = start_control_plane(Path(tempfile.mkdtemp(prefix="herald-bench-kube-")))
        kubeconfig = plane.kubeconfig
    try:
        with support.Sampler({}) as sampler:
            rows = bench(kubeconfig, args.latency_samples, args.campaigns)
    finally:
        if plane is not None and plane.process is not None:
            stop_process(plane.process)
    table = Table(
        title=(
            f"Herald operator ({platform.machine()}, Python {platform.python_version()}, "
            f"kopf {kopf.__version__ if hasattr(kopf, '__version__') else ''})"
        )
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    support.append_results(
        "Operator",
        "python -m bench.operator " + " ".join(sys.argv[1:]),
        f"{args.latency_samples} latency samples, {args.campaigns} campaigns; the test control "
        "plane of dev/testenv, the operator in this process (one replica, default settings)",
        ["measure", "value"],
        rows,
        load=sampler.load_text(),
    )


if __name__ == "__main__":
    main()
