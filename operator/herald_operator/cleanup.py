"""Children in another namespace than their resource: removed with it.

Kubernetes has no owner reference across namespaces, so the garbage collector cannot
follow a CronJob or Job in ``HERALD_OPERATOR_JOB_NAMESPACE`` to its resource elsewhere.
Their labels say whose they are (``herald.io/owner-kind``, ``-name``, ``-namespace``,
``-uid``); when the operator sees the resource deleted it deletes them, and a sweep (at
start and every ``ORPHAN_SWEEP_SECONDS``) deletes those whose resource is gone or was
replaced while the operator was not watching. The Jobs a CronJob created belong to the
CronJob (an owner reference in the same namespace) and go with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from herald_operator.constants import (
    LABEL_MANAGED_BY,
    LABEL_OWNER_KIND,
    LABEL_OWNER_NAME,
    LABEL_OWNER_NAMESPACE,
    LABEL_OWNER_UID,
    OPERATOR_NAME,
)
from herald_operator.context import Context

log = logging.getLogger(__name__)
KINDS = ("CronJob", "Job")


def _standalone(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The children no owner reference keeps (not the Jobs of a CronJob)."""
    return [c for c in children if not (c.get("metadata") or {}).get("ownerReferences")]


def resource_deleted(body: Mapping[str, Any], ctx: Context) -> list[str]:
    """Delete the children of the deleted resource ``body`` that live in another
    namespace; their names."""
    meta = body["metadata"]
    namespace = meta["namespace"]
    jobs_namespace = ctx.settings.jobs_namespace_of(namespace)
    if jobs_namespace == namespace:
        return []  # owner references: the garbage collector
    selector = ",".join(
        f"{key}={value}"
        for key, value in (
            (LABEL_MANAGED_BY, OPERATOR_NAME),
            (LABEL_OWNER_KIND, body["kind"]),
            (LABEL_OWNER_NAME, meta["name"]),
            (LABEL_OWNER_NAMESPACE, namespace),
            (LABEL_OWNER_UID, meta.get("uid")),
        )
    )
    return _delete_all(jobs_namespace, selector, ctx)


def _delete_all(namespace: str, selector: str, ctx: Context, keep: Any = None) -> list[str]:
    deleted = []
    for kind in KINDS:
        for child in _standalone(ctx.kube.list_children(kind, namespace, selector)):
            if keep is not None and keep(child):
                continue
            name = child["metadata"]["name"]
            if ctx.kube.delete(kind, namespace, name):
                deleted.append(f"{kind}/{name}")
    if deleted:
        log.info("deleted children of a deleted resource", extra={"children": deleted})
    return deleted


def sweep_orphans(ctx: Context) -> list[str]:
    """Delete the children in the Jobs' namespace whose resource (in another namespace)
    no longer exists, or exists with another uid; their names."""
    namespace = ctx.settings.job_namespace
    if not namespace:
        return []
    owners: dict[tuple[str, str, str], str | None] = {}

    def owner_uid(labels: Mapping[str, str]) -> str | None:
        key = (labels[LABEL_OWNER_KIND], labels[LABEL_OWNER_NAMESPACE], labels[LABEL_OWNER_NAME])
        if key not in owners:
            resource = ctx.kube.get_resource(*key)
            owners[key] = resource["metadata"].get("uid") if resource else None
        return owners[key]

    def alive(child: Mapping[str, Any]) -> bool:
        labels = child["metadata"].get("labels") or {}
        if labels.get(LABEL_OWNER_KIND) not in ("NotificationCampaign", "Schedule"):
            return True  # not one of ours to judge
        uid = owner_uid(labels)
        return uid is not None and uid == labels.get(LABEL_OWNER_UID, uid)

    selector = f"{LABEL_MANAGED_BY}={OPERATOR_NAME},{LABEL_OWNER_NAMESPACE},{LABEL_OWNER_NAME}"
    return _delete_all(namespace, selector, ctx, keep=alive)
