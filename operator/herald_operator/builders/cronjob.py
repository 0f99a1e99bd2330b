"""The CronJob of a scheduled campaign or a Schedule."""

from __future__ import annotations

from typing import Any

from herald_common.resources import NotificationCampaign, Resource

from herald_operator.builders.common import (
    child_metadata,
    job_spec,
    resource_child_name,
    resource_labels,
)
from herald_operator.config import OperatorSettings


def build_cronjob(resource: Resource, settings: OperatorSettings) -> dict[str, Any]:
    """The CronJob running ``resource`` on its schedule, in its time zone.

    ``concurrencyPolicy: Forbid`` (a run never overlaps the previous one), history
    limits and a starting deadline from the settings; ``suspend`` follows the spec.
    Raises :class:`~herald_operator.builders.common.SpecError` when the resource cannot
    run (no image, unknown segment, ...).
    """
    spec = resource.spec
    if isinstance(resource, NotificationCampaign) and not spec.schedule:
        raise ValueError(f"{resource.ref} is a one-shot campaign: it gets a Job, not a CronJob")
    assert spec.schedule is not None
    name = resource_child_name(resource, settings)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": child_metadata(resource, name, settings),
        "spec": {
            "schedule": spec.schedule,
            "timeZone": spec.time_zone,
            "suspend": spec.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": settings.starting_deadline_seconds,
            "successfulJobsHistoryLimit": settings.successful_jobs_history,
            "failedJobsHistoryLimit": settings.failed_jobs_history,
            "jobTemplate": {
                "metadata": {"labels": resource_labels(resource, settings)},
                "spec": job_spec(resource, settings),
            },
        },
    }
