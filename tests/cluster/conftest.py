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
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from herald_testing.kube import selects

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "dev" / "cluster" / "cluster.sh"
RUN = ROOT / ".run" / "cluster"
KUBECONFIG = RUN / "kubeconfig"
KUBECTL = ROOT / ".run" / "bin" / "kubectl"
HELM = ROOT / ".run" / "bin" / "helm"
CHART = ROOT / "charts" / "herald"
VALUES = [ROOT / "dev" / "cluster" / "values-cluster.yaml", RUN / "values-images.yaml"]
UP_TIMEOUT = float(os.environ.get("HERALD_CLUSTER_UP_TIMEOUT", "2400"))
# helm install --wait: on a cold, loaded 2-core machine (the rest of the suite beside it)
# six Python services start at once; generous, because a stuck install is diagnosed by
# the report below, not by a short timeout.
INSTALL_TIMEOUT = os.environ.get("HERALD_CLUSTER_INSTALL_TIMEOUT", "15m")


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


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({path}: {exc})"


def diagnose(cluster: NodeCluster, namespace: str) -> str:
    """What a failed install or readiness wait needs to be understood from the CI log
    alone: disk, node conditions, pod states, events, describe and logs of every pod not
    Ready, and the tails of the kubelet's and containerd's logs."""
    parts: list[str] = []

    def section(title: str, text: str) -> None:
        parts.append(f"==== {title}\n{text.rstrip()}")

    def kc(*args: str, limit: int = 6000) -> str:
        try:
            proc = cluster.kubectl(*args, check=False, timeout=60)
        except subprocess.TimeoutExpired:
            return f"(kubectl {' '.join(args)} timed out)"
        return (proc.stdout + proc.stderr)[-limit:]

    df = shutil.which("df")
    if df:
        dirs = [
            str(p)
            for p in (ROOT, RUN, Path("/var/lib/containers"), Path("/var/cache"))
            if p.exists()
        ]
        section("df -h", subprocess.run([df, "-h", *dirs], capture_output=True, text=True).stdout)
    section(
        "node conditions",
        kc(
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{': '}{range .status.conditions[*]}"
            "{.type}={.status} ({.reason}: {.message}){'; '}{end}{' taints='}{.spec.taints}"
            "{' allocatable='}{.status.allocatable}{'\\n'}{end}",
        ),
    )
    section("pods", kc("get", "pods", "-n", namespace, "-o", "wide"))
    section(
        "events",
        kc("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", limit=8000),
    )
    section("node events", kc("get", "events", "-n", "default", "--sort-by=.lastTimestamp"))
    try:
        pods = cluster.get("pods", "-n", namespace)["items"]
    except Exception as exc:  # noqa: BLE001 - reported
        pods = []
        section("pods (json)", repr(exc))
    for pod in pods:
        name = pod["metadata"]["name"]
        conds = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conds.get("Ready") == "True" or pod["status"].get("phase") == "Succeeded":
            continue
        described = kc("describe", "pod", "-n", namespace, name, limit=100_000)
        events = described[described.find("Events:") :] if "Events:" in described else described
        section(
            f"pod {name}: phase {pod['status'].get('phase')} reason {pod['status'].get('reason')}"
            f" {pod['status'].get('message', '')}",
            events[-2500:],
        )
        section(
            f"logs {name}",
            kc("logs", "-n", namespace, name, "--all-containers", "--tail=30", limit=3000),
        )
        section(
            f"previous logs {name}",
            kc(
                "logs",
                "-n",
                namespace,
                name,
                "--all-containers",
                "--previous",
                "--tail=30",
                limit=3000,
            ),
        )
    for proc in ("kubelet", "containerd", "kube-router"):
        section(f"tail of .run/cluster/logs/{proc}.log", _tail(RUN / "logs" / f"{proc}.log", 40))
    evictions = [
        line
        for line in _tail(RUN / "logs" / "kubelet.log", 20000).splitlines()
        if re.search(
            r"evict|DiskPressure|MemoryPressure|image_gc|garbage collect|unused images|Removing image|NodeNotReady|PLEG",
            line,
            re.I,
        )
    ]
    section("kubelet eviction / image GC lines", "\n".join(evictions[-30:]) or "(none)")
    return "\n".join(parts)


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

    def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The GraphQL answer as JSON; a non-JSON answer fails with status, headers, body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=30,
        )
        try:
            body = r.json()
        except ValueError:
            raise AssertionError(
                f"non-JSON answer from {self.graphql_url}: HTTP {r.status_code}"
                f" headers {dict(r.headers)} body {r.text[:2000]!r}"
            ) from None
        if not isinstance(body, dict):
            raise AssertionError(f"unexpected GraphQL answer (HTTP {r.status_code}): {body!r}")
        return body

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        body = self.post(query, variables, token)
        assert not body.get("errors"), body
        return dict(body["data"])

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


