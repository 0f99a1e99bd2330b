"""Is the Job environment there? The check behind ``JobEnvMissing``.

Every Job pod references the Secrets, ConfigMaps and ServiceAccount of the settings in
the namespace the Jobs run in (``HERALD_OPERATOR_JOB_NAMESPACE``, else the resource's).
Before a CronJob or Job is written, they are looked up (one GET each, reused for
``JOB_ENV_CHECK_SECONDS`` per namespace); a kopf timer looks again, so a resource
recovers once they exist and stops (its CronJob suspended) when one goes.
"""

from __future__ import annotations

import time

from herald_common.resources import Resource

from herald_operator.builders.common import SpecError
from herald_operator.builders.env import Ref, job_env_missing, job_env_refs
from herald_operator.context import Context


def job_env_problem(namespace: str, ctx: Context) -> SpecError | None:
    """The ``JobEnvMissing`` error of ``namespace`` (where Jobs run), None when all is
    there."""
    now = time.monotonic()
    cached = ctx.env_checks.get(namespace)
    if cached is not None and now - cached[0] < ctx.settings.job_env_check_seconds:
        return cached[1]
    missing: list[Ref] = []
    unreadable: list[Ref] = []
    for kind, name in job_env_refs(ctx.settings):
        found = ctx.kube.exists(kind, namespace, name)
        if found is None:
            unreadable.append((kind, name))
        elif not found:
            missing.append((kind, name))
    problem = job_env_missing(namespace, missing, unreadable)
    ctx.env_checks[namespace] = (now, problem)
    return problem


def check_job_env(resource: Resource, ctx: Context) -> None:
    """Raise ``JobEnvMissing`` when ``resource``'s Jobs could not start."""
    problem = job_env_problem(ctx.settings.jobs_namespace_of(resource.namespace), ctx)
    if problem is not None:
        raise problem
