"""Resources in other namespaces than the operator's, against the real control plane:
their CronJobs and Jobs run in the operator's namespace (HERALD_OPERATOR_JOB_NAMESPACE),
where the Job environment is; they are deleted with their resource (no owner reference
crosses namespaces); a missing Secret is JobEnvMissing, not a Job that never starts."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from herald_testing.kube import KubeControlPlane, wait_until

from .kube_helpers import (
    Cluster,
    campaign_body,
    create_job_env,
    create_namespace,
    running_operator,
    schedule_body,
)

pytestmark = [pytest.mark.kube, pytest.mark.slow]

JOB_ENV = {
    "JOB_ENV_FROM_SECRETS": "herald-infra",
    "JOB_ENV_FROM_CONFIG_MAPS": "herald-jobs-env",
    "SERVICE_ACCOUNT": "herald-jobs",
}


@pytest.fixture
def herald(kube_api: Any, kube_namespace: str) -> Cluster:
    """The operator's namespace: where the Jobs run."""
    return Cluster(kube_api, kube_namespace)


@pytest.fixture
def shop(kube_api: Any) -> Iterator[Cluster]:
    """A tenant namespace with NotificationCampaigns and Schedules, and nothing else."""
    from kubernetes import client

    name = create_namespace(kube_api, f"t-shop-{secrets.token_hex(3)}")
    try:
        yield Cluster(kube_api, name)
    finally:
        client.CoreV1Api(kube_api).delete_namespace(name, propagation_policy="Background")


def _condition(cluster: Cluster, kind: str, name: str, type_: str, status: str) -> dict[str, Any]:
    return wait_until(
        lambda: (c := cluster.condition(kind, name, type_)) and c["status"] == status and c,
        timeout=60,
        what=f"{kind}/{name} {type_}={status}",
    )


def _cronjobs(cluster: Cluster) -> list[Any]:
    return list(cluster.batch.list_namespaced_cron_job(cluster.ns).items)


