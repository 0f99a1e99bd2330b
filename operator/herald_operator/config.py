"""Operator settings (env prefix ``HERALD_OPERATOR_``): one class, read once at start.

Lists are JSON (``'["shop", "staging"]'``) or comma-separated (``shop,staging``);
mappings are JSON (``HERALD_OPERATOR_JOB_ENV='{"HERALD_ENVIRONMENT": "production"}'``).
"""

from __future__ import annotations

import socket
from typing import Annotated, Literal

from herald_common.resources.segments import CATALOG_CATEGORIES
from herald_common.settings import component_config
from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

PullPolicy = Literal["Always", "IfNotPresent", "Never"]


def _split(value: object) -> object:
    """``"a, b"`` → ``["a", "b"]``; JSON lists and real lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class JobResources(BaseModel):
    """``resources`` of every Job container (Kubernetes quantities)."""

    requests: dict[str, str] = Field(default_factory=lambda: {"cpu": "50m", "memory": "128Mi"})
    limits: dict[str, str] = Field(default_factory=lambda: {"cpu": "500m", "memory": "256Mi"})


class OperatorSettings(BaseSettings):
    """Everything the operator reads; see ``operator/README.md`` for each variable."""

    model_config = component_config("OPERATOR")

    log_level: str = "INFO"
    log_json: bool = True

    # --- what to watch ----------------------------------------------------------------
    # Namespaces to watch; empty = every namespace (cluster-wide).
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Port of /healthz and /readyz (none = no probe server).
    health_port: int | None = Field(default=None, ge=1, le=65535)

    # --- one active replica -----------------------------------------------------------
    leader_election: bool = True
    lease_name: str = "herald-operator"
    lease_namespace: str = "default"
    identity: str = Field(default_factory=lambda: socket.gethostname())
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    renew_seconds: float = Field(default=5.0, gt=0)
    retry_seconds: float = Field(default=2.0, gt=0)

    # --- the pods of Jobs -------------------------------------------------------------
    # Namespace of every CronJob and Job (the operator's own, where the Job environment
    # is); none = each resource's own namespace, which then needs that environment.
    job_namespace: str | None = None
    # How long a check that the Job environment exists is reused (per namespace).
    job_env_check_seconds: float = Field(default=10.0, ge=0)
    # How often resources waiting for their Job environment (JobEnvMissing) look again.
    job_env_retry_seconds: float = Field(default=15.0, gt=0)
    # How often children whose resource is gone are looked for (children in another
    # namespace than their resource have no owner reference the garbage collector follows).
    orphan_sweep_seconds: float = Field(default=300.0, gt=0)
    # Image of each component whose command a Job runs: a campaign runs the
    # scheduler's fire command, a Schedule its task's component (see TASK_COMPONENTS).
    scheduler_image: str | None = None
    recommendations_image: str | None = None
    notifications_image: str | None = None
    image_pull_policy: PullPolicy = "IfNotPresent"
    image_pull_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    service_account: str | None = None
    job_resources: JobResources = Field(default_factory=JobResources)
    # Environment of the pods: how to reach RabbitMQ and MongoDB (HERALD_AMQP_URL,
    # HERALD_MONGODB_URI, ...). Secrets and ConfigMaps are mounted whole (envFrom).
    job_env: dict[str, str] = Field(default_factory=dict)
    job_env_from_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    job_env_from_config_maps: Annotated[list[str], NoDecode] = Field(default_factory=list)
    run_as_user: int = Field(default=10001, ge=1)

    # --- CronJobs and Jobs ------------------------------------------------------------
    successful_jobs_history: int = Field(default=3, ge=0, le=100)
    failed_jobs_history: int = Field(default=3, ge=0, le=100)
    # A run that could not start within this long after its slot is skipped (CronJob
    # startingDeadlineSeconds; also how late a one-shot campaign may still start).
    starting_deadline_seconds: int = Field(default=300, ge=10)
    backoff_limit: int = Field(default=2, ge=0, le=20)
    active_deadline_seconds: int = Field(default=3600, ge=10)
    # Jobs the operator creates itself (one-shot, run-now) are removed this long after
    # they finished (CronJob Jobs are kept by the history limits instead).
    job_ttl_seconds: int = Field(default=86400, ge=0)
    # How long a campaign pod waits for the scheduler's fan-out to report its counts.
    fire_wait_seconds: int = Field(default=600, ge=0)
    # How often one-shot campaigns are checked for being due.
    one_shot_check_seconds: float = Field(default=10.0, gt=0)

    # --- validation -------------------------------------------------------------------
    # Segment categories a campaign may target; empty = do not check.
    segment_categories: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(CATALOG_CATEGORIES)
    )

    # --- Kubernetes API ---------------------------------------------------------------
    # Outside a pod: the kubeconfig file (also read from the usual KUBECONFIG).
    kubeconfig: str | None = Field(
        default=None, validation_alias=AliasChoices("HERALD_OPERATOR_KUBECONFIG", "KUBECONFIG")
    )
    # Client-side rate limit of the operator's own API calls (token bucket).
    api_qps: float = Field(default=50.0, gt=0)
    api_burst: int = Field(default=100, ge=1)
    # Handlers run in threads; this many at a time.
    max_workers: int = Field(default=8, ge=1, le=256)

    @field_validator(
        "namespaces",
        "image_pull_secrets",
        "job_env_from_secrets",
        "job_env_from_config_maps",
        "segment_categories",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split(value)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def watched_namespaces(self) -> list[str]:
        """The namespaces kopf watches: the listed ones and the Jobs' (empty = all)."""
        if self.clusterwide or not self.job_namespace or self.job_namespace in self.namespaces:
            return list(self.namespaces)
        return [*self.namespaces, self.job_namespace]

    def jobs_namespace_of(self, namespace: str) -> str:
        """Where the Jobs of a resource in ``namespace`` run."""
        return self.job_namespace or namespace

    def image_for(self, component: str) -> str | None:
        """The image of ``component`` (``scheduler``, ``recommendations``,
        ``notifications``), if set."""
        return {
            "scheduler": self.scheduler_image,
            "recommendations": self.recommendations_image,
            "notifications": self.notifications_image,
        }.get(component)

    @staticmethod
    def image_variable(component: str) -> str:
        """The variable that sets ``component``'s image (for messages)."""
        return f"HERALD_OPERATOR_{component.upper()}_IMAGE"
