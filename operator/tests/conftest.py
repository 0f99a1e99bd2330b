"""Shared helpers of the operator's tests: resources as the API server returns them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from herald_common.resources import NotificationCampaign, Schedule, from_object
from herald_operator.config import OperatorSettings
from herald_testing.kube import KubeControlPlane

from .kube_helpers import install_crds

CAMPAIGN_BODY: dict[str, Any] = {
    "apiVersion": "herald.io/v1alpha1",
    "kind": "NotificationCampaign",
    "metadata": {"name": "flash-sale", "namespace": "shop", "uid": "uid-1", "generation": 2},
    "spec": {
        "type": "promotion",
        "schedule": "0 * * * *",
        "timeZone": "Europe/Paris",
        "audience": {"categories": ["Books"], "userIds": []},
        "template": {"title": "Hi {first_name}", "body": "Sale on {favorite_category}", "data": {}},
        "suspend": False,
        "dryRun": False,
    },
}
SCHEDULE_BODY: dict[str, Any] = {
    "apiVersion": "herald.io/v1alpha1",
    "kind": "Schedule",
    "metadata": {"name": "order-sweep", "namespace": "shop", "uid": "uid-2", "generation": 1},
    "spec": {
        "task": "order-sweep",
        "schedule": "* * * * *",
        "timeZone": "UTC",
        "parameters": {"batchSize": 500},
        "suspend": False,
    },
}


def campaign(**spec: Any) -> NotificationCampaign:
    body = copy.deepcopy(CAMPAIGN_BODY)
    body["spec"].update(spec)
    for key in [k for k, v in spec.items() if v is None]:
        body["spec"].pop(key)
    resource = from_object(body)
    assert isinstance(resource, NotificationCampaign)
    return resource


def schedule(**spec: Any) -> Schedule:
    body = copy.deepcopy(SCHEDULE_BODY)
    body["spec"].update(spec)
    resource = from_object(body)
    assert isinstance(resource, Schedule)
    return resource


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings(
        scheduler_image="registry.example/herald/scheduler:1.0",
        recommendations_image="registry.example/herald/recommendations:1.0",
        notifications_image="registry.example/herald/notifications:1.0",
        job_env={"HERALD_ENVIRONMENT": "production"},
        job_env_from_secrets=["herald-infra"],
        service_account="herald-jobs",
    )


@pytest.fixture(scope="module")
def kube_api(kube_control_plane: KubeControlPlane) -> Iterator[Any]:
    """An API client of the test control plane, with Herald's CRDs installed."""
    with kube_control_plane.api_client() as api:
        install_crds(api)
        yield api
