"""Operator start: settings, kopf's configuration and the shared context."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import kopf

from herald_operator import cleanup, reconcile
from herald_operator.config import OperatorSettings
from herald_operator.constants import DIFFBASE_KEY, FINALIZER, KOPF_PREFIX, OPERATOR_NAME
from herald_operator.context import Context, make_context

log = logging.getLogger(__name__)


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    """Configure kopf for Herald's CRDs and put a :class:`Context` in ``memo.ctx``.

    The CRDs' status schema would prune kopf's default ``status.kopf``, so kopf keeps
    its progress and last-handled spec in ``herald.io/`` annotations. kopf's own
    per-handler Events are kept for warnings only: the operator posts its own.
    """
    ours = OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key=DIFFBASE_KEY
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = OPERATOR_NAME
    settings.posting.reporting_instance = ours.identity
    settings.execution.max_workers = ours.max_workers
    # Reconnect watches regularly (fresh connections through API server restarts).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    if "ctx" not in memo:
        memo.ctx = make_context(ours)


async def _every(seconds: float, fn: Callable[[Context], object], ctx: Context) -> None:
    while True:
        try:
            await asyncio.to_thread(fn, ctx)
        except Exception:
            log.exception("background %s failed; trying again later", fn.__name__)
        await asyncio.sleep(seconds)


async def sweep_forever(ctx: Context) -> None:
    """:func:`cleanup.sweep_orphans` now and every ``orphan_sweep_seconds``."""
    await _every(ctx.settings.orphan_sweep_seconds, cleanup.sweep_orphans, ctx)


async def recheck_forever(ctx: Context) -> None:
    """:func:`reconcile.recheck_job_env` every ``job_env_retry_seconds``."""
    await _every(ctx.settings.job_env_retry_seconds, reconcile.recheck_job_env, ctx)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
