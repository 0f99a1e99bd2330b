"""What every child shares: names, labels, owner references, the hardened pod."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from herald_common.resources import NotificationCampaign, Resource, Schedule
from herald_common.resources.segments import unknown_categories
from herald_common.resources.tasks import TASK_COMPONENTS, task_command

from herald_operator.config import OperatorSettings
from herald_operator.constants import (
    API_VERSION,
    CHILD_NAME_MAX,
    CHILD_PREFIX,
    CONTAINER_NAME,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_OWNER_KIND,
    LABEL_OWNER_NAME,
    LABEL_OWNER_NAMESPACE,
    LABEL_OWNER_UID,
    LABEL_PART_OF,
    OPERATOR_NAME,
    TERMINATION_LOG,
)

# Kubernetes refuses a container argument longer than this (the kernel's per-argument
# limit is 128 KiB); the campaign travels inline, so a longer one cannot run.
MAX_INLINE_RESOURCE = 100_000


class SpecError(ValueError):
    """A spec the schema allowed that still cannot work; ``reason`` is CamelCase."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def digest(text: str, length: int = 8) -> str:
    """A short stable hash of ``text`` (names of children)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def child_name(kind: str, name: str, namespace: str | None = None) -> str:
    """The CronJob (or one-shot Job) name of resource ``kind``/``name``.

    Prefixed by kind, so a campaign and a schedule of the same name never share one;
    shortened with a digest of the full name when it would exceed 52 characters. A
    resource of another ``namespace`` than its children's adds that namespace and a
    digest of ``namespace/name`` (``shop/a-b`` and ``shop-a/b`` stay apart).
    """
    if namespace is not None:
        base = f"{CHILD_PREFIX[kind]}{namespace}-{name}"
        suffix = digest(f"{namespace}/{name}", 6)
        return f"{base[: CHILD_NAME_MAX - len(suffix) - 1].rstrip('-.')}-{suffix}"
    full = CHILD_PREFIX[kind] + name
    if len(full) <= CHILD_NAME_MAX:
        return full
    return f"{full[: CHILD_NAME_MAX - 9].rstrip('-')}-{digest(full)}"


def is_foreign(resource: Resource, settings: OperatorSettings) -> bool:
    """Whether ``resource``'s children live in another namespace than it does."""
    return settings.jobs_namespace_of(resource.namespace) != resource.namespace


def foreign_namespace(resource: Resource, settings: OperatorSettings) -> str | None:
    """``resource``'s namespace when its children live elsewhere, else None."""
    return resource.namespace if is_foreign(resource, settings) else None


def resource_child_name(resource: Resource, settings: OperatorSettings) -> str:
    """:func:`child_name` of ``resource`` where its children live."""
    return child_name(resource.kind, resource.name, foreign_namespace(resource, settings))


def run_job_name(kind: str, name: str, request: str, namespace: str | None = None) -> str:
    """The name of the Job started for one run request (``request``: its value)."""
    return f"{child_name(kind, name, namespace)}-r{digest(request)}"


def labels(kind: str, name: str, namespace: str | None = None) -> dict[str, str]:
    """Labels of every child of resource ``kind``/``name`` (and of their pods); with
    ``namespace`` when the children live elsewhere."""
    result = {
        LABEL_NAME: "herald",
        LABEL_INSTANCE: name,
        LABEL_COMPONENT: "campaign" if kind == "NotificationCampaign" else "schedule",
        LABEL_PART_OF: "herald",
        LABEL_MANAGED_BY: OPERATOR_NAME,
        LABEL_OWNER_KIND: kind,
        LABEL_OWNER_NAME: name,
    }
    if namespace is not None:
        result[LABEL_OWNER_NAMESPACE] = namespace
    return result


def resource_labels(resource: Resource, settings: OperatorSettings) -> dict[str, str]:
    """:func:`labels` of ``resource``'s children; away from it also its uid (which
    resource of that name they belong to: the orphan sweep compares it)."""
    namespace = foreign_namespace(resource, settings)
    result = labels(resource.kind, resource.name, namespace)
    if namespace is not None and resource.metadata.uid:
        result[LABEL_OWNER_UID] = resource.metadata.uid
    return result


