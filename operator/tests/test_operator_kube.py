"""The operator against the real control plane (kube-apiserver + controllers), run by
kopf's KopfRunner: resources in, CronJobs and Jobs out, status and Events back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from herald_operator.metrics import REGISTRY
from herald_testing.kube import KubeControlPlane, KubeTools, wait_until

from .kube_helpers import Cluster, campaign_body, running_operator, schedule_body

pytestmark = [pytest.mark.kube, pytest.mark.slow]


@pytest.fixture
def cluster(kube_api: Any, kube_namespace: str) -> Cluster:
    return Cluster(kube_api, kube_namespace)


def _ready(cluster: Cluster, kind: str, name: str, generation: int = 1) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = cluster.status(kind, name)
        ready = cluster.condition(kind, name, "Ready")
        if ready and ready["status"] == "True" and status.get("observedGeneration") == generation:
            return status
        return None

    return wait_until(check, timeout=30, what=f"{kind}/{name} Ready at generation {generation}")


def test_campaign_lifecycle_create_edit_suspend_delete(
    kube_control_plane: KubeControlPlane, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_operator(kube_control_plane, cluster.ns, monkeypatch):
        created = cluster.create(campaign_body("flash-sale"))
        status = _ready(cluster, "NotificationCampaign", "flash-sale")
        assert status["cronJobName"] == "campaign-flash-sale"
        assert status["nextRunTime"].endswith("Z")
        assert (
            cluster.condition("NotificationCampaign", "flash-sale", "Suspended")["status"]
            == "False"
        )
        cronjob = cluster.cronjob("campaign-flash-sale")
        spec = cronjob.spec
        assert (spec.schedule, spec.time_zone, spec.suspend) == ("0 * * * *", "Europe/Paris", False)
        assert spec.concurrency_policy == "Forbid" and spec.starting_deadline_seconds == 300
        [owner] = cronjob.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == (
            "NotificationCampaign",
            created["metadata"]["uid"],
            True,
        )
        assert cronjob.metadata.labels["app.kubernetes.io/managed-by"] == "herald-operator"
        pod = spec.job_template.spec.template.spec
        [container] = pod.containers
        assert container.image == "registry.invalid/herald/scheduler:test"
        assert container.command[:2] == ["herald-scheduler", "fire-campaign"]
        assert container.security_context.read_only_root_filesystem is True
        assert pod.security_context.run_as_non_root is True
        assert container.env_from[0].secret_ref.name == "herald-infra"
        uid = cronjob.metadata.uid

        # Edit the schedule: the same CronJob is updated in place.
        cluster.patch("NotificationCampaign", "flash-sale", {"spec": {"schedule": "*/15 * * * *"}})
        wait_until(
            lambda: cluster.cronjob("campaign-flash-sale").spec.schedule == "*/15 * * * *",
            timeout=30,
            what="the CronJob's new schedule",
        )
        assert cluster.cronjob("campaign-flash-sale").metadata.uid == uid
        _ready(cluster, "NotificationCampaign", "flash-sale", generation=2)

        # Suspend.
        cluster.patch("NotificationCampaign", "flash-sale", {"spec": {"suspend": True}})
        wait_until(
            lambda: cluster.cronjob("campaign-flash-sale").spec.suspend is True,
            timeout=30,
            what="the CronJob to be suspended",
        )
        status = _ready(cluster, "NotificationCampaign", "flash-sale", generation=3)
        suspended = cluster.condition("NotificationCampaign", "flash-sale", "Suspended")
        assert suspended["status"] == "True" and suspended["reason"] == "SuspendedBySpec"
        assert status.get("nextRunTime") is None
        reasons = {e.reason for e in cluster.events("flash-sale")}
        assert {"CronJobCreated", "CronJobUpdated"} <= reasons

        # Delete: the garbage collector takes the CronJob with it.
        cluster.delete("NotificationCampaign", "flash-sale")
        wait_until(
            lambda: cluster.cronjob("campaign-flash-sale") is None,
            timeout=45,
            what="the CronJob to go with its campaign",
        )


def test_run_now_and_job_outcomes_reach_the_status(
    kube_control_plane: KubeControlPlane, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_operator(kube_control_plane, cluster.ns, monkeypatch):
        cluster.create(schedule_body("sweep"))
        _ready(cluster, "Schedule", "sweep")

        cluster.patch(
            "Schedule", "sweep", {"metadata": {"annotations": {"herald.io/run-now": "1"}}}
        )
        [job] = wait_until(lambda: cluster.jobs("sweep"), timeout=30, what="a run-now Job")
        assert job.metadata.name.startswith("schedule-sweep-r")
        assert job.spec.template.spec.containers[0].command == [
            "herald-scheduler",
            "sweep-orders",
            "--batch-size",
            "50",
        ]
        wait_until(
            lambda: (
                "herald.io/run-now"
                not in (cluster.get("Schedule", "sweep")["metadata"].get("annotations") or {})
            ),
            timeout=30,
            what="the run-now annotation to be cleared",
        )
        wait_until(
            lambda: (
                (cluster.status("Schedule", "sweep").get("lastJob") or {}).get("outcome")
                == "Running"
            ),
            timeout=30,
            what="lastJob Running",
        )

        cluster.finish_pod(job.metadata.name, exit_code=0)
        wait_until(
            lambda: (
                (cluster.status("Schedule", "sweep").get("lastJob") or {}).get("outcome")
                == "Succeeded"
            ),
            timeout=45,
            what="lastJob Succeeded",
        )
        status = cluster.status("Schedule", "sweep")
        assert status["lastJob"]["name"] == job.metadata.name and status["lastRunTime"]
        assert cluster.condition("Schedule", "sweep", "LastRunSucceeded")["status"] == "True"

        # spec.requestedRunAt requests a run too; this one fails.
        requested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.patch("Schedule", "sweep", {"spec": {"requestedRunAt": requested}})
        second = wait_until(
            lambda: [j for j in cluster.jobs("sweep") if j.metadata.name != job.metadata.name],
            timeout=30,
            what="a Job for requestedRunAt",
        )[0]
        wait_until(
            lambda: cluster.status("Schedule", "sweep").get("lastRequestedRunAt") == requested,
            timeout=30,
            what="lastRequestedRunAt",
        )
        cluster.finish_pod(second.metadata.name, exit_code=1)
        wait_until(
            lambda: (
                (cluster.status("Schedule", "sweep").get("lastJob") or {}).get("outcome")
                == "Failed"
            ),
            timeout=45,
            what="lastJob Failed",
        )
        failed = cluster.condition("Schedule", "sweep", "LastRunSucceeded")
        assert failed["status"] == "False" and failed["reason"] == "JobFailed"
        # Events are posted in the background: the last one may follow the status.
        wanted = {"RunRequested", "JobStarted", "JobSucceeded", "JobFailed"}
        wait_until(
            lambda: wanted <= {e.reason for e in cluster.events("sweep")},
            timeout=30,
            what=f"the events {sorted(wanted)}",
        )


def test_dry_run_campaign_shows_its_preview(
    kube_control_plane: KubeControlPlane, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_operator(kube_control_plane, cluster.ns, monkeypatch):
        cluster.create(campaign_body("preview", dryRun=True, audience={"categories": ["Books"]}))
        _ready(cluster, "NotificationCampaign", "preview")
        cluster.patch(
            "NotificationCampaign",
            "preview",
            {"metadata": {"annotations": {"herald.io/run-now": "go"}}},
        )
        [job] = wait_until(lambda: cluster.jobs("preview"), timeout=30, what="the preview Job")
        command = job.spec.template.spec.containers[0].command
        assert "--preview" in command and "--run-id" in command
        samples = [{"userId": "u1", "title": "Hi Ann", "body": "Sale in Books"}]
        cluster.finish_pod(
            job.metadata.name,
            message={
                "campaign": "preview",
                "run_id": job.metadata.name,
                "dry_run": True,
                "fired": False,
                "audience_size": 42,
                "suppressed": 3,
                "samples": samples,
            },
        )
        status = wait_until(
            lambda: (s := cluster.status("NotificationCampaign", "preview")).get("samples") and s,
            timeout=45,
            what="the preview in the status",
        )
        assert status["audienceSize"] == 42 and status["suppressed"] == 3
        assert status["samples"] == samples
        assert status["lastRunId"] == job.metadata.name


def test_specs_that_cannot_work_fail_without_crash_looping(
    kube_control_plane: KubeControlPlane, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reconciles(kind: str, outcome: str) -> float:
        labels = {"kind": kind, "outcome": outcome}
        return REGISTRY.get_sample_value("herald_operator_reconciles_total", labels) or 0.0

    before = {
        (k, o): reconciles(k, o)
        for k in ("NotificationCampaign", "Schedule")
        for o in ("success", "failed")
    }
    with running_operator(
        kube_control_plane, cluster.ns, monkeypatch, RECOMMENDATIONS_IMAGE=None
    ) as runner:
        cluster.create(campaign_body("spaceships", audience={"categories": ["Spaceships"]}))
        cluster.create(schedule_body("batch", task="recommendation-batch", parameters={}))
        cluster.create(campaign_body("typo", template={"title": "Hi {coupon}", "body": "b"}))

        def failed(kind: str, name: str) -> dict[str, Any] | None:
            cond = cluster.condition(kind, name, "Failed")
            return cond if cond and cond["status"] == "True" else None

        segment = wait_until(
            lambda: failed("NotificationCampaign", "spaceships"), timeout=30, what="Failed"
        )
        assert segment["reason"] == "UnknownSegment" and "'Spaceships'" in segment["message"]
        image = wait_until(lambda: failed("Schedule", "batch"), timeout=30, what="Failed")
        assert image["reason"] == "ImageNotSet"
        assert "HERALD_OPERATOR_RECOMMENDATIONS_IMAGE" in image["message"]
        typo = wait_until(lambda: failed("NotificationCampaign", "typo"), timeout=30, what="Failed")
        assert typo["reason"] == "InvalidSpec" and "{coupon}" in typo["message"]
        assert cluster.condition("NotificationCampaign", "typo", "Ready")["status"] == "False"
        for name in ("campaign-spaceships", "schedule-batch", "campaign-typo"):
            assert cluster.cronjob(name) is None
        warnings = {e.reason for e in cluster.events("spaceships") if e.type == "Warning"}
        assert "UnknownSegment" in warnings

        # Fixing the spec reconciles it.
        cluster.patch(
            "NotificationCampaign", "spaceships", {"spec": {"audience": {"categories": ["Books"]}}}
        )
        _ready(cluster, "NotificationCampaign", "spaceships", generation=2)
        assert (
            cluster.condition("NotificationCampaign", "spaceships", "Failed")["status"] == "False"
        )
        assert cluster.cronjob("campaign-spaceships") is not None
    # herald_operator_reconciles_total counted each outcome (the operator runs in this
    # process): two failed campaigns, a failed schedule, then the fixed campaign.
    campaigns_failed = reconciles("NotificationCampaign", "failed")
    assert campaigns_failed - before["NotificationCampaign", "failed"] >= 2
    assert reconciles("Schedule", "failed") - before["Schedule", "failed"] >= 1
    assert (
        reconciles("NotificationCampaign", "success") - before["NotificationCampaign", "success"]
        >= 1
    )
    # A failed spec is a status, not a handler error retried forever.
    assert "Handler 'campaign_changed' failed" not in runner.output


def test_one_shot_campaign_gets_a_job(
    kube_control_plane: KubeControlPlane, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with running_operator(kube_control_plane, cluster.ns, monkeypatch):
        cluster.create(campaign_body("launch", schedule=None, runAt=soon))
        status = _ready(cluster, "NotificationCampaign", "launch")
        assert "cronJobName" not in status or status["cronJobName"] is None
        [job] = wait_until(lambda: cluster.jobs("launch"), timeout=40, what="the one-shot Job")
        assert job.metadata.owner_references[0].kind == "NotificationCampaign"
        assert job.spec.ttl_seconds_after_finished == 86400
        wait_until(
            lambda: (
                cluster.status("NotificationCampaign", "launch").get("jobName") == job.metadata.name
            ),
            timeout=30,
            what="status.jobName",
        )


def test_cronjob_runs_are_followed_in_the_status(
    kube_control_plane: KubeControlPlane, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_operator(kube_control_plane, cluster.ns, monkeypatch):
        cluster.create(schedule_body("tick", schedule="* * * * *"))
        _ready(cluster, "Schedule", "tick")
        # Pretend the last run was minutes ago: the CronJob controller starts the
        # missed run at once instead of at the next minute.
        earlier = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.batch.patch_namespaced_cron_job_status(
            "schedule-tick", cluster.ns, {"status": {"lastScheduleTime": earlier}}
        )
        [job] = wait_until(lambda: cluster.jobs("tick"), timeout=75, what="a Job of the CronJob")
        assert job.metadata.owner_references[0].kind == "CronJob"
        status = wait_until(
            lambda: (s := cluster.status("Schedule", "tick")).get("lastJob") and s,
            timeout=30,
            what="the CronJob's Job in the status",
        )
        assert status["lastJob"]["name"] == job.metadata.name
        assert status["lastJob"]["outcome"] == "Running"


def test_invalid_resources_are_refused_by_the_api_server(
    kube_control_plane: KubeControlPlane, kube_api: Any, kube_tools: KubeTools, kube_namespace: str
) -> None:
    import yaml

    bad = campaign_body("bad", type="order_update", schedule="every hour")
    proc = kube_tools.run(
        "kubectl",
        "apply",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=yaml.safe_dump(bad),
        kubeconfig=kube_control_plane.kubeconfig,
        check=False,
    )
    assert proc.returncode != 0
    assert 'spec.type: Unsupported value: "order_update"' in proc.stderr
    assert "spec.schedule: Invalid value" in proc.stderr
    both = campaign_body("both", runAt="2030-01-01T09:00:00Z")
    proc = kube_tools.run(
        "kubectl",
        "apply",
        "-n",
        kube_namespace,
        "-f",
        "-",
        input=yaml.safe_dump(both),
        kubeconfig=kube_control_plane.kubeconfig,
        check=False,
    )
    assert proc.returncode != 0 and "oneOf" in proc.stderr
