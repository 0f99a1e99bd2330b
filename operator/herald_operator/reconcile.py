"""Reconciling a NotificationCampaign or Schedule: its CronJob (or one-shot Job) and
status, on create, update and resume.

A scheduled campaign and every Schedule get a CronJob, applied in place on every spec
change (server-side apply: same object, new spec). A one-shot campaign (``runAt``) gets
a Job when it is due (:func:`start_due_one_shot`, a kopf timer). A spec that passed the
schema but cannot work (a cron kopf's croniter refuses, an unknown segment category, no
image configured, ...) sets ``Failed`` with the reason, suspends an existing CronJob, and
is not retried: fixing the spec (or the settings, then restarting) reconciles again.
API errors that may pass (429, 5xx, timeouts) are retried by kopf.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, MutableMapping
from datetime import timedelta
from typing import Any

import kopf
from herald_common.resources import (
    NotificationCampaign,
    Resource,
    ResourceError,
    Schedule,
    from_object,
)
from herald_common.resources.cron import next_fire
from kubernetes.client.exceptions import ApiException

from herald_operator.builders import status as st
from herald_operator.builders.common import SpecError
from herald_operator.builders.cronjob import build_cronjob
from herald_operator.builders.job import build_one_shot_job, build_run_job
from herald_operator.constants import JOB_ENV_MISSING
from herald_operator.context import Context
from herald_operator.environment import check_job_env, job_env_problem

log = logging.getLogger(__name__)


def _api_failure(exc: ApiException, what: str) -> Exception:
    """A refusal that retrying cannot fix becomes a SpecError; the rest is retried."""
    if exc.status in (400, 403, 422):
        message = str(exc.reason)
        # The API server's Status message when the body is one; else the HTTP reason.
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            message = json.loads(exc.body or "").get("message", message)
        return SpecError("ChildRefused", f"the API server refused the {what}: {message}")
    return kopf.TemporaryError(f"{what}: API error {exc.status} {exc.reason}", delay=10)


def reconcile(
    body: Mapping[str, Any],
    patch_status: MutableMapping[str, Any],
    ctx: Context,
    *,
    cause: str,
) -> str:
    """Make the children match ``body``'s spec and write its status into
    ``patch_status`` (kopf's ``patch.status``, applied when the handler returns).
    Returns the outcome for the metrics: ``success``, or ``failed`` when the status
    says Failed (passing API errors raise kopf.TemporaryError instead)."""
    now = ctx.clock()
    meta = body["metadata"]
    current = body.get("status") or {}
    generation = meta.get("generation")
    try:
        resource = from_object(body)
        check_job_env(resource, ctx)
        if isinstance(resource, NotificationCampaign) and resource.spec.run_at is not None:
            status = _one_shot(resource, current, ctx)
        else:
            status = _scheduled(resource, current, ctx, cause=cause)
        if isinstance(resource, Schedule):
            status.update(_requested_run(resource, body, current, ctx))
    except (ResourceError, SpecError) as exc:
        reason = exc.reason if isinstance(exc, SpecError) else "InvalidSpec"
        message = exc.reason if isinstance(exc, ResourceError) else exc.message
        _waiting(body, ctx, reason == JOB_ENV_MISSING)
        _suspend_existing(body, current, ctx)
        patch_status.update(
            st.failed(current, generation=generation, reason=reason, message=message, now=now)
        )
        if (current.get("observedGeneration"), _failed_reason(current)) != (generation, message):
            ctx.event(body, "Warning", reason, message)
        return "failed"
    _waiting(body, ctx, False)
    patch_status.update(status)
    return "success"


def _waiting(body: Mapping[str, Any], ctx: Context, waiting: bool) -> None:
    """Remember (or forget) that ``body`` waits for its Job environment."""
    meta = body["metadata"]
    key = (str(body["kind"]), str(meta["namespace"]), str(meta["name"]))
    if waiting:
        ctx.env_waiting.add(key)
    else:
        ctx.env_waiting.discard(key)


def _failed_reason(current: Mapping[str, Any]) -> str | None:
    failure = _failure(current)
    return failure[1] if failure else None


def _failure(current: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(reason, message)`` of a ``Failed=True`` condition, or None."""
    for c in current.get("conditions") or []:
        if c.get("type") == "Failed" and c.get("status") == "True":
            return str(c.get("reason")), str(c.get("message"))
    return None


def recheck_job_env(ctx: Context) -> list[str]:
    """Reconcile again the resources waiting for their Job environment whose check
    says something else now (it came, or what is missing changed); their names."""
    done = []
    for kind, namespace, name in sorted(ctx.env_waiting.copy()):
        jobs_namespace = ctx.settings.jobs_namespace_of(namespace)
        ctx.env_checks.pop(jobs_namespace, None)
        problem = job_env_problem(jobs_namespace, ctx)
        body = ctx.kube.get_resource(kind, namespace, name)
        if body is None:
            ctx.env_waiting.discard((kind, namespace, name))
            continue
        failure = _failure(body.get("status") or {})
        if failure == ((JOB_ENV_MISSING, problem.message) if problem else None):
            continue
        reconcile_now(body, ctx)
        done.append(f"{kind}/{namespace}/{name}")
    return done


def reconcile_now(body: Mapping[str, Any], ctx: Context) -> str:
    """:func:`reconcile` outside a kopf handler: the status written directly (once
    more on a conflict). The outcome."""
    meta = body["metadata"]
    for _ in range(3):
        patch: dict[str, Any] = {}
        outcome = reconcile(body, patch, ctx, cause="environment")
        try:
            ctx.kube.patch_status(
                body["kind"],
                meta["namespace"],
                meta["name"],
                patch,
                resource_version=meta.get("resourceVersion"),
            )
            return outcome
        except ApiException as exc:
            if exc.status != 409:
                raise
        fresh = ctx.kube.get_resource(body["kind"], meta["namespace"], meta["name"])
        if fresh is None:
            return outcome
        body, meta = fresh, fresh["metadata"]
    return "retry"


def _scheduled(
    resource: Resource, current: Mapping[str, Any], ctx: Context, *, cause: str
) -> dict[str, Any]:
    settings, now = ctx.settings, ctx.clock()
    manifest = build_cronjob(resource, settings)
    name = manifest["metadata"]["name"]
    try:
        applied = ctx.kube.apply(manifest)
    except ApiException as exc:
        raise _api_failure(exc, f"CronJob {name}") from exc
    spec = resource.spec
    assert spec.schedule is not None
    next_run = None if spec.suspend else next_fire(spec.schedule, spec.time_zone, now)
    body = _body_of(resource)
    created = (
        applied.get("metadata", {}).get("generation") == 1 and current.get("cronJobName") != name
    )
    if created:
        ctx.event(
            body,
            "Normal",
            "CronJobCreated",
            f"created CronJob {_shown(manifest, resource)} ({spec.schedule} {spec.time_zone})",
        )
    elif cause != "resume" or current.get("observedGeneration") != resource.metadata.generation:
        state = "suspended" if spec.suspend else f"{spec.schedule} {spec.time_zone}"
        ctx.event(
            body,
            "Normal",
            "CronJobUpdated",
            f"updated CronJob {_shown(manifest, resource)} in place ({state})",
        )
    old_job = current.get("jobName")
    if old_job:  # the campaign was one-shot before
        ctx.kube.delete("Job", manifest["metadata"]["namespace"], old_job)
    return st.reconciled(
        current,
        generation=resource.metadata.generation,
        suspended=spec.suspend,
        now=now,
        next_run=next_run,
        children={"cronJobName": name, "jobName": None},
        message=f"CronJob {_shown(manifest, resource)} matches the spec",
    )


def _one_shot(
    campaign: NotificationCampaign, current: Mapping[str, Any], ctx: Context
) -> dict[str, Any]:
    """A one-shot campaign: no CronJob (an earlier one goes); its Job starts when due."""
    settings, now = ctx.settings, ctx.clock()
    manifest = build_one_shot_job(campaign, settings)  # validates images and the rest
    job = manifest["metadata"]["name"]
    old_cronjob = current.get("cronJobName")
    if old_cronjob:
        ctx.kube.delete("CronJob", manifest["metadata"]["namespace"], old_cronjob)
        ctx.event(
            _body_of(campaign),
            "Normal",
            "CronJobDeleted",
            f"deleted CronJob {old_cronjob}: the campaign is one-shot now",
        )
    run_at = campaign.spec.run_at
    assert run_at is not None
    started = current.get("jobName") == job
    pending = (
        not started
        and not campaign.spec.suspend
        and run_at + timedelta(seconds=settings.starting_deadline_seconds) >= now
    )
    status = st.reconciled(
        current,
        generation=campaign.metadata.generation,
        suspended=campaign.spec.suspend,
        now=now,
        next_run=run_at if pending else None,
        children={"cronJobName": None, **({"jobName": job} if started else {})},
        message=f"one-shot: Job {job} {'started' if started else 'starts at ' + (st.timestamp(run_at) or '')}",
    )
    if pending and run_at <= now:
        status.update(start_one_shot(campaign, current, ctx))
    return status


def start_one_shot(
    campaign: NotificationCampaign, current: Mapping[str, Any], ctx: Context
) -> dict[str, Any]:
    """Create the Job of a due one-shot campaign; the status fields to set."""
    manifest = build_one_shot_job(campaign, ctx.settings)
    name = manifest["metadata"]["name"]
    _create_job(
        manifest,
        ctx,
        _body_of(campaign),
        "JobCreated",
        f"created Job {_shown(manifest, campaign)} for the one-shot run",
    )
    return {"jobName": name, "nextRunTime": None, "lastRunTime": st.timestamp(ctx.clock())}


def start_due_one_shot(
    body: Mapping[str, Any], patch_status: MutableMapping[str, Any], ctx: Context
) -> None:
    """Timer: start a one-shot campaign's Job once ``runAt`` has come."""
    current = body.get("status") or {}
    try:
        campaign = from_object(body)
    except ResourceError:
        return  # reported by the reconcile handler
    if not isinstance(campaign, NotificationCampaign) or campaign.spec.run_at is None:
        return
    if campaign.spec.suspend or _failed_reason(current) is not None:
        return
    now = ctx.clock()
    run_at = campaign.spec.run_at
    deadline = run_at + timedelta(seconds=ctx.settings.starting_deadline_seconds)
    try:
        expected = build_one_shot_job(campaign, ctx.settings)["metadata"]["name"]
    except SpecError:
        return
    if current.get("jobName") == expected or run_at > now:
        return
    if job_env_problem(ctx.settings.jobs_namespace_of(campaign.namespace), ctx) is not None:
        return  # the environment timer reports it; the run starts once it is there
    if now > deadline:
        if current.get("nextRunTime"):
            patch_status["nextRunTime"] = None
            ctx.event(
                body,
                "Warning",
                "MissedRun",
                f"runAt {st.timestamp(run_at)} passed more than {ctx.settings.starting_deadline_seconds}s ago; not started",
            )
        return
    patch_status.update(start_one_shot(campaign, current, ctx))


def _requested_run(
    schedule: Schedule, body: Mapping[str, Any], current: Mapping[str, Any], ctx: Context
) -> dict[str, Any]:
    """Start one Job for a new ``spec.requestedRunAt`` value."""
    requested = schedule.spec.requested_run_at
    handled = st.parse_time(current.get("lastRequestedRunAt"))
    if requested is None or requested == handled:
        return {}
    stamp = st.timestamp(requested)
    first_sight = handled is None
    too_old = requested < ctx.clock() - timedelta(seconds=ctx.settings.starting_deadline_seconds)
    if first_sight and too_old:
        # A request from before this operator watched: someone already served it.
        return {"lastRequestedRunAt": stamp}
    start_run(schedule, body, ctx, request=f"requestedRunAt={stamp}")
    return {"lastRequestedRunAt": stamp}


def start_run(resource: Resource, body: Mapping[str, Any], ctx: Context, *, request: str) -> str:
    """Create the Job of one run request (idempotent per request); its name."""
    check_job_env(resource, ctx)
    manifest = build_run_job(resource, ctx.settings, request=request)
    name: str = manifest["metadata"]["name"]
    _create_job(
        manifest, ctx, body, "RunRequested", f"created Job {_shown(manifest, resource)} ({request})"
    )
    return name


def _create_job(
    manifest: Mapping[str, Any], ctx: Context, body: Mapping[str, Any], reason: str, message: str
) -> None:
    """Create a Job (idempotent: one of that name is left as it is); when it was created,
    a ``Normal`` event ``reason`` about ``body``."""
    try:
        created = ctx.kube.create_job(manifest)
    except ApiException as exc:
        raise _api_failure(exc, f"Job {manifest['metadata']['name']}") from exc
    if created:
        ctx.event(body, "Normal", reason, message)


def _suspend_existing(body: Mapping[str, Any], current: Mapping[str, Any], ctx: Context) -> None:
    """Suspend the CronJob of a resource whose spec stopped working: it would keep
    running what the spec no longer says."""
    name = current.get("cronJobName")
    if not name:
        return
    try:
        ctx.kube.call(
            ctx.kube.batch.patch_namespaced_cron_job,
            name,
            ctx.settings.jobs_namespace_of(body["metadata"]["namespace"]),
            {"spec": {"suspend": True}},
            _content_type="application/merge-patch+json",
        )
    except ApiException as exc:
        if exc.status != 404:
            raise kopf.TemporaryError(f"suspending CronJob {name}: {exc.reason}", delay=10) from exc


def _shown(manifest: Mapping[str, Any], resource: Resource) -> str:
    """A child's name for messages: with its namespace when not the resource's."""
    meta = manifest["metadata"]
    if meta["namespace"] == resource.namespace:
        return str(meta["name"])
    return f"{meta['namespace']}/{meta['name']}"


def _body_of(resource: Resource) -> dict[str, Any]:
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {
            "name": resource.name,
            "namespace": resource.namespace,
            "uid": resource.metadata.uid,
        },
    }
