"""charts/herald against the real test control plane: every rendered object of every
value set accepted by ``kubectl apply --dry-run=server``; a real ``helm install`` and
``helm upgrade`` keep the generated secrets; the operator's RBAC allows exactly what it
needs (``kubectl auth can-i`` as its ServiceAccount)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_testing.kube import KubeControlPlane, KubeTools, wait_until

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.chart.conftest import CHART, all_sets, helm_template  # noqa: E402

pytestmark = pytest.mark.kube

# Minimal copies of the Prometheus Operator CRDs (kube-prometheus-stack installs the real
# ones): the group, kinds and versions the chart uses, fields left unchecked.
MONITORING_CRDS = [
    ("servicemonitors", "ServiceMonitor"),
    ("prometheusrules", "PrometheusRule"),
    ("podmonitors", "PodMonitor"),
]


def _monitoring_crd(plural: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def kubectl(
    tools: KubeTools, cp: KubeControlPlane, *args: str, input: str | None = None, check: bool = True
):
    return tools.run(
        "kubectl", *args, kubeconfig=cp.kubeconfig, input=input, check=check, timeout=120
    )


@pytest.fixture(scope="module")
def crds_installed(kube_control_plane: KubeControlPlane, kube_tools: KubeTools) -> None:
    """The chart's CRDs and the monitoring CRDs, installed for real and served."""
    docs = [_monitoring_crd(p, k) for p, k in MONITORING_CRDS]
    docs += [yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    kubectl(
        kube_tools,
        kube_control_plane,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=yaml.safe_dump_all(docs),
    )
    for doc in docs:
        name = doc["metadata"]["name"]
        kubectl(
            kube_tools,
            kube_control_plane,
            "wait",
            "--for=condition=Established",
            f"crd/{name}",
            "--timeout=60s",
        )

    def served() -> bool:
        out = kubectl(
            kube_tools,
            kube_control_plane,
            "api-resources",
            "--api-group=monitoring.coreos.com",
            "-o",
            "name",
            check=False,
        ).stdout
        return "servicemonitors" in out and "prometheusrules" in out

    wait_until(served, timeout=30, what="the monitoring resources to be served")


SETS = all_sets()


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_rendered_object_is_accepted_by_the_api_server(
    name: str,
    crds_installed: None,
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
) -> None:
    files, sets = SETS[name]
    rendered = helm_template(kube_tools, files, sets, namespace=kube_namespace).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    out = kubectl(
        kube_tools,
        kube_control_plane,
        "apply",
        "--dry-run=server",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=rendered,
    ).stdout
    accepted = [line for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), out
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "NetworkPolicy", "Role", "ClusterRole", "Secret"} <= kinds
    if name == "monitoring":
        assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds


def test_install_and_upgrade_keep_generated_secrets(
    crds_installed: None,
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
) -> None:
    release = "keep"

    def helm(*args: str) -> str:
        return kube_tools.run(
            "helm",
            *args,
            "--namespace",
            kube_namespace,
            kubeconfig=kube_control_plane.kubeconfig,
            timeout=180,
        ).stdout

    def secret(name: str) -> dict[str, str]:
        out = kubectl(
            kube_tools,
            kube_control_plane,
            "-n",
            kube_namespace,
            "get",
            "secret",
            name,
            "-o",
            "json",
        ).stdout
        return {k: base64.b64decode(v).decode() for k, v in json.loads(out)["data"].items()}

    helm("install", release, str(CHART), "--skip-crds")
    jwt, infra = secret(f"{release}-herald-jwt"), secret(f"{release}-herald-infra")
    unsubscribe = secret(f"{release}-herald-unsubscribe")
    assert len(unsubscribe["unsubscribe-secret"]) == 32
    assert "PRIVATE KEY-----" in jwt["private-key.pem"]
    broker = secret(f"{release}-herald-rabbitmq-config")["rabbitmq.conf"]
    assert f"default_pass = {infra['rabbitmq-password']}" in broker

    helm("upgrade", release, str(CHART), "--skip-crds", "--set", "logLevel=DEBUG")
    assert secret(f"{release}-herald-jwt") == jwt
    assert secret(f"{release}-herald-infra") == infra
    assert secret(f"{release}-herald-unsubscribe") == unsubscribe  # mailed links keep working
    assert secret(f"{release}-herald-rabbitmq-config")["rabbitmq.conf"] == broker
    notes = helm("status", release)
    assert "/graphql" in notes

    # The operator's ServiceAccount may do what the operator does, and nothing more.
    sa = f"system:serviceaccount:{kube_namespace}:{release}-herald-operator"

    def can(verb: str, resource: str, namespace: str | None = kube_namespace) -> bool:
        args = ["auth", "can-i", verb, resource, "--as", sa]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        return kubectl(kube_tools, kube_control_plane, *args, check=False).stdout.strip() == "yes"

    for verb, resource in [
        ("watch", "notificationcampaigns.herald.io"),
        ("patch", "schedules.herald.io/status"),
        ("create", "cronjobs.batch"),
        ("delete", "jobs.batch"),
        ("list", "pods"),
        ("create", "events"),
        ("update", "leases.coordination.k8s.io"),
    ]:
        assert can(verb, resource), f"operator cannot {verb} {resource}"
    assert can("list", "customresourcedefinitions.apiextensions.k8s.io", None)
    for verb, resource in [
        ("get", "secrets"),
        ("create", "pods"),
        ("create", "deployments.apps"),
        ("delete", "notificationcampaigns.herald.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
    ]:
        assert not can(verb, resource), f"operator may {verb} {resource}"
    assert not can("list", "cronjobs.batch", "kube-system"), (
        "namespaced operator reaches other namespaces"
    )
    # The other components' ServiceAccounts have no API rights at all.
    other = f"system:serviceaccount:{kube_namespace}:{release}-herald-gateway"
    out = kubectl(
        kube_tools,
        kube_control_plane,
        "auth",
        "can-i",
        "list",
        "pods",
        "--as",
        other,
        "-n",
        kube_namespace,
        check=False,
    ).stdout.strip()
    assert out == "no"

    helm("uninstall", release)
    # The signing key outlives the release (helm.sh/resource-policy: keep).
    assert secret(f"{release}-herald-jwt") == jwt
