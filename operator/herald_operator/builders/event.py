"""Kubernetes Events: one for each thing the operator does to a resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from herald_operator.constants import OPERATOR_NAME

EventType = Literal["Normal", "Warning"]
# Event messages are limited to 1 KiB by the API server.
MESSAGE_MAX = 1024


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_event(
    involved: dict[str, Any],
    *,
    type_: EventType,
    reason: str,
    message: str,
    now: datetime,
    suffix: str,
    instance: str,
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (``{apiVersion, kind, name, namespace, uid}``).

    ``suffix`` makes the name unique (``<object>.<suffix>``, as kubectl names them);
    ``instance`` is the operator replica that acted.
    """
    stamp = _time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{involved['name']}.{suffix}",
            "namespace": involved["namespace"],
            "labels": {"app.kubernetes.io/managed-by": OPERATOR_NAME},
        },
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": involved["name"],
            "namespace": involved["namespace"],
            "uid": involved.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MESSAGE_MAX],
        "source": {"component": OPERATOR_NAME},
        "reportingComponent": OPERATOR_NAME,
        "reportingInstance": instance,
        "action": reason,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
    }