LOGIN_PROBE = (
    'mutation($e: String!) { login(email: $e, password: "not-the-password-1") { accessToken } }'
)


def wait_for_graphql(rel: Release, timeout: float = 300) -> None:
    """Until the gateway answers through its Service and reaches the users service.

    A ClusterIP that kube-proxy has not programmed yet is not refused on these VMs: the
    packet leaves by the default route and the machine's egress proxy answers (HTTP 404,
    empty body). So: a failed login of an unknown email, until the users service itself
    says UNAUTHENTICATED; every other answer is kept for the failure message. A fresh
    email each time, so the per-email login limit is never reached.
    """
    seen: list[str] = []

    def check() -> bool:
        try:
            body = rel.post(LOGIN_PROBE, {"e": f"nobody-{secrets.token_hex(4)}@example.com"})
        except (AssertionError, httpx.HTTPError) as exc:
            seen.append(f"{type(exc).__name__}: {exc}"[:600])
            return False
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        if codes == ["UNAUTHENTICATED"]:
            return True
        seen.append(json.dumps(body)[:600])
        return False

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            distinct = list(dict.fromkeys(seen))
            pytest.fail(
                f"GraphQL at {rel.graphql_url} did not answer a failed login with"
                f" UNAUTHENTICATED within {timeout:.0f}s; answers seen ({len(seen)}):\n"
                + "\n".join(distinct[-10:])
                + "\n"
                + diagnose(rel.cluster, rel.namespace)
            )
        time.sleep(3)


def policy_gaps(cluster: NodeCluster, namespace: str, rules: str) -> list[str]:
    """What kube-router's iptables rules (``iptables-save`` text) do not cover yet: every
    running pod of the namespace needs its pod firewall chain (KUBE-POD-FW-*, jumped to
    for its address) and in it a jump for every NetworkPolicy that selects the pod."""
    pods = [
        p
        for p in cluster.get("pods", "-n", namespace)["items"]
        if p["status"].get("phase") == "Running" and p["status"].get("podIP")
    ]
    policies = cluster.get("networkpolicies", "-n", namespace)["items"]
    gaps: list[str] = []
    if not pods:
        return ["no running pod"]
    for pod in pods:
        name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
        labels = pod["metadata"].get("labels") or {}
        m = re.search(
            rf"-d {re.escape(ip)}(?:/32)? .*name:{re.escape(name)} namespace: ?{re.escape(namespace)}"
            rf".* -j (KUBE-POD-FW-\S+)|name:{re.escape(name)} namespace: ?{re.escape(namespace)}"
            rf".*-d {re.escape(ip)}(?:/32)? .*-j (KUBE-POD-FW-\S+)",
            rules,
        )
        if not m:
            gaps.append(f"{name} ({ip}): no pod firewall chain")
            continue
        chain = m.group(1) or m.group(2)
        chain_rules = [line for line in rules.splitlines() if line.startswith(f"-A {chain} ")]
        for pol in policies:
            pname = pol["metadata"]["name"]
            if not selects(pol["spec"].get("podSelector") or {}, labels):
                continue
            if not any(
                f'policy {pname}"' in line or f"policy {pname} " in line for line in chain_rules
            ):
                gaps.append(f"{name}: {chain} does not run policy {pname} yet")
    return gaps


def wait_for_policies(rel: Release, timeout: float = 180) -> None:
    """Until kube-router enforces the release's NetworkPolicies for all its pods.

    kube-router syncs after pods and policies appear; a probe before that goes through.
    Read the node's ``iptables-save`` (the tests run on the node) until every pod of the
    release has its firewall chain with the policies selecting it.
    """
    last: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        rules = subprocess.run(
            ["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True
        ).stdout
        last = policy_gaps(rel.cluster, rel.namespace, rules)
        if not last:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"kube-router did not apply the NetworkPolicies of {rel.namespace} within"
                f" {timeout:.0f}s: " + "; ".join(last) + "\n" + diagnose(rel.cluster, rel.namespace)
            )
        time.sleep(2)


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster) -> Iterator[Release]:
    suffix = secrets.token_hex(3)
    rel = Release(node_cluster, "herald", f"herald-t{suffix}", f"ingress-t{suffix}")
    _cluster("volumes", timeout=120)
    node_cluster.kubectl("create", "namespace", rel.ingress_namespace)
    try:
        install = node_cluster.helm(
            "install",
            rel.name,
            str(CHART),
            "-n",
            rel.namespace,
            "--create-namespace",
            *rel.values_args(),
            "--wait",
            "--timeout",
            INSTALL_TIMEOUT,
            check=False,
            timeout=3600,
        )
        if install.returncode != 0:
            pytest.fail(
                f"helm install (--wait --timeout {INSTALL_TIMEOUT}) failed ({install.returncode}):\n"
                + install.stderr[-3000:]
                + "\n"
                + diagnose(node_cluster, rel.namespace)
            )
        wait_for_graphql(rel)
        wait_for_policies(rel)
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
