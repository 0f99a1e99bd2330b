"""The operator's own Kubernetes API calls: rate-limited, retried, plain dicts.

Children are written with server-side apply (field manager ``herald-operator``,
forced), so creating and updating are one idempotent call and a changed spec updates
the CronJob in place (same uid). Every call goes through a token bucket
(``api_qps``/``api_burst``) shared by all handler threads, and ``429``/``5xx`` answers
are retried after the server's ``Retry-After`` (or a short back-off), so a burst of
reconciles (hundreds of campaigns at start) queues up instead of storming the API
server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from herald_operator.constants import FIELD_MANAGER, GROUP, JOB_NAME_LABEL, PLURALS, VERSION

log = logging.getLogger(__name__)

RETRIES = 5
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


class TokenBucket:
    """A thread-safe token bucket: ``qps`` tokens a second, at most ``burst`` saved."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.lock = threading.Lock()

    def delay(self) -> float:
        """Take a token; the seconds to wait before using it."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.qps)
            self.updated = now
            self.tokens -= 1
            return 0.0 if self.tokens >= 0 else -self.tokens / self.qps

    def acquire(self) -> None:
        wait = self.delay()
        if wait > 0:
            time.sleep(wait)


def _retry_after(exc: ApiException, attempt: int) -> float:
    header = (exc.headers or {}).get("Retry-After") if exc.headers else None
    try:
        return max(0.1, float(header)) if header else min(5.0, 0.2 * 2**attempt)
    except ValueError:
        return min(5.0, 0.2 * 2**attempt)


def _body(response: Any) -> dict[str, Any]:
    data = response.data if hasattr(response, "data") else response
    parsed: dict[str, Any] = json.loads(data) if data else {}
    return parsed


class Kube:
    """The calls the reconcilers make, on one ``ApiClient``."""

    def __init__(self, api: ApiClient, *, qps: float = 50.0, burst: int = 100) -> None:
        self.api = api
        # Typed as Any: the calls send plain dicts and read raw JSON (_preload_content).
        self.batch: Any = client.BatchV1Api(api)
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.bucket = TokenBucket(qps, burst)
        self.requests = 0
        self.throttled = 0

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` rate-limited, retried on 429 and 5xx."""
        for attempt in range(RETRIES + 1):
            self.bucket.acquire()
            self.requests += 1
            try:
                return fn(*args, _preload_content=False, **kwargs)
            except ApiException as exc:
                retriable = exc.status == 429 or (exc.status or 0) >= 500
                if not retriable or attempt == RETRIES:
                    raise
                if exc.status == 429:
                    self.throttled += 1
                wait = _retry_after(exc, attempt)
                log.warning("API answered %s; retrying in %.1fs", exc.status, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    # --- children --------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a CronJob or Job in place (server-side apply)."""
        meta = manifest["metadata"]
        patch = {
            "CronJob": self.batch.patch_namespaced_cron_job,
            "Job": self.batch.patch_namespaced_job,
        }[manifest["kind"]]
        return _body(
            self.call(
                patch,
                meta["name"],
                meta["namespace"],
                dict(manifest),
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        )

    def create_job(self, manifest: Mapping[str, Any]) -> bool:
        """Create a Job; False when it already exists (the request was handled)."""
        try:
            self.call(
                self.batch.create_namespaced_job,
                manifest["metadata"]["namespace"],
                dict(manifest),
                field_manager=FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a CronJob or Job with its dependents; False when it was not there."""
        delete = {
            "CronJob": self.batch.delete_namespaced_cron_job,
            "Job": self.batch.delete_namespaced_job,
        }[kind]
        try:
            self.call(delete, name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _body(self.call(self.batch.read_namespaced_job, name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def termination_message(self, namespace: str, job_name: str) -> str | None:
        """The termination message of the newest finished pod of a Job."""
        pods = _body(
            self.call(
                self.core.list_namespaced_pod,
                namespace,
                label_selector=f"{JOB_NAME_LABEL}={job_name}",
            )
        ).get("items", [])
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)
        for pod in pods:
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                terminated = (status.get("state") or {}).get("terminated")
                if terminated and terminated.get("message"):
                    return str(terminated["message"])
        return None

    def exists(self, kind: str, namespace: str, name: str) -> bool | None:
        """Whether a Secret, ConfigMap or ServiceAccount exists (None: not readable)."""
        read = {
            "Secret": self.core.read_namespaced_secret,
            "ConfigMap": self.core.read_namespaced_config_map,
            "ServiceAccount": self.core.read_namespaced_service_account,
        }[kind]
        try:
            _body(self.call(read, name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 403:
                return None
            raise
        return True

    def list_children(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """The CronJobs or Jobs in ``namespace`` matching the label ``selector``."""
        list_ = {
            "CronJob": self.batch.list_namespaced_cron_job,
            "Job": self.batch.list_namespaced_job,
        }[kind]
        items: list[dict[str, Any]] = _body(
            self.call(list_, namespace, label_selector=selector)
        ).get("items", [])
        return items

    # --- the resources -----------------------------------------------------------------

    def get_resource(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _body(
                self.call(
                    self.custom.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURALS[kind],
                    name,
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> None:
        """Merge ``status`` into the resource's status (optimistically when
        ``resource_version`` is given: a 409 means someone wrote in between)."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self.call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
            body,
            _content_type=MERGE,
        )

    def remove_annotation(self, kind: str, namespace: str, name: str, key: str) -> None:
        self.call(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
            {"metadata": {"annotations": {key: None}}},
            _content_type=MERGE,
        )

    def post_event(self, event: Mapping[str, Any]) -> None:
        """Post an Event; a failure is logged, never raised (events are best effort)."""
        try:
            self.call(
                self.core.create_namespaced_event, event["metadata"]["namespace"], dict(event)
            )
        except ApiException as exc:
            log.warning("could not post event %s: %s", event["reason"], exc.reason)
