"""helm and kubectl from dev/tools.sh work against the test control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from herald_testing.kube import KubeControlPlane, KubeTools

pytestmark = pytest.mark.kube

CHART = Path(__file__).parent / "fixtures" / "chart"


def test_helm_and_kubectl_versions(
    kube_control_plane: KubeControlPlane, kube_tools: KubeTools
) -> None:
    assert kube_tools.run("helm", "version", "--short").stdout.startswith("v")
    versions = json.loads(
        kube_tools.run(
            "kubectl", "version", "-o", "json", kubeconfig=kube_control_plane.kubeconfig
        ).stdout
    )
    assert versions["clientVersion"]["major"] == "1"
    assert versions["serverVersion"]["gitVersion"].startswith("v1.")


def test_helm_template_then_server_dry_run(
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
) -> None:
    rendered = kube_tools.run(
        "helm",
        "template",
        "demo",
        str(CHART),
        "--namespace",
        kube_namespace,
        "--set",
        "replicas=2",
        "--set",
        "greeting=hi there",
        kubeconfig=kube_control_plane.kubeconfig,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Service"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2

    out = kube_tools.run(
        "kubectl",
        "apply",
        "--dry-run=server",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=rendered,
        kubeconfig=kube_control_plane.kubeconfig,
    ).stdout
    assert "configmap/demo-config created (server dry run)" in out
    assert "service/demo created (server dry run)" in out
    assert "deployment.apps/demo created (server dry run)" in out


def test_helm_lint(kube_tools: KubeTools) -> None:
    kube_tools.run("helm", "lint", str(CHART))
