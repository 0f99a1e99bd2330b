"""Fixtures of the cluster tests: the single-node Kubernetes of dev/cluster and Herald
installed into it by its chart.

The ``node_cluster`` fixture uses a running cluster (``make cluster-up``) or starts one
with ``dev/cluster/cluster.sh up`` and stops it again at the end of the session. A
machine that cannot run a node at all (no root, no cgroups, ...; ``cluster.sh check``
exits 3) skips these tests with the reason; any other set-up failure fails them, with
the script's output.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "dev" / "cluster" / "cluster.sh"
RUN = ROOT / ".run" / "cluster"
KUBECONFIG = RUN / "kubeconfig"
KUBECTL = ROOT / ".run" / "bin" / "kubectl"
HELM = ROOT / ".run" / "bin" / "helm"
CHART = ROOT / "charts" / "herald"
VALUES = [ROOT / "dev" / "cluster" / "values-cluster.yaml", RUN / "values-images.yaml"]
UP_TIMEOUT = float(os.environ.get("HERALD_CLUSTER_UP_TIMEOUT", "2400"))


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _cluster(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class NodeCluster:
    """The running cluster: kubectl and helm against it."""

    kubeconfig: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        tool: Path,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        proc = subprocess.run(
            [str(tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            input=stdin,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"{tool.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        return proc

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(KUBECTL, *args, **kw)

    def helm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(HELM, *args, **kw)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def _running() -> bool:
    if not KUBECONFIG.exists():
        return False
    status = _cluster("status", timeout=60).stdout
    return all(
        f"{name}: running" in status
        for name in ("containerd", "control-plane", "kubelet", "kube-proxy", "kube-router")
    )


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[NodeCluster]:
    check = _cluster("check", timeout=60)
    if check.returncode == 3:
        pytest.skip(f"this machine cannot run the node: {check.stderr.strip()}")
    # Always "up": idempotent, and it rebuilds and loads the images whose inputs changed.
    started = not _running()
    try:
        up = _cluster("up", timeout=UP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"dev/cluster/cluster.sh up did not finish in {UP_TIMEOUT:.0f}s: {exc}")
    if up.returncode != 0:
        if started:
            _cluster("down", timeout=300)
        pytest.fail(
            "dev/cluster/cluster.sh up failed (logs in .run/cluster/logs/):\n"
            + (up.stdout + up.stderr)[-4000:]
        )
    cluster = NodeCluster(kubeconfig=KUBECONFIG)
    try:
        yield cluster
    finally:
        if started and os.environ.get("HERALD_CLUSTER_KEEP") != "1":
            _cluster("down", timeout=300)


@dataclass
class Release:
    """Herald installed by the chart into its own namespace."""

    cluster: NodeCluster
    name: str
    namespace: str
    ingress_namespace: str

    @property
    def graphql_url(self) -> str:
        svc = self.cluster.get("service", "-n", self.namespace, f"{self.name}-gateway")
        port = next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "http")
        return f"http://{svc['spec']['clusterIP']}:{port}/graphql"

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )
        body = r.json()
        assert not body.get("errors"), body
        return body["data"]

    def values_args(self, *extra: str) -> list[str]:
        args = []
        for v in VALUES:
            args += ["-f", str(v)]
        # The test's "ingress controller" namespace (there is no ingress controller here).
        args += [
            "--set-json",
            "networkPolicy.ingressController.namespaceSelector="
            + json.dumps({"matchLabels": {"kubernetes.io/metadata.name": self.ingress_namespace}}),
        ]
        return args + list(extra)


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster) -> Iterator[Release]:
    suffix = secrets.token_hex(3)
    rel = Release(node_cluster, "herald", f"herald-t{suffix}", f"ingress-t{suffix}")
    _cluster("volumes", timeout=120)
    node_cluster.kubectl("create", "namespace", rel.ingress_namespace)
    node_cluster.helm(
        "install",
        rel.name,
        str(CHART),
        "-n",
        rel.namespace,
        "--create-namespace",
        *rel.values_args(),
        "--wait",
        "--timeout",
        "8m",
        timeout=600,
    )
    try:
        yield rel
    finally:
        node_cluster.helm(
            "uninstall",
            rel.name,
            "-n",
            rel.namespace,
            "--wait",
            "--timeout",
            "3m",
            check=False,
            timeout=300,
        )
        node_cluster.kubectl(
            "delete", "namespace", rel.namespace, rel.ingress_namespace, "--wait=false", check=False
        )