def test_campaign_in_another_namespace_runs_in_the_operators(
    kube_control_plane: KubeControlPlane,
    herald: Cluster,
    shop: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_operator(
        kube_control_plane,
        herald.ns,
        monkeypatch,
        also_watch=(shop.ns,),
        JOB_NAMESPACE=herald.ns,
        **JOB_ENV,
    ):
        created = shop.create(campaign_body("flash-sale"))
        ready = _condition(shop, "NotificationCampaign", "flash-sale", "Ready", "True")
        name = shop.status("NotificationCampaign", "flash-sale")["cronJobName"]
        assert f"{herald.ns}/{name}" in ready["message"]
        cronjob = herald.cronjob(name)
        assert cronjob is not None and _cronjobs(shop) == []
        meta = cronjob.metadata
        assert not meta.owner_references  # none can cross namespaces
        assert meta.labels["herald.io/owner-namespace"] == shop.ns
        assert meta.labels["herald.io/owner-uid"] == created["metadata"]["uid"]
        # Everything the pods reference exists where they run.
        pod = cronjob.spec.job_template.spec.template.spec
        core = herald.core
        core.read_namespaced_service_account(pod.service_account_name, herald.ns)
        for source in pod.containers[0].env_from:
            if source.secret_ref:
                core.read_namespaced_secret(source.secret_ref.name, herald.ns)
            else:
                core.read_namespaced_config_map(source.config_map_ref.name, herald.ns)
        assert len(pod.containers[0].env_from) == 2
        assert "CronJobCreated" in {e.reason for e in shop.events("flash-sale")}

        # A requested run: its Job in the operator's namespace, its outcome in the status.
        shop.patch(
            "NotificationCampaign",
            "flash-sale",
            {"metadata": {"annotations": {"herald.io/run-now": "1"}}},
        )
        [job] = wait_until(lambda: herald.jobs("flash-sale"), timeout=30, what="the run Job")
        herald.finish_pod(
            job.metadata.name, message={"run_id": job.metadata.name, "sent": 7, "audience_size": 9}
        )
        status = wait_until(
            lambda: (s := shop.status("NotificationCampaign", "flash-sale")).get("sent") == 7 and s,
            timeout=45,
            what="the run's counts in the campaign's status",
        )
        assert status["lastJob"]["outcome"] == "Succeeded"
        wait_until(
            lambda: (
                {"RunRequested", "JobSucceeded"} <= {e.reason for e in shop.events("flash-sale")}
            ),
            timeout=30,
            what="the run's Events on the campaign",
        )

        # Deleted: its CronJob and its Job go with it.
        shop.delete("NotificationCampaign", "flash-sale")
        wait_until(
            lambda: herald.cronjob(name) is None and not herald.jobs("flash-sale"),
            timeout=45,
            what="the campaign's CronJob and Job to be deleted",
        )


def test_missing_secret_is_job_env_missing_until_it_exists(
    kube_control_plane: KubeControlPlane,
    herald: Cluster,
    shop: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_operator(
        kube_control_plane,
        herald.ns,
        monkeypatch,
        also_watch=(shop.ns,),
        job_env=False,
        JOB_NAMESPACE=herald.ns,
        JOB_ENV_CHECK_SECONDS="0",
        JOB_ENV_RETRY_SECONDS="2",
    ):
        shop.create(schedule_body("sweep"))
        failed = _condition(shop, "Schedule", "sweep", "Failed", "True")
        assert failed["reason"] == "JobEnvMissing"
        assert f"Secret herald-infra not found in namespace {herald.ns}" in failed["message"]
        ready = shop.condition("Schedule", "sweep", "Ready")
        assert ready is not None and ready["status"] == "False"
        assert ready["reason"] == "JobEnvMissing"
        warnings = [e for e in shop.events("sweep") if e.reason == "JobEnvMissing"]
        assert warnings and warnings[0].type == "Warning"
        assert "herald-infra" in warnings[0].message
        shop.patch("Schedule", "sweep", {"metadata": {"annotations": {"herald.io/run-now": "1"}}})
        wait_until(
            lambda: "RunNotStarted" in {e.reason for e in shop.events("sweep")},
            timeout=30,
            what="the run-now request refused",
        )
        assert _cronjobs(herald) == [] and herald.jobs("sweep") == []

        # The Secret appears: the Schedule recovers without a change of its own.
        create_job_env(herald.core.api_client, herald.ns, secrets=("herald-infra",))
        _condition(shop, "Schedule", "sweep", "Ready", "True")
        [cronjob] = _cronjobs(herald)
        assert cronjob.spec.suspend is False

        # It goes again, and the CronJob fires (as its controller would): the Job,
        # which could never start, is deleted; JobEnvMissing, the CronJob suspended.
        herald.core.delete_namespaced_secret("herald-infra", herald.ns)
        template = cronjob.spec.job_template
        herald.batch.create_namespaced_job(
            herald.ns,
            {
                "metadata": {
                    "name": f"{cronjob.metadata.name}-1",
                    "labels": template.metadata.labels,
                },
                "spec": herald.core.api_client.sanitize_for_serialization(template.spec),
            },
        )
        failed = _condition(shop, "Schedule", "sweep", "Failed", "True")
        assert failed["reason"] == "JobEnvMissing"
        wait_until(
            lambda: (
                herald.cronjob(cronjob.metadata.name).spec.suspend is True
                and not herald.jobs("sweep")
            ),
            timeout=30,
            what="the CronJob suspended and its Job deleted",
        )


def test_children_of_resources_deleted_while_no_operator_ran_are_swept(
    kube_control_plane: KubeControlPlane,
    herald: Cluster,
    shop: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env: dict[str, Any] = {"also_watch": (shop.ns,), "JOB_NAMESPACE": herald.ns}
    with running_operator(kube_control_plane, herald.ns, monkeypatch, **env):
        shop.create(schedule_body("sweep"))
        shop.create(schedule_body("kept"))
        _condition(shop, "Schedule", "sweep", "Ready", "True")
        _condition(shop, "Schedule", "kept", "Ready", "True")
        names = {s: shop.status("Schedule", s)["cronJobName"] for s in ("sweep", "kept")}
    shop.delete("Schedule", "sweep")  # nobody watching
    wait_until(
        lambda: (
            not [
                s
                for s in shop.custom.list_namespaced_custom_object(
                    "herald.io", "v1alpha1", shop.ns, "schedules"
                )["items"]
                if s["metadata"]["name"] == "sweep"
            ]
        ),
        timeout=30,
        what="the Schedule to be gone",
    )
    assert herald.cronjob(names["sweep"]) is not None
    with running_operator(kube_control_plane, herald.ns, monkeypatch, **env):
        wait_until(
            lambda: herald.cronjob(names["sweep"]) is None,
            timeout=45,
            what="the orphaned CronJob swept",
        )
        assert herald.cronjob(names["kept"]) is not None
