"""Operator start: settings, kopf's configuration and the shared context."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf

from herald_operator import cleanup
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


async def sweep_forever(ctx: Context) -> None:
    """:func:`cleanup.sweep_orphans` now and every ``orphan_sweep_seconds``; an API
    error is logged and tried again next time."""
    while True:
        try:
            await asyncio.to_thread(cleanup.sweep_orphans, ctx)
        except Exception:
            log.exception("sweeping children of deleted resources failed")
        await asyncio.sleep(ctx.settings.orphan_sweep_seconds)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait for it."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
