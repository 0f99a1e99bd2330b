"""kopf handler registrations, and nothing else: each delegates to a module.

Run with ``herald-operator`` (leader election, settings' namespaces) or, for
development and tests, ``kopf run -m herald_operator.main --standalone -n <ns>``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from herald_operator import cleanup, jobs, metrics, reconcile, runs, startup
from herald_operator.constants import (
    CAMPAIGNS,
    GROUP,
    LABEL_MANAGED_BY,
    OPERATOR_NAME,
    RUN_NOW_ANNOTATION,
    SCHEDULES,
    VERSION,
)

ONE_SHOT_CHECK_SECONDS = 10.0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Read the operator's settings and set kopf up (storage, workers, posting); start
    the sweep of children left in another namespace by resources deleted while no
    operator watched (now and every ``ORPHAN_SWEEP_SECONDS``), and the re-check of
    resources waiting for their Job environment (``JobEnvMissing``)."""
    startup.configure(settings, memo)
    memo.tasks = [
        asyncio.create_task(startup.sweep_forever(memo.ctx)),
        asyncio.create_task(startup.recheck_forever(memo.ctx)),
    ]


@kopf.on.cleanup()
async def stop_background(memo: kopf.Memo, **_: Any) -> None:
    """Stop the sweep and the re-check with the operator."""
    for task in memo.get("tasks") or []:
        await startup.stop(task)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials: the pod's service account, else the kubeconfig (read when called)."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.resume(GROUP, VERSION, CAMPAIGNS)
@kopf.on.create(GROUP, VERSION, CAMPAIGNS)
@kopf.on.update(GROUP, VERSION, CAMPAIGNS, field="spec")
def campaign_changed(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, reason: str, **_: Any
) -> None:
    """A NotificationCampaign was created, changed or found at start: reconcile it."""
    with metrics.reconciling("NotificationCampaign") as result:
        result.outcome = reconcile.reconcile(body, patch.status, memo.ctx, cause=str(reason))


@kopf.on.resume(GROUP, VERSION, SCHEDULES)
@kopf.on.create(GROUP, VERSION, SCHEDULES)
@kopf.on.update(GROUP, VERSION, SCHEDULES, field="spec")
def schedule_changed(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, reason: str, **_: Any
) -> None:
    """A Schedule was created, changed or found at start: reconcile it."""
    with metrics.reconciling("Schedule") as result:
        result.outcome = reconcile.reconcile(body, patch.status, memo.ctx, cause=str(reason))


@kopf.timer(
    GROUP,
    VERSION,
    CAMPAIGNS,
    interval=ONE_SHOT_CHECK_SECONDS,
    field="spec.runAt",
    value=kopf.PRESENT,
)
def one_shot_due(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """A one-shot campaign: start its Job once ``runAt`` has come."""
    reconcile.start_due_one_shot(body, patch.status, memo.ctx)


@kopf.on.event(GROUP, VERSION, CAMPAIGNS)
@kopf.on.event(GROUP, VERSION, SCHEDULES)
def resource_event(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """A resource was deleted: its children in another namespace go with it."""
    if type == "DELETED":
        cleanup.resource_deleted(body, memo.ctx)


@kopf.on.event(GROUP, VERSION, CAMPAIGNS, annotations={RUN_NOW_ANNOTATION: kopf.PRESENT})
@kopf.on.event(GROUP, VERSION, SCHEDULES, annotations={RUN_NOW_ANNOTATION: kopf.PRESENT})
def run_now_requested(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """The run-now annotation is set: start one Job now and remove the annotation."""
    if type != "DELETED":
        runs.run_now(body, memo.ctx)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: OPERATOR_NAME})
def job_event(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """A Job of a campaign or schedule changed: copy its outcome to the owner's status."""
    if type != "DELETED":
        jobs.job_changed(body, memo.ctx)
