"""What every handler needs, made once at start and kept in kopf's ``memo``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald_common.clock import Clock, utcnow
from kubernetes import client, config

from herald_operator.builders.common import SpecError, digest
from herald_operator.builders.event import EventType, build_event
from herald_operator.config import OperatorSettings
from herald_operator.kube import Kube


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """With ``kubeconfig`` that file; else in a pod its service account, elsewhere
    ``~/.kube/config``."""
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config()


@dataclass
class Context:
    """Settings, the API and the clock of one operator process."""

    settings: OperatorSettings
    kube: Kube
    clock: Clock = field(default=utcnow)
    events_posted: int = 0
    # Namespace -> (monotonic time of the check, its JobEnvMissing error or None).
    env_checks: dict[str, tuple[float, SpecError | None]] = field(default_factory=dict)
    # Resources whose status says JobEnvMissing: (kind, namespace, name).
    env_waiting: set[tuple[str, str, str]] = field(default_factory=set)

    def event(self, body: Mapping[str, Any], type_: EventType, reason: str, message: str) -> None:
        """Post an Event about the resource ``body``."""
        meta = body["metadata"]
        now = self.clock()
        involved = {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        }
        suffix = digest(f"{meta.get('uid')}:{reason}:{message}:{now.isoformat()}", 16)
        self.kube.post_event(
            build_event(
                involved,
                type_=type_,
                reason=reason,
                message=message,
                now=now,
                suffix=suffix,
                instance=self.settings.identity,
            )
        )
        self.events_posted += 1


def make_context(settings: OperatorSettings | None = None) -> Context:
    """A context from the environment's settings and Kubernetes credentials."""
    settings = settings or OperatorSettings()
    return Context(
        settings,
        Kube(api_client(settings.kubeconfig), qps=settings.api_qps, burst=settings.api_burst),
    )
