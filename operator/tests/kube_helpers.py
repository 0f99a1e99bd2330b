"""Helpers of the operator's tests against the real control plane: the CRDs, a running
operator (kopf's KopfRunner), and a stand-in for the kubelet.

There is no kubelet in the test control plane: Jobs get Pods that never run. To see a
Job succeed or fail, a test writes the pod's status the way a kubelet would (phase,
exit code, termination message); the Job controller then completes or fails the Job,
and the operator reacts to that.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from herald_testing.kube import KubeControlPlane, apply_crd, served, wait_until
from kopf.testing import KopfRunner

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
GROUP, VERSION = "herald.io", "v1alpha1"


def install_crds(api: Any) -> None:
    """Create (or update) the Herald CRDs and wait until both are served."""
    from kubernetes import client

    ext: Any = client.ApiextensionsV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    for path in sorted(CRDS.glob("*.yaml")):
        apply_crd(ext, yaml.safe_load(path.read_text()))

    wait_until(
        lambda: all(
            served(custom, GROUP, VERSION, plural)
            for plural in ("notificationcampaigns", "schedules")
        ),
        timeout=30,
        what="the Herald CRDs to be served",
    )


def create_job_env(
    api: Any,
    namespace: str,
    *,
    secrets: tuple[str, ...] = (),
    config_maps: tuple[str, ...] = (),
    service_account: str | None = None,
) -> None:
    """Create (if missing) what the Job pods reference: Secrets, ConfigMaps and a
    ServiceAccount in ``namespace``."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    bodies: list[tuple[Any, dict[str, Any]]] = [
        (
            core.create_namespaced_secret,
            {"metadata": {"name": n}, "stringData": {"HERALD_AMQP_URL": "amqp://mq/"}},
        )
        for n in secrets
    ]
    bodies += [
        (
            core.create_namespaced_config_map,
            {"metadata": {"name": n}, "data": {"HERALD_ENVIRONMENT": "test"}},
        )
        for n in config_maps
    ]
    if service_account:
        bodies.append(
            (core.create_namespaced_service_account, {"metadata": {"name": service_account}})
        )
    for create, body in bodies:
        with contextlib.suppress(client.ApiException):  # 409: already there
            create(namespace, body)


def create_namespace(api: Any, name: str) -> str:
    """Create namespace ``name`` (labelled as a test namespace) and return it."""
    from kubernetes import client

    client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": name, "labels": {"herald.test/namespace": "true"}}}
    )
    return name


@contextlib.contextmanager
def running_operator(
    plane: KubeControlPlane,
    namespace: str,
    monkeypatch: Any,
    *,
    also_watch: tuple[str, ...] = (),
    job_env: bool = True,
    **env: str | None,
) -> Iterator[KopfRunner]:
    """The operator (``herald_operator.main``) watching ``namespace`` (and
    ``also_watch``) until the block ends; ``env`` sets (or, with None, unsets)
    HERALD_OPERATOR_* variables. With ``job_env`` the Secrets, ConfigMaps and
    ServiceAccount those name are created first in the Jobs' namespace."""
    settings = {
        "SCHEDULER_IMAGE": "registry.invalid/herald/scheduler:test",
        "RECOMMENDATIONS_IMAGE": "registry.invalid/herald/recommendations:test",
        "BACKOFF_LIMIT": "0",
        "JOB_ENV_FROM_SECRETS": "herald-infra",
        **env,
    }
    if job_env:
        with plane.api_client() as api:
            create_job_env(
                api,
                settings.get("JOB_NAMESPACE") or namespace,
                secrets=tuple(_names(settings.get("JOB_ENV_FROM_SECRETS"))),
                config_maps=tuple(_names(settings.get("JOB_ENV_FROM_CONFIG_MAPS"))),
                service_account=settings.get("SERVICE_ACCOUNT"),
            )
    monkeypatch.setenv("KUBECONFIG", plane.kubeconfig)
    for key, value in settings.items():
        if value is None:
            monkeypatch.delenv(f"HERALD_OPERATOR_{key}", raising=False)
        else:
            monkeypatch.setenv(f"HERALD_OPERATOR_{key}", value)
    args = ["run", "--standalone", "-m", "herald_operator.main"]
    for watched in (namespace, *also_watch):
        args += ["--namespace", watched]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def campaign_body(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NotificationCampaign",
        "metadata": {"name": name},
        "spec": {
            "type": "promotion",
            "schedule": "0 * * * *",
            "timeZone": "Europe/Paris",
            "template": {"title": "Hi {first_name}", "body": "Sale in {favorite_category}"},
        },
    }
    body["spec"].update(spec)
    for key in [k for k, v in spec.items() if v is None]:
        del body["spec"][key]
    return body


def schedule_body(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {"task": "order-sweep", "schedule": "*/5 * * * *", "parameters": {"batchSize": 50}},
    }
    body["spec"].update(spec)
    return body


class Cluster:
    """Reads and writes of one test namespace."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.ns = namespace
        self.custom: Any = client.CustomObjectsApi(api)
        self.batch: Any = client.BatchV1Api(api)
        self.core: Any = client.CoreV1Api(api)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        plural = _plural(body["kind"])
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, body
        )
        return created

    def get(self, kind: str, name: str) -> dict[str, Any]:
        got: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, _plural(kind), name
        )
        return got

    def patch(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.ns, _plural(kind), name, patch
        )

    def delete(self, kind: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.ns, _plural(kind), name, propagation_policy="Background"
        )

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return self.get(kind, name).get("status") or {}

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        for c in self.status(kind, name).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return None

    def cronjob(self, name: str) -> Any:
        from kubernetes import client

        try:
            return self.batch.read_namespaced_cron_job(name, self.ns)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def jobs(self, owner: str) -> list[Any]:
        return list(
            self.batch.list_namespaced_job(
                self.ns, label_selector=f"herald.io/owner-name={owner}"
            ).items
        )

    def events(self, name: str) -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(self.ns).items
            if e.involved_object.name == name
        ]

    def finish_pod(
        self, job_name: str, *, exit_code: int = 0, message: dict[str, Any] | None = None
    ) -> None:
        """Act as the kubelet: the Job's pod ran and exited with ``exit_code``."""
        pod = wait_until(
            lambda: next(
                iter(
                    self.core.list_namespaced_pod(
                        self.ns, label_selector=f"batch.kubernetes.io/job-name={job_name}"
                    ).items
                ),
                None,
            ),
            timeout=30,
            what=f"a pod of Job {job_name}",
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
        }
        if message is not None:
            terminated["message"] = json.dumps(message)
        self.core.patch_namespaced_pod_status(
            pod.metadata.name,
            self.ns,
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
                    "containerStatuses": [
                        {
                            "name": "run",
                            "image": pod.spec.containers[0].image,
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": terminated},
                        }
                    ],
                }
            },
        )


def _plural(kind: str) -> str:
    return {"NotificationCampaign": "notificationcampaigns", "Schedule": "schedules"}[kind]
