"""The test control plane serves CRDs, custom objects, watches and validation."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from herald_testing.kube import KubeControlPlane, KubeTools

pytestmark = pytest.mark.kube

GROUP, VERSION, PLURAL = "test.herald.dev", "v1", "widgets"


def widget(name: str, size: int, color: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"size": size}
    if color is not None:
        spec["color"] = color
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_reports_a_real_kubernetes_version(
    kube_control_plane: KubeControlPlane, kube_api: Any
) -> None:
    from kubernetes import client

    info = client.VersionApi(kube_api).get_code()
    assert info.major == "1"
    assert int(info.minor.rstrip("+")) >= 30
    assert info.git_version.startswith(f"v1.{info.minor.rstrip('+')}.")
    if kube_control_plane.process is not None:
        assert info.git_version == kube_control_plane.version


def test_create_list_and_defaulting_of_custom_objects(
    kube_api: Any, widget_crd: dict[str, Any], kube_namespace: str
) -> None:
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(kube_api)
    for i, (size, color) in enumerate([(1, None), (3, "blue"), (8, "red")]):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, widget(f"w{i}", size, color)
        )
    items = custom.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL)["items"]
    by_name = {w["metadata"]["name"]: w["spec"] for w in items}
    # "color" has a schema default, applied by the server.
    assert by_name == {
        "w0": {"size": 1, "color": "green"},
        "w1": {"size": 3, "color": "blue"},
        "w2": {"size": 8, "color": "red"},
    }

    # The status subresource is separate from the main resource.
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, kube_namespace, PLURAL, "w1", {"status": {"phase": "Ready"}}
    )
    w1 = custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w1")
    assert w1["status"] == {"phase": "Ready"}


def test_watch_sees_added_modified_and_deleted(
    kube_api: Any, widget_crd: dict[str, Any], kube_namespace: str
) -> None:
    from kubernetes import client, watch

    custom: Any = client.CustomObjectsApi(kube_api)
    start_rv = custom.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL)[
        "metadata"
    ]["resourceVersion"]

    events: list[tuple[str, str, int]] = []
    watcher = watch.Watch()

    def consume() -> None:
        for event in watcher.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            resource_version=start_rv,
            timeout_seconds=20,
        ):
            obj = event["object"]
            events.append((event["type"], obj["metadata"]["name"], obj["spec"]["size"]))
            if event["type"] == "DELETED":
                watcher.stop()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, widget("watched", 2)
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "watched", {"spec": {"size": 4}}
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "watched")
    reader.join(timeout=25)

    assert events == [
        ("ADDED", "watched", 2),
        ("MODIFIED", "watched", 4),
        ("DELETED", "watched", 4),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"size": 0},
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        ({"size": 2, "color": "pink"}, 'spec.color: Unsupported value: "pink"'),
        ({"size": 7, "color": "blue"}, "widgets larger than 5 must be red"),
        ({"color": "red"}, "spec.size: Required value"),
    ],
)
def test_server_side_validation_rejects_bad_objects(
    kube_api: Any,
    widget_crd: dict[str, Any],
    kube_namespace: str,
    spec: dict[str, Any],
    message: str,
) -> None:
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(kube_api)
    body = widget("bad", 1)
    body["spec"] = spec
    with pytest.raises(client.ApiException) as excinfo:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    assert excinfo.value.status == 422
    assert message in json.loads(excinfo.value.body)["message"]


def test_kubectl_apply_server_dry_run(
    kube_control_plane: KubeControlPlane,
    kube_tools: KubeTools,
    kube_api: Any,
    widget_crd: dict[str, Any],
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    from kubernetes import client

    manifest = tmp_path / "objects.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                widget("dry", 3),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "dry-config"},
                    "data": {"a": "b"},
                },
            ]
        )
    )
    out = kube_tools.run(
        "kubectl",
        "apply",
        "--dry-run=server",
        "-n",
        kube_namespace,
        "-f",
        str(manifest),
        kubeconfig=kube_control_plane.kubeconfig,
    ).stdout
    assert "widget.test.herald.dev/dry created (server dry run)" in out
    assert "configmap/dry-config created (server dry run)" in out

    # Nothing was stored.
    with pytest.raises(client.ApiException) as excinfo:
        client.CoreV1Api(kube_api).read_namespaced_config_map("dry-config", kube_namespace)
    assert excinfo.value.status == 404

    # The server validates dry runs too.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(widget("too-big", 9, "green")))
    proc = kube_tools.run(
        "kubectl",
        "apply",
        "--dry-run=server",
        "-n",
        kube_namespace,
        "-f",
        str(bad),
        kubeconfig=kube_control_plane.kubeconfig,
        check=False,
    )
    assert proc.returncode != 0
    assert "widgets larger than 5 must be red" in proc.stderr
