"""Job outcomes → the status of the resource that owns the Job.

Every Job the operator's children start (CronJob runs, one-shot and requested runs)
carries the ``herald.io/owner-kind`` and ``herald.io/owner-name`` labels. On each
change of such a Job, the owner's ``status.lastJob``, ``lastRunTime``, ``nextRunTime``
and ``LastRunSucceeded`` condition follow it; when a campaign Job finished, the result
its pod wrote to the termination log (run id, audience size, sent, suppressed, and for
a dry run the rendered samples) is copied too. An Event marks each start and end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald_common.resources.cron import next_fire
from kubernetes.client.exceptions import ApiException

from herald_operator.builders import status as st
from herald_operator.constants import (
    JOB_FAILED,
    LABEL_OWNER_KIND,
    LABEL_OWNER_NAME,
    LABEL_OWNER_NAMESPACE,
    RUNNING,
    SUCCEEDED,
)
from herald_operator.context import Context
from herald_operator.environment import job_env_problem
from herald_operator.reconcile import reconcile_now

ATTEMPTS = 4


def _next_run(resource: Mapping[str, Any], ctx: Context) -> Any:
    spec = resource.get("spec") or {}
    if spec.get("suspend") or not spec.get("schedule"):
        return None
    try:
        return next_fire(spec["schedule"], spec.get("timeZone") or "UTC", ctx.clock())
    except ValueError:
        return None


def _unchanged(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in new.items() if k != "conditions") and [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in new["conditions"]
    ] == [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in current.get("conditions") or []
    ]


def job_changed(job: Mapping[str, Any], ctx: Context) -> dict[str, Any] | None:
    """Write the outcome of ``job`` into its owner's status; the status written, or
    None when there was nothing to write."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    kind, owner = labels.get(LABEL_OWNER_KIND), labels.get(LABEL_OWNER_NAME)
    if kind not in ("NotificationCampaign", "Schedule") or not owner:
        return None
    # The owner is in the Job's namespace, or where the label says (JOB_NAMESPACE).
    namespace = labels.get(LABEL_OWNER_NAMESPACE) or meta["namespace"]
    outcome = st.job_outcome(job)
    if outcome == RUNNING and _cannot_start(job, kind, namespace, owner, ctx):
        return None
    result = None
    if outcome != RUNNING and kind == "NotificationCampaign":
        message = ctx.kube.termination_message(meta["namespace"], meta["name"])
        result = st.termination_result(message)
    for _ in range(ATTEMPTS):
        resource = ctx.kube.get_resource(kind, namespace, owner)
        if resource is None:
            return None  # the owner is gone; the garbage collector takes the Job
        current = resource.get("status") or {}
        new = st.run_status(
            current,
            job,
            result=result,
            now=ctx.clock(),
            generation=resource["metadata"].get("generation"),
            next_run=_next_run(resource, ctx),
        )
        if new is None or _unchanged(current, new):
            return None
        try:
            ctx.kube.patch_status(
                kind,
                namespace,
                owner,
                new,
                resource_version=resource["metadata"]["resourceVersion"],
            )
        except ApiException as exc:
            if exc.status == 409:
                continue  # written in between: read again
            raise
        _announce(resource, current.get("lastJob") or {}, new["lastJob"], result, ctx)
        return new
    return None


def _cannot_start(
    job: Mapping[str, Any], kind: str, namespace: str, owner: str, ctx: Context
) -> bool:
    """A Job started (by its CronJob) after its environment went: its pod would wait
    for it until the deadline. The owner gets ``JobEnvMissing`` (its CronJob is
    suspended) and the Job is deleted; True when that happened."""
    meta = job["metadata"]
    if (job.get("status") or {}).get("ready") or job_env_problem(meta["namespace"], ctx) is None:
        return False  # a pod that runs has what it needs
    resource = ctx.kube.get_resource(kind, namespace, owner)
    if resource is not None:
        reconcile_now(resource, ctx)
    ctx.kube.delete("Job", meta["namespace"], meta["name"])
    return True


def _announce(
    resource: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    ctx: Context,
) -> None:
    if (before.get("name"), before.get("outcome")) == (after.get("name"), after.get("outcome")):
        return
    name, outcome = after["name"], after["outcome"]
    if outcome == RUNNING:
        ctx.event(resource, "Normal", "JobStarted", f"Job {name} started")
    elif outcome == SUCCEEDED:
        detail = ""
        if result and result.get("dry_run"):
            detail = f": dry run, audience {result.get('audience_size')}"
        elif result and "sent" in result:
            detail = f": sent {result.get('sent')}, audience {result.get('audience_size')}"
        ctx.event(resource, "Normal", "JobSucceeded", f"Job {name} succeeded{detail}")
    elif outcome == JOB_FAILED:
        ctx.event(
            resource, "Warning", "JobFailed", f"Job {name} failed: {after.get('message', '')}"
        )
