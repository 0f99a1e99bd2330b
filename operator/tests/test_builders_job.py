"""Jobs the operator starts itself: one-shot campaigns and requested runs."""

from __future__ import annotations

from herald_operator.builders.job import build_one_shot_job, build_run_job
from herald_operator.config import OperatorSettings

from .conftest import campaign, schedule


def test_one_shot_job_is_named_after_its_instant(settings: OperatorSettings) -> None:
    one_shot = campaign(schedule=None, runAt="2030-01-01T09:00:00Z")
    job = build_one_shot_job(one_shot, settings)
    assert job["kind"] == "Job"
    assert job["metadata"]["name"].startswith("campaign-flash-sale-")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "NotificationCampaign"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    later = build_one_shot_job(campaign(schedule=None, runAt="2030-01-02T09:00:00Z"), settings)
    assert later["metadata"]["name"] != job["metadata"]["name"]
    assert build_one_shot_job(one_shot, settings) == job


def test_requested_runs(settings: OperatorSettings) -> None:
    job = build_run_job(schedule(), settings, request="run-now=1@2030-01-01T00:00:00Z")
    meta = job["metadata"]
    assert meta["name"].startswith("schedule-order-sweep-r")
    assert meta["annotations"] == {"herald.io/run-request": "run-now=1@2030-01-01T00:00:00Z"}
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][1] == "sweep-orders"
    run = build_run_job(campaign(), settings, request="run-now=x@t")
    command = run["spec"]["template"]["spec"]["containers"][0]["command"]
    # A requested campaign run has its own run id: it is not a scheduled slot.
    assert command[-2:] == ["--run-id", run["metadata"]["name"]]
