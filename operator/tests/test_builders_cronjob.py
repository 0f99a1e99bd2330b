"""The CronJob builder."""

from __future__ import annotations

import pytest
from herald_operator.builders.cronjob import build_cronjob
from herald_operator.config import OperatorSettings

from .conftest import campaign, schedule


def test_campaign_cronjob(settings: OperatorSettings) -> None:
    cronjob = build_cronjob(campaign(), settings)
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob"
    meta = cronjob["metadata"]
    assert (meta["name"], meta["namespace"]) == ("campaign-flash-sale", "shop")
    assert meta["ownerReferences"][0]["uid"] == "uid-1"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "herald-operator"
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 * * * *" and spec["timeZone"] == "Europe/Paris"
    assert spec["suspend"] is False
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 300
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    template = spec["jobTemplate"]
    # Jobs the CronJob creates carry the labels the operator watches them by.
    assert template["metadata"]["labels"]["herald.io/owner-kind"] == "NotificationCampaign"
    job = template["spec"]
    assert job["backoffLimit"] == 2 and job["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in job  # the history limits keep them
    assert job["template"]["spec"]["containers"][0]["command"][1] == "fire-campaign"


def test_suspend_and_settings_flow_into_the_cronjob(settings: OperatorSettings) -> None:
    tuned = settings.model_copy(
        update={"starting_deadline_seconds": 60, "successful_jobs_history": 1, "backoff_limit": 0}
    )
    spec = build_cronjob(schedule(suspend=True, schedule="@hourly"), tuned)["spec"]
    assert spec["suspend"] is True and spec["schedule"] == "@hourly"
    assert spec["startingDeadlineSeconds"] == 60 and spec["successfulJobsHistoryLimit"] == 1
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0


def test_one_shot_campaigns_get_no_cronjob(settings: OperatorSettings) -> None:
    with pytest.raises(ValueError, match="one-shot"):
        build_cronjob(campaign(schedule=None, runAt="2030-01-01T09:00:00Z"), settings)


def test_same_spec_same_cronjob(settings: OperatorSettings) -> None:
    # Re-applying an unchanged resource sends an identical object (no needless update).
    assert build_cronjob(campaign(), settings) == build_cronjob(campaign(), settings)
