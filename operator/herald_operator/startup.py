"""Operator start: settings, kopf's configuration and the shared context."""

from __future__ import annotations

import logging

import kopf

from herald_operator.config import OperatorSettings
from herald_operator.constants import DIFFBASE_KEY, FINALIZER, KOPF_PREFIX, OPERATOR_NAME
from herald_operator.context import make_context


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
