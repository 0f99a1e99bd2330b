"""The operator under the chart's RBAC, against the real control plane: the rendered
ServiceAccount, Roles and ClusterRole applied, ``kubectl auth can-i`` as that identity,
then the operator itself run with that ServiceAccount's token and the chart's settings
handling a NotificationCampaign in a tenant namespace (its CronJob and Jobs in the
release namespace, where the Job ConfigMap, Secret and ServiceAccount are)."""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_testing.kube import KubeControlPlane, KubeTools, wait_until

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.chart.conftest import CHART, RELEASE, helm_template  # noqa: E402

# A refused call reads "Forbidden" or carries a bare 403 status ("code": 403,
# "403, message=..."); resource names (t-shop-8403a3) and log timestamps
# (07:44:47,403) must not read as one.
DENIED = re.compile(r"Forbidden|(?<![\w,.:-])403(?![\w-])")

pytestmark = [pytest.mark.kube, pytest.mark.slow]

FULLNAME = f"{RELEASE}-herald"
OPERATOR_SA = f"{FULLNAME}-operator"
# What the operator needs from a release: its identity and RBAC, and the Job environment.
KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
JOB_ENV = {("ConfigMap", f"{FULLNAME}-jobs-env"), ("Secret", f"{FULLNAME}-infra")}


def _kubectl(tools: KubeTools, kubeconfig: str, *args: str, input: str | None = None) -> Any:
    return tools.run("kubectl", *args, kubeconfig=kubeconfig, input=input, check=False, timeout=120)


@pytest.fixture
def tenant(kube_control_plane: KubeControlPlane) -> Iterator[str]:
    from kubernetes import client

    name = f"t-shop-{secrets.token_hex(3)}"
    with kube_control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(
            {"metadata": {"name": name, "labels": {"herald.test/namespace": "true"}}}
        )
        try:
            yield name
        finally:
            core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def release(
    kube_control_plane: KubeControlPlane, kube_tools: KubeTools, kube_namespace: str, tenant: str
) -> Iterator[list[dict[str, Any]]]:
    """The chart's operator identity, RBAC and Job environment, applied for real (and
    the CRDs, served)."""
    crds = _kubectl(
        kube_tools,
        kube_control_plane.kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        *[a for f in sorted((CHART / "crds").glob("*.yaml")) for a in ("-f", str(f))],
    )
    assert crds.returncode == 0, crds.stderr
    for crd in ("notificationcampaigns.herald.io", "schedules.herald.io"):
        _kubectl(
            kube_tools,
            kube_control_plane.kubeconfig,
            "wait",
            "--for=condition=Established",
            f"crd/{crd}",
            "--timeout=60s",
        )
    out = helm_template(
        kube_tools, sets=[f"operator.watchNamespaces={{{tenant}}}"], namespace=kube_namespace
    ).stdout
    docs = [
        d
        for d in yaml.safe_load_all(out)
        if d and (d["kind"] in KINDS or (d["kind"], d["metadata"]["name"]) in JOB_ENV)
    ]
    applied = _kubectl(
        kube_tools,
        kube_control_plane.kubeconfig,
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump_all(docs),
    )
    assert applied.returncode == 0, applied.stderr
    try:
        yield docs
    finally:
        cluster = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
        _kubectl(
            kube_tools,
            kube_control_plane.kubeconfig,
            "delete",
            "--ignore-not-found",
            "-f",
            "-",
            input=yaml.safe_dump_all(cluster),
        )


def test_chart_rbac_allows_exactly_what_the_operator_needs(
    release: list[dict[str, Any]],
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
    tenant: str,
) -> None:
    sa = f"system:serviceaccount:{kube_namespace}:{OPERATOR_SA}"

    def can(verb: str, resource: str, namespace: str) -> bool:
        out = _kubectl(
            kube_tools,
            kube_control_plane.kubeconfig,
            "auth",
            "can-i",
            verb,
            resource,
            "--as",
            sa,
            "-n",
            namespace,
        )
        return str(out.stdout).strip() == "yes"

    allowed = [
        # The tenant namespace: the resources, their status, Events, following Jobs.
        ("watch", "notificationcampaigns.herald.io", tenant),
        ("patch", "schedules.herald.io", tenant),
        ("patch", "notificationcampaigns.herald.io/status", tenant),
        ("create", "events", tenant),
        ("watch", "jobs.batch", tenant),
        # The release namespace: CronJobs and Jobs, their pods, the Job environment by name.
        ("create", "cronjobs.batch", kube_namespace),
        ("patch", "cronjobs.batch", kube_namespace),
        ("delete", "jobs.batch", kube_namespace),
        ("list", "pods", kube_namespace),
        ("get", f"secret/{FULLNAME}-infra", kube_namespace),
        ("get", f"configmap/{FULLNAME}-jobs-env", kube_namespace),
        ("get", f"serviceaccount/{FULLNAME}-jobs", kube_namespace),
        ("update", "leases.coordination.k8s.io", kube_namespace),
        ("watch", "namespaces", kube_namespace),
    ]
    denied = [
        ("create", "cronjobs.batch", tenant),
        ("create", "jobs.batch", tenant),
        ("get", "secrets", tenant),
        ("list", "pods", tenant),
        ("create", "secrets", tenant),
        ("get", "configmaps", tenant),
        ("list", "secrets", kube_namespace),
        ("get", f"secret/{FULLNAME}-jwt", kube_namespace),
        ("get", "configmaps", kube_namespace),
        ("create", "pods", kube_namespace),
        ("delete", "notificationcampaigns.herald.io", tenant),
        ("watch", "notificationcampaigns.herald.io", "kube-system"),
        ("list", "jobs.batch", "kube-system"),
        ("delete", "namespaces", tenant),
    ]
    assert [a for a in allowed if not can(*a)] == []
    assert [d for d in denied if can(*d)] == []


