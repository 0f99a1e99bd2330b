"""Status of a NotificationCampaign or Schedule: conditions and what the last run did.

Conditions follow the Kubernetes conventions: ``lastTransitionTime`` changes only when a
condition's status does; ``observedGeneration`` says which spec it is about. Types:

* ``Ready``: the children match the spec (False with the reason when not);
* ``Suspended``: the spec says ``suspend``;
* ``Failed``: the spec passed the schema but cannot work (reason and message say why);
* ``LastRunSucceeded``: how the newest Job ended (Unknown while it runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from herald_operator.constants import (
    FAILED,
    JOB_FAILED,
    LAST_RUN_SUCCEEDED,
    READY,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
)

MESSAGE_MAX = 4096


def timestamp(at: datetime | None) -> str | None:
    """RFC 3339 in UTC, seconds precision (what ``date-time`` fields hold)."""
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else None


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time from the API server, or None."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def condition(type_: str, status: bool | None, reason: str, message: str = "") -> dict[str, Any]:
    """A condition without its times (``status`` None = Unknown)."""
    text = "Unknown" if status is None else ("True" if status else "False")
    return {"type": type_, "status": text, "reason": reason, "message": message[:MESSAGE_MAX]}


def merge_conditions(
    current: Iterable[Mapping[str, Any]] | None,
    updates: Iterable[dict[str, Any]],
    *,
    now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """``current`` with ``updates`` applied: one entry per type, transition times kept
    when the status did not change, conditions not updated left as they are."""
    by_type = {c["type"]: dict(c) for c in current or []}
    for update in updates:
        old = by_type.get(update["type"])
        changed = old is None or old.get("status") != update["status"]
        new = dict(update)
        new["lastTransitionTime"] = (
            timestamp(now) if changed else old.get("lastTransitionTime", timestamp(now))  # type: ignore[union-attr]
        )
        if generation is not None:
            new["observedGeneration"] = generation
        by_type[update["type"]] = new
    order = [READY, SUSPENDED, FAILED, LAST_RUN_SUCCEEDED]
    return sorted(
        by_type.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else 99, c["type"]),
    )


def reconciled(
    current: Mapping[str, Any] | None,
    *,
    generation: int | None,
    suspended: bool,
    now: datetime,
    next_run: datetime | None,
    children: Mapping[str, str | None],
    message: str,
) -> dict[str, Any]:
    """The status after the children were applied (``children``: status field → name)."""
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "nextRunTime": timestamp(next_run),
        **children,
        "conditions": merge_conditions(
            (current or {}).get("conditions"),
            [
                condition(READY, True, "Reconciled", message),
                condition(
                    SUSPENDED,
                    suspended,
                    "SuspendedBySpec" if suspended else "Active",
                    "spec.suspend is true: no scheduled runs" if suspended else "",
                ),
                condition(FAILED, False, "Valid"),
            ],
            now=now,
            generation=generation,
        ),
    }
    return status


def failed(
    current: Mapping[str, Any] | None,
    *,
    generation: int | None,
    reason: str,
    message: str,
    now: datetime,
) -> dict[str, Any]:
    """The status of a resource that cannot work: ``Failed`` with the reason, not Ready."""
    return {
        "observedGeneration": generation,
        "nextRunTime": None,
        "conditions": merge_conditions(
            (current or {}).get("conditions"),
            [condition(READY, False, reason, message), condition(FAILED, True, reason, message)],
            now=now,
            generation=generation,
        ),
    }


def job_outcome(job: Mapping[str, Any]) -> str:
    """``Running``, ``Succeeded`` or ``Failed`` from a Job's status conditions."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("status") != "True":
            continue
        if c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return SUCCEEDED
        if c.get("type") in ("Failed", "FailureTarget"):
            return JOB_FAILED
    return RUNNING


def job_failure_message(job: Mapping[str, Any]) -> str:
    """Why a Job failed, from its conditions."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True":
            return f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
    return ""


def termination_result(message: str | None) -> dict[str, Any] | None:
    """The JSON a campaign pod wrote to its termination log, or None."""
    if not message:
        return None
    try:
        parsed = json.loads(message)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def job_started_at(job: Mapping[str, Any]) -> str | None:
    """When a Job started (its creation time until the controller records a start)."""
    status = job.get("status") or {}
    meta = job.get("metadata") or {}
    return status.get("startTime") or meta.get("creationTimestamp")


def run_status(
    current: Mapping[str, Any] | None,
    job: Mapping[str, Any],
    *,
    result: Mapping[str, Any] | None,
    now: datetime,
    generation: int | None,
    next_run: datetime | None,
) -> dict[str, Any] | None:
    """The status after an event of ``job``; None when an older Job changed (the
    newest run's status is not overwritten by an earlier one's)."""
    current = current or {}
    name = (job.get("metadata") or {}).get("name")
    started = job_started_at(job)
    last = current.get("lastJob") or {}
    if last.get("name") not in (None, name) and (last.get("startTime") or "") > (started or ""):
        return None
    outcome = job_outcome(job)
    job_status = job.get("status") or {}
    last_job: dict[str, Any] = {"name": name, "outcome": outcome, "startTime": started}
    if job_status.get("completionTime"):
        last_job["completionTime"] = job_status["completionTime"]
    message = ""
    if outcome == JOB_FAILED:
        message = job_failure_message(job)
        if result and result.get("error"):
            message = f"{message}; {result['error']}".strip("; ")
    if message:
        last_job["message"] = message[:MESSAGE_MAX]
    status: dict[str, Any] = {"lastJob": last_job, "lastRunTime": started}
    if next_run is not None:
        status["nextRunTime"] = timestamp(next_run)
    if result:
        if result.get("run_id"):
            status["lastRunId"] = result["run_id"]
        for key, field in (
            ("audience_size", "audienceSize"),
            ("sent", "sent"),
            ("suppressed", "suppressed"),
        ):
            if isinstance(result.get(key), int):
                status[field] = result[key]
        if result.get("dry_run") and "samples" in result:
            status["samples"] = list(result["samples"])[:10]
    if outcome == RUNNING:
        cond = condition(LAST_RUN_SUCCEEDED, None, "Running", f"Job {name} is running")
    elif outcome == SUCCEEDED:
        cond = condition(LAST_RUN_SUCCEEDED, True, "JobSucceeded", f"Job {name} succeeded")
    else:
        cond = condition(LAST_RUN_SUCCEEDED, False, "JobFailed", f"Job {name} failed: {message}")
    status["conditions"] = merge_conditions(
        current.get("conditions"), [cond], now=now, generation=generation
    )
    return status
