"""Run-now requests: the ``herald.io/run-now`` annotation starts one Job right away.

Any value requests a run (``kubectl annotate ncamp flash-sale herald.io/run-now=1``);
the Job is created, then the annotation removed. The Job's name is derived from the
value and the time the annotation was written (from ``managedFields``), so the events
kopf sees before the removal lands start one Job, and annotating again later starts a
new one. A suspended resource still runs when asked to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald_common.resources import ResourceError, from_object

from herald_operator.builders.common import SpecError
from herald_operator.constants import JOB_ENV_MISSING, RUN_NOW_ANNOTATION
from herald_operator.context import Context
from herald_operator.reconcile import reconcile_now, start_run


def annotation_written_at(body: Mapping[str, Any], key: str) -> str:
    """When ``key`` was last written, from the managedFields entry that owns it."""
    field = f"f:{key}"
    for entry in (body.get("metadata") or {}).get("managedFields") or []:
        annotations = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get(
            "f:annotations"
        ) or {}
        if field in annotations:
            return str(entry.get("time") or "")
    return ""


def run_now(body: Mapping[str, Any], ctx: Context) -> str | None:
    """Start the requested run and clear the request; the Job's name (None when the
    resource cannot run: the reconcile handler reports why)."""
    meta = body["metadata"]
    value = (meta.get("annotations") or {}).get(RUN_NOW_ANNOTATION)
    if value is None:
        return None
    request = f"run-now={value}@{annotation_written_at(body, RUN_NOW_ANNOTATION)}"
    try:
        resource = from_object(body)
        name = start_run(resource, body, ctx, request=request)
    except (ResourceError, SpecError) as exc:
        message = exc.reason if isinstance(exc, ResourceError) else exc.message
        ctx.event(body, "Warning", "RunNotStarted", f"run-now ignored: {message}")
        name = None
        if isinstance(exc, SpecError) and exc.reason == JOB_ENV_MISSING:
            reconcile_now(body, ctx)  # the condition, and the CronJob suspended
    ctx.kube.remove_annotation(body["kind"], meta["namespace"], meta["name"], RUN_NOW_ANNOTATION)
    return name
