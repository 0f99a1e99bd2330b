"""kube-controller-manager runs in the test control plane: Jobs get Pods, CronJobs get
Jobs, the garbage collector removes dependents and namespaces are emptied and deleted.

There is no kubelet, so Pods stay Pending; only what the controllers do is checked.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from herald_testing.kube import KubeControlPlane, wait_until

pytestmark = pytest.mark.kube


@pytest.fixture(autouse=True)
def _needs_controllers(kube_control_plane: KubeControlPlane) -> None:
    if not kube_control_plane.controllers:
        pytest.skip("the control plane runs without kube-controller-manager")


def job_body(name: str, parallelism: int = 1, completions: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "parallelism": parallelism,
            "completions": completions,
            "backoffLimit": 0,
            "template": pod_template(),
        },
    }


def pod_template() -> dict[str, Any]:
    return {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.invalid/herald/noop:1"}],
        }
    }


def pods_owned_by(core: Any, namespace: str, uid: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace).items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(ref.uid == uid for ref in p.metadata.owner_references or [])
    ]


def gone(read: Any, *args: Any) -> bool:
    from kubernetes import client

    try:
        read(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_job_controller_creates_pods_and_gc_removes_them(
    kube_api: Any, kube_namespace: str
) -> None:
    from kubernetes import client

    batch: Any = client.BatchV1Api(kube_api)
    core: Any = client.CoreV1Api(kube_api)
    job = batch.create_namespaced_job(
        kube_namespace, job_body("work", parallelism=2, completions=2)
    )

    def two_pods() -> list[Any]:
        pods = pods_owned_by(core, kube_namespace, job.metadata.uid)
        return pods if len(pods) == 2 else []

    pods = wait_until(
        two_pods,
        timeout=30,
        what="the Job controller to create 2 pods",
    )
    for pod in pods:
        assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "work"
        assert pod.status.phase == "Pending"  # nothing runs them
    wait_until(
        lambda: (batch.read_namespaced_job_status("work", kube_namespace).status.active or 0) == 2,
        timeout=30,
        what="the Job status to count 2 active pods",
    )

    # Deleting the owner removes its children (garbage collector + Job controller).
    batch.delete_namespaced_job("work", kube_namespace, propagation_policy="Background")
    wait_until(
        lambda: not core.list_namespaced_pod(kube_namespace).items,
        timeout=45,
        what="the Job's pods to be garbage collected",
    )


def test_cronjob_controller_creates_a_job(kube_api: Any, kube_namespace: str) -> None:
    from kubernetes import client

    batch: Any = client.BatchV1Api(kube_api)
    cronjob = batch.create_namespaced_cron_job(
        kube_namespace,
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "tick"},
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {"spec": {"backoffLimit": 0, "template": pod_template()}},
            },
        },
    )
    # Pretend the last run was a few minutes ago: the controller then starts the
    # missed run at once instead of at the next minute boundary.
    earlier = (datetime.now(UTC) - timedelta(minutes=3)).replace(microsecond=0)
    batch.patch_namespaced_cron_job_status(
        "tick",
        kube_namespace,
        {"status": {"lastScheduleTime": earlier.strftime("%Y-%m-%dT%H:%M:%SZ")}},
    )

    def owned_jobs() -> list[Any]:
        return [
            j
            for j in batch.list_namespaced_job(kube_namespace).items
            if any(r.uid == cronjob.metadata.uid for r in j.metadata.owner_references or [])
        ]

    jobs = wait_until(owned_jobs, timeout=75, what="the CronJob controller to create a Job")
    assert jobs[0].metadata.name.startswith("tick-")
    status = batch.read_namespaced_cron_job_status("tick", kube_namespace).status
    assert status.last_schedule_time is not None


def test_gc_deletes_dependents_of_deleted_owners(kube_api: Any, kube_namespace: str) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(kube_api)

    def configmap(name: str, owner: Any = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if owner is not None:
            meta["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner.metadata.name,
                    "uid": owner.metadata.uid,
                }
            ]
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}

    # 1. An owner deleted in the background takes its dependent with it.
    owner = core.create_namespaced_config_map(kube_namespace, configmap("owner"))
    core.create_namespaced_config_map(kube_namespace, configmap("child", owner))
    core.delete_namespaced_config_map("owner", kube_namespace, propagation_policy="Background")

    # 2. A dependent whose owner is already gone is collected too.
    ghost = core.create_namespaced_config_map(kube_namespace, configmap("ghost"))
    core.delete_namespaced_config_map("ghost", kube_namespace)
    core.create_namespaced_config_map(kube_namespace, configmap("orphan", ghost))

    # 3. A dependent of a live owner stays.
    keeper = core.create_namespaced_config_map(kube_namespace, configmap("keeper"))
    core.create_namespaced_config_map(kube_namespace, configmap("kept", keeper))

    for name in ("child", "orphan"):
        wait_until(
            lambda: gone(core.read_namespaced_config_map, name, kube_namespace),  # noqa: B023
            timeout=45,
            what=f"ConfigMap {name} to be garbage collected",
        )
    assert core.read_namespaced_config_map("kept", kube_namespace).metadata.name == "kept"


def test_namespace_deletion_empties_and_removes_it(kube_api: Any) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(kube_api)
    name = f"t-del-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    core.create_namespaced_secret(name, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})

    core.delete_namespace(name)
    assert core.read_namespace(name).status.phase == "Terminating"
    wait_until(
        lambda: gone(core.read_namespace, name),
        timeout=60,
        what=f"namespace {name} to be deleted by the namespace controller",
    )