def owner_reference(resource: Resource) -> dict[str, Any]:
    """The controller owner reference to ``resource`` (what ``kopf.adopt`` writes): its
    children are garbage-collected with it."""
    if not resource.metadata.uid:
        raise ValueError(f"{resource.ref} has no uid (not read from the cluster)")
    return {
        "apiVersion": API_VERSION,
        "kind": resource.kind,
        "name": resource.name,
        "uid": resource.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(resource: Resource, name: str, settings: OperatorSettings) -> dict[str, Any]:
    """``metadata`` of a child named ``name``: namespace, labels, and the owner
    reference when it is in the resource's namespace (Kubernetes has none across
    namespaces: the labels say whose it is, and the operator removes it)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.jobs_namespace_of(resource.namespace),
        "labels": resource_labels(resource, settings),
    }
    if not is_foreign(resource, settings):
        metadata["ownerReferences"] = [owner_reference(resource)]
    return metadata


def inline_resource(resource: NotificationCampaign) -> str:
    """The campaign as the compact JSON its pod receives (``--resource-json``)."""
    document = {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": resource.name, "namespace": resource.namespace},
        "spec": resource.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def check_campaign(campaign: NotificationCampaign, settings: OperatorSettings) -> None:
    """Raise :class:`SpecError` when ``campaign`` cannot run with these settings."""
    if settings.scheduler_image is None:
        raise SpecError(
            "ImageNotSet",
            f"no scheduler image configured: set {settings.image_variable('scheduler')}",
        )
    if settings.segment_categories:
        unknown = unknown_categories(campaign.spec.audience.categories, settings.segment_categories)
        if unknown:
            raise SpecError(
                "UnknownSegment",
                f"spec.audience.categories: unknown categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(repr(c) for c in unknown)}; known: {', '.join(settings.segment_categories)}",
            )
    size = len(inline_resource(campaign))
    if size > MAX_INLINE_RESOURCE:
        raise SpecError(
            "SpecTooLarge",
            f"the campaign is {size} bytes as JSON, at most {MAX_INLINE_RESOURCE} fit a pod "
            "argument: narrow spec.audience.userIds or use spec.audience.categories",
        )


def check_schedule(schedule: Schedule, settings: OperatorSettings) -> None:
    """Raise :class:`SpecError` when ``schedule`` cannot run with these settings."""
    component = TASK_COMPONENTS.get(schedule.spec.task)
    if component is None:
        raise SpecError("UnknownTask", f"spec.task: unknown task {schedule.spec.task!r}")
    if settings.image_for(component) is None:
        raise SpecError(
            "ImageNotSet",
            f"task {schedule.spec.task} runs in the {component} image, which is not "
            f"configured: set {settings.image_variable(component)}",
        )


def campaign_command(
    campaign: NotificationCampaign,
    settings: OperatorSettings,
    *,
    run_id: str | None = None,
) -> list[str]:
    """The scheduler's fire command for ``campaign`` (``run_id`` for requested runs;
    scheduled runs name their slot themselves)."""
    argv = [
        "herald-scheduler",
        "fire-campaign",
        "--resource-json",
        inline_resource(campaign),
        # The operator decides when a campaign runs (a suspended CronJob starts
        # nothing); a requested run of a suspended campaign still fires.
        "--force",
        "--termination-log",
        TERMINATION_LOG,
    ]
    if campaign.spec.dry_run:
        argv.append("--preview")
    elif settings.fire_wait_seconds:
        argv += ["--wait-seconds", str(settings.fire_wait_seconds)]
    if run_id:
        argv += ["--run-id", run_id]
    return argv


def container_for(
    resource: Resource, settings: OperatorSettings, *, run_id: str | None = None
) -> dict[str, Any]:
    """The one container of a Job pod of ``resource`` (checked first: SpecError)."""
    if isinstance(resource, NotificationCampaign):
        check_campaign(resource, settings)
        image = settings.scheduler_image
        command = campaign_command(resource, settings, run_id=run_id)
    else:
        check_schedule(resource, settings)
        image = settings.image_for(TASK_COMPONENTS[resource.spec.task])
        command = task_command(resource.spec.task, resource.spec.parameters)
    env_from: list[dict[str, Any]] = [
        {"secretRef": {"name": name}} for name in settings.job_env_from_secrets
    ] + [{"configMapRef": {"name": name}} for name in settings.job_env_from_config_maps]
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": [{"name": k, "value": v} for k, v in sorted(settings.job_env.items())],
        "resources": settings.job_resources.model_dump(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def pod_template(
    resource: Resource, settings: OperatorSettings, *, run_id: str | None = None
) -> dict[str, Any]:
    """The pod template of every Job of ``resource``: non-root, read-only root
    filesystem, no service account token, runs once."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        # No docker-link variables: a Service named herald-scheduler would otherwise set
        # HERALD_SCHEDULER_PORT=tcp://... in the pod, which the settings read as the port.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_user,
            "fsGroup": settings.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container_for(resource, settings, run_id=run_id)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]
    return {"metadata": {"labels": resource_labels(resource, settings)}, "spec": spec}


def job_spec(
    resource: Resource,
    settings: OperatorSettings,
    *,
    run_id: str | None = None,
    ttl: bool = False,
) -> dict[str, Any]:
    """``spec`` of a Job of ``resource`` (in a CronJob's template or on its own)."""
    spec: dict[str, Any] = {
        "backoffLimit": settings.backoff_limit,
        "activeDeadlineSeconds": settings.active_deadline_seconds,
        "template": pod_template(resource, settings, run_id=run_id),
    }
    if ttl:
        spec["ttlSecondsAfterFinished"] = settings.job_ttl_seconds
    return spec


def as_mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict of a (possibly None) mapping."""
    return dict(value or {})
