"""Shared fixtures for the Kubernetes tests (see herald_testing.kube for the control plane)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_testing.kube import KubeControlPlane, apply_crd, served, wait_until

FIXTURES = Path(__file__).parent / "fixtures"
WIDGET_CRD = FIXTURES / "widget-crd.yaml"

WIDGET_GROUP = "test.herald.dev"
WIDGET_VERSION = "v1"
WIDGET_PLURAL = "widgets"


@pytest.fixture(scope="session")
def kube_api(kube_control_plane: KubeControlPlane) -> Iterator[Any]:
    """One ApiClient for the session."""
    with kube_control_plane.api_client() as api:
        yield api


@pytest.fixture(scope="session")
def widget_crd(kube_api: Any) -> dict[str, Any]:
    """Install the Widget CRD (once per session) and wait until it is served."""
    from kubernetes import client

    body = yaml.safe_load(WIDGET_CRD.read_text())
    ext: Any = client.ApiextensionsV1Api(kube_api)
    name = body["metadata"]["name"]
    apply_crd(ext, body)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        conditions = (crd.status and crd.status.conditions) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(established, timeout=30, what=f"CRD {name} to be established")
    # Established can come a moment before the new resource is in discovery.
    custom: Any = client.CustomObjectsApi(kube_api)
    wait_until(
        lambda: served(custom, WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL),
        timeout=30,
        what="the widgets resource to be served",
    )
    return body