def _token_kubeconfig(plane: KubeControlPlane, tools: KubeTools, namespace: str, path: Path) -> str:
    """A kubeconfig of the operator's ServiceAccount (a token from the TokenRequest API)."""
    token = _kubectl(
        tools, plane.kubeconfig, "create", "token", OPERATOR_SA, "-n", namespace, "--duration=1h"
    )
    assert token.returncode == 0, token.stderr
    admin = yaml.safe_load(Path(plane.kubeconfig).read_text())
    context = admin["contexts"][0]["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "operator", "user": {"token": token.stdout.strip()}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_operator_runs_under_the_chart_identity(
    release: list[dict[str, Any]],
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kopf.testing import KopfRunner
    from kubernetes import client

    # The operator's settings as the chart's Deployment gives them (the downward API's
    # values filled in; no probe port, kopf run directly: no Lease).
    out = helm_template(
        kube_tools, sets=[f"operator.watchNamespaces={{{tenant}}}"], namespace=kube_namespace
    ).stdout
    deployment = next(
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == OPERATOR_SA
    )
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"].startswith("HERALD_OPERATOR_")
    }
    env.update(
        HERALD_OPERATOR_JOB_NAMESPACE=kube_namespace,
        HERALD_OPERATOR_LEASE_NAMESPACE=kube_namespace,
        HERALD_OPERATOR_IDENTITY="operator-0",
        HERALD_OPERATOR_LOG_JSON="false",
    )
    env.pop("HERALD_OPERATOR_HEALTH_PORT")
    for key, value in env.items():
        assert value is not None, key
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(
        "KUBECONFIG",
        _token_kubeconfig(kube_control_plane, kube_tools, kube_namespace, tmp_path / "kubeconfig"),
    )
    namespaces = env["HERALD_OPERATOR_NAMESPACES"].split(",")
    assert namespaces == [kube_namespace, tenant]
    args = ["run", "--standalone", "-m", "herald_operator.main"]
    for namespace in namespaces:
        args += ["--namespace", namespace]
    campaign = {
        "apiVersion": "herald.io/v1alpha1",
        "kind": "NotificationCampaign",
        "metadata": {"name": "flash-sale"},
        "spec": {
            "type": "promotion",
            "schedule": "0 * * * *",
            "template": {"title": "Hi {first_name}", "body": "Sale"},
        },
    }
    with kube_control_plane.api_client() as api, KopfRunner(args, timeout=60) as runner:
        custom: Any = client.CustomObjectsApi(api)
        batch: Any = client.BatchV1Api(api)

        def status() -> dict[str, Any]:
            got = custom.get_namespaced_custom_object(
                "herald.io", "v1alpha1", tenant, "notificationcampaigns", "flash-sale"
            )
            return dict(got.get("status") or {})

        def ready() -> dict[str, Any] | None:
            s = status()
            conditions = {c["type"]: c for c in s.get("conditions") or []}
            return s if conditions.get("Ready", {}).get("status") == "True" else None

        custom.create_namespaced_custom_object(
            "herald.io", "v1alpha1", tenant, "notificationcampaigns", campaign
        )
        done = wait_until(ready, timeout=60, what="the campaign Ready under the chart's RBAC")
        cronjob = batch.read_namespaced_cron_job(done["cronJobName"], kube_namespace)
        pod = cronjob.spec.job_template.spec.template.spec
        assert pod.service_account_name == f"{FULLNAME}-jobs"
        refs = {(s.secret_ref or s.config_map_ref).name for s in pod.containers[0].env_from}
        assert refs == {f"{FULLNAME}-infra", f"{FULLNAME}-jobs-env"}
        assert batch.list_namespaced_cron_job(tenant).items == []
        custom.patch_namespaced_custom_object(
            "herald.io",
            "v1alpha1",
            tenant,
            "notificationcampaigns",
            "flash-sale",
            {"metadata": {"annotations": {"herald.io/run-now": "1"}}},
        )
        selector = "herald.io/owner-name=flash-sale"
        wait_until(
            lambda: batch.list_namespaced_job(kube_namespace, label_selector=selector).items,
            timeout=30,
            what="the run Job in the release namespace",
        )
        custom.delete_namespaced_custom_object(
            "herald.io", "v1alpha1", tenant, "notificationcampaigns", "flash-sale"
        )
        wait_until(
            lambda: (
                not batch.list_namespaced_cron_job(kube_namespace).items
                and not batch.list_namespaced_job(kube_namespace, label_selector=selector).items
            ),
            timeout=45,
            what="the campaign's CronJob and Job deleted with it",
        )
    assert runner.exception is None, runner.output
    assert not DENIED.search(runner.output), runner.output
