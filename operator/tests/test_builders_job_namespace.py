"""Children in the Jobs' namespace (HERALD_OPERATOR_JOB_NAMESPACE) and the Job
environment they need there (JobEnvMissing)."""

from __future__ import annotations

import pytest
from herald_operator.builders.common import child_name
from herald_operator.builders.cronjob import build_cronjob
from herald_operator.builders.env import job_env_missing, job_env_refs
from herald_operator.builders.job import build_one_shot_job, build_run_job
from herald_operator.config import OperatorSettings

from .conftest import campaign, schedule

OWNER_LABELS = {
    "herald.io/owner-kind": "NotificationCampaign",
    "herald.io/owner-name": "flash-sale",
    "herald.io/owner-namespace": "shop",
    "herald.io/owner-uid": "uid-1",
}


@pytest.fixture
def central(settings: OperatorSettings) -> OperatorSettings:
    return settings.model_copy(update={"job_namespace": "herald"})


def test_names_away_from_the_resource_carry_its_namespace() -> None:
    name = child_name("NotificationCampaign", "flash-sale", "shop")
    assert name.startswith("campaign-shop-flash-sale-") and len(name) <= 52
    # Namespace and name are not simply joined: these two stay apart.
    assert child_name("Schedule", "a-b", "shop") != child_name("Schedule", "b", "shop-a")
    assert name != child_name("NotificationCampaign", "shop-flash-sale")
    long = child_name("Schedule", "x" * 200, "tenant-" + "y" * 50)
    assert len(long) <= 52 and not long.rstrip("0123456789abcdef").endswith("--")
    assert long != child_name("Schedule", "x" * 199, "tenant-" + "y" * 50)


def test_cronjob_in_the_jobs_namespace_is_labelled_not_owned(central: OperatorSettings) -> None:
    cronjob = build_cronjob(campaign(), central)
    meta = cronjob["metadata"]
    assert meta["namespace"] == "herald"
    assert meta["name"] == child_name("NotificationCampaign", "flash-sale", "shop")
    # Kubernetes refuses owner references across namespaces.
    assert "ownerReferences" not in meta
    assert OWNER_LABELS.items() <= meta["labels"].items()
    template = cronjob["spec"]["jobTemplate"]
    assert OWNER_LABELS.items() <= template["metadata"]["labels"].items()
    pod = template["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "herald"
    assert pod["spec"]["serviceAccountName"] == "herald-jobs"
    assert pod["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "herald-infra"}}]


def test_resources_of_the_jobs_namespace_keep_owner_references(
    central: OperatorSettings,
) -> None:
    meta = build_cronjob(campaign(), central.model_copy(update={"job_namespace": "shop"}))[
        "metadata"
    ]
    assert (meta["name"], meta["namespace"]) == ("campaign-flash-sale", "shop")
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert "herald.io/owner-namespace" not in meta["labels"]


def test_jobs_go_to_the_jobs_namespace(central: OperatorSettings) -> None:
    one_shot = build_one_shot_job(campaign(schedule=None, runAt="2030-01-01T09:00:00Z"), central)
    run = build_run_job(schedule(), central, request="run-now=1")
    for job in (one_shot, run):
        assert job["metadata"]["namespace"] == "herald"
        assert "ownerReferences" not in job["metadata"]
        assert job["metadata"]["labels"]["herald.io/owner-namespace"] == "shop"
    assert run["metadata"]["name"].startswith("schedule-shop-order-sweep-")
    same = build_run_job(
        schedule(), central.model_copy(update={"job_namespace": None}), request="run-now=1"
    )
    assert same["metadata"]["name"] != run["metadata"]["name"]
    assert same["metadata"]["namespace"] == "shop"


def test_job_env_refs_are_what_the_pods_reference(settings: OperatorSettings) -> None:
    wide = settings.model_copy(
        update={"job_env_from_secrets": ["infra", "mail"], "job_env_from_config_maps": ["env"]}
    )
    assert job_env_refs(wide) == [
        ("Secret", "infra"),
        ("Secret", "mail"),
        ("ConfigMap", "env"),
        ("ServiceAccount", "herald-jobs"),
    ]
    assert job_env_refs(OperatorSettings()) == []


def test_job_env_missing_names_what_where_and_which_setting() -> None:
    assert job_env_missing("herald", []) is None
    error = job_env_missing("herald", [("Secret", "infra")], [("ServiceAccount", "jobs")])
    assert error is not None and error.reason == "JobEnvMissing"
    assert "Secret infra not found in namespace herald" in error.message
    assert "ServiceAccount jobs in namespace herald not readable by the operator" in error.message
    assert "HERALD_OPERATOR_JOB_ENV_FROM_SECRETS" in error.message
    assert "HERALD_OPERATOR_SERVICE_ACCOUNT" in error.message
    assert "no Job starts" in error.message


def test_watched_namespaces_include_the_jobs_namespace() -> None:
    listed = OperatorSettings(namespaces=["shop", "staging"], job_namespace="herald")
    assert listed.watched_namespaces == ["shop", "staging", "herald"]
    assert OperatorSettings(namespaces=["herald"], job_namespace="herald").watched_namespaces == [
        "herald"
    ]
    assert OperatorSettings(job_namespace="herald").watched_namespaces == []  # all of them
    assert listed.jobs_namespace_of("shop") == "herald"
    assert OperatorSettings().jobs_namespace_of("shop") == "shop"
