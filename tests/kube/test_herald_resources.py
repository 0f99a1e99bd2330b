"""Herald's CRDs and example resources on the real API server: the examples apply, the
printer columns show what a platform user looks for, ``kubectl explain`` documents
every field, and the schema's defaults are the ones the local runner applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_common.resources import from_object
from herald_testing.kube import KubeControlPlane, KubeTools, wait_until

pytestmark = pytest.mark.kube

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "examples" / "campaigns", REPO / "examples" / "schedules"]


@pytest.fixture(scope="module")
def crds_installed(kube_control_plane: KubeControlPlane, kube_tools: KubeTools) -> None:
    kube_tools.run(
        "kubectl", "apply", "-f", str(REPO / "crds"), kubeconfig=kube_control_plane.kubeconfig
    )
    for name in ("notificationcampaigns.herald.io", "schedules.herald.io"):
        kube_tools.run(
            "kubectl",
            "wait",
            "--for=condition=Established",
            f"crd/{name}",
            "--timeout=30s",
            kubeconfig=kube_control_plane.kubeconfig,
        )

    def served() -> bool:
        proc = kube_tools.run(
            "kubectl",
            "get",
            "ncamp,hsched",
            "-A",
            kubeconfig=kube_control_plane.kubeconfig,
            check=False,
        )
        return proc.returncode == 0

    wait_until(served, timeout=30, what="the Herald resources to be served")


def _kubectl(plane: KubeControlPlane, tools: KubeTools, *args: str, **kw: Any) -> str:
    return tools.run("kubectl", *args, kubeconfig=plane.kubeconfig, **kw).stdout


def test_examples_apply_and_read_back_as_the_local_runner_loads_them(
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
    crds_installed: None,
) -> None:
    for folder in EXAMPLES:
        _kubectl(kube_control_plane, kube_tools, "apply", "-n", kube_namespace, "-f", str(folder))
    out = _kubectl(
        kube_control_plane, kube_tools, "get", "ncamp,hsched", "-n", kube_namespace, "-o", "yaml"
    )
    items = yaml.safe_load(out)["items"]
    names = sorted(i["metadata"]["name"] for i in items)
    assert names == ["digest", "flash-sale", "order-sweep", "recommendation-batch", "weekly-picks"]
    # What the server stored (with its defaults) is what the shared loader accepts.
    for item in items:
        resource = from_object(item)
        assert resource.namespace == kube_namespace
        assert resource.spec.time_zone == item["spec"]["timeZone"]
    weekly = next(i for i in items if i["metadata"]["name"] == "weekly-picks")
    assert weekly["spec"]["suspend"] is False and weekly["spec"]["dryRun"] is False
    assert weekly["spec"]["audience"] == {"categories": [], "userIds": []}


def test_printer_columns_show_type_schedule_audience_last_run_ready(
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_namespace: str,
    crds_installed: None,
) -> None:
    for folder in EXAMPLES:
        _kubectl(kube_control_plane, kube_tools, "apply", "-n", kube_namespace, "-f", str(folder))
    header = _kubectl(
        kube_control_plane, kube_tools, "get", "notificationcampaigns", "-n", kube_namespace
    ).splitlines()[0]
    for column in ("TYPE", "SCHEDULE", "SUSPEND", "AUDIENCE", "LAST-RUN", "READY", "AGE"):
        assert column in header.split(), header
    header = _kubectl(
        kube_control_plane, kube_tools, "get", "schedules.herald.io", "-n", kube_namespace
    ).splitlines()[0]
    for column in ("TASK", "SCHEDULE", "OUTCOME", "LAST-RUN", "READY"):
        assert column in header.split(), header


def test_kubectl_explain_documents_the_spec(
    kube_control_plane: KubeControlPlane, kube_tools: KubeTools, crds_installed: None
) -> None:
    def explain() -> str:
        proc = kube_tools.run(
            "kubectl",
            "explain",
            "notificationcampaign.spec",
            "--recursive=false",
            kubeconfig=kube_control_plane.kubeconfig,
            check=False,
        )
        return proc.stdout if proc.returncode == 0 else ""

    text = wait_until(explain, timeout=60, what="the CRD's schema in the OpenAPI document")
    lines = text.splitlines()
    for field in (
        "audience",
        "dryRun",
        "runAt",
        "schedule",
        "suspend",
        "template",
        "timeZone",
        "type",
    ):
        [at] = [i for i, line in enumerate(lines) if line.startswith(f"  {field}\t<")]
        # Each field is followed by its description (after an enum line, if any).
        following = lines[at + 2] if lines[at + 1].startswith("  enum:") else lines[at + 1]
        assert following.startswith("    ") and following.strip(), (field, text)
    assert "IANA time zone" in text and "Exactly one of" in text
    template = _kubectl(
        kube_control_plane, kube_tools, "explain", "notificationcampaign.spec.template.title"
    )
    assert "Notification title" in template
