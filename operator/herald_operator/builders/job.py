"""Jobs the operator starts itself: a one-shot campaign, and requested runs."""

from __future__ import annotations

from typing import Any

from herald_common.resources import NotificationCampaign, Resource

from herald_operator.builders.common import (
    child_metadata,
    digest,
    foreign_namespace,
    job_spec,
    resource_child_name,
    run_job_name,
)
from herald_operator.config import OperatorSettings
from herald_operator.constants import RUN_REQUEST_ANNOTATION


def build_one_shot_job(
    campaign: NotificationCampaign, settings: OperatorSettings
) -> dict[str, Any]:
    """The Job of a one-shot campaign (``spec.runAt``), started when it is due.

    Named after the instant, so changing ``runAt`` makes a new run and re-applying the
    same one is a no-op; removed ``job_ttl_seconds`` after it finished.
    """
    run_at = campaign.spec.run_at
    if run_at is None:
        raise ValueError(f"{campaign.ref} has no runAt")
    name = f"{resource_child_name(campaign, settings)}-{digest(run_at.isoformat())}"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(campaign, name, settings),
        "spec": job_spec(campaign, settings, ttl=True),
    }


def build_run_job(
    resource: Resource, settings: OperatorSettings, *, request: str
) -> dict[str, Any]:
    """A Job that runs ``resource`` once now, for one run request.

    ``request`` is the request's value (the run-now annotation's or
    ``spec.requestedRunAt``): the same request always names the same Job, so a request
    handled twice starts one run. A campaign run gets its own run id.
    """
    name = run_job_name(
        resource.kind, resource.name, request, foreign_namespace(resource, settings)
    )
    run_id = name if isinstance(resource, NotificationCampaign) else None
    metadata = child_metadata(resource, name, settings)
    metadata["annotations"] = {RUN_REQUEST_ANNOTATION: request}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": job_spec(resource, settings, run_id=run_id, ttl=True),
    }
