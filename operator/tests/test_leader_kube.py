"""Leader election on a real Lease, and ``herald-operator`` as a whole: of two
replicas only one operates; the other takes over when the first stops."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from herald_operator.cli import run
from herald_operator.config import OperatorSettings
from herald_operator.leader import LeaseElector
from herald_testing.kube import KubeControlPlane, wait_until
from herald_testing.ports import free_port

from .kube_helpers import Cluster, schedule_body

pytestmark = pytest.mark.kube


def test_one_holder_at_a_time_and_takeover_after_expiry(kube_api: Any, kube_namespace: str) -> None:
    now = [datetime.now(UTC)]
    lease = f"lease-{secrets.token_hex(3)}"

    def elector(identity: str) -> LeaseElector:
        return LeaseElector(
            kube_api,
            name=lease,
            namespace=kube_namespace,
            identity=identity,
            duration=10,
            clock=lambda: now[0],
        )

    a, b = elector("a"), elector("b")
    assert a.try_acquire() and a.leading
    assert not b.try_acquire() and b.holder() == "a"
    assert a.try_acquire()  # renewing
    now[0] += timedelta(seconds=30)  # a stopped renewing: the lease expired
    assert b.holder() is None
    assert b.try_acquire() and b.holder() == "b"
    assert not a.try_acquire() and not a.leading
    b.release()
    assert a.holder() is None and a.try_acquire()


def _probe(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Replica:
    """``herald-operator`` in its own thread and event loop, as in its own pod (kopf
    runs one operator per event loop)."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._main, name=settings.identity, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        async def main() -> int:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            return await run(self.settings, self.stop_event)

        self.exit_code = asyncio.run(main())

    def stop(self, timeout: float = 60) -> int | None:
        wait_until(lambda: self.stop_event is not None, 10, what="the replica to start")
        assert self.loop is not None and self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout)
        return self.exit_code


def test_two_operators_only_one_acts(
    kube_control_plane: KubeControlPlane,
    kube_api: Any,
    kube_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = Cluster(kube_api, kube_namespace)
    monkeypatch.setenv("KUBECONFIG", kube_control_plane.kubeconfig)

    ports = {"replica-a": free_port(), "replica-b": free_port()}

    def settings(identity: str) -> OperatorSettings:
        return OperatorSettings(
            namespaces=[kube_namespace],
            identity=identity,
            health_port=ports[identity],
            lease_name="herald-operator",
            lease_namespace=kube_namespace,
            lease_duration_seconds=4,
            renew_seconds=1,
            retry_seconds=0.5,
            scheduler_image="registry.invalid/herald/scheduler:test",
            log_json=False,
        )

    holder = LeaseElector(
        kube_api, name="herald-operator", namespace=kube_namespace, identity="probe"
    )
    first = Replica(settings("replica-a"))
    wait_until(lambda: holder.holder() == "replica-a", 30, what="replica-a to lead")
    second = Replica(settings("replica-b"))
    cluster.create(schedule_body("sweep"))
    wait_until(lambda: cluster.cronjob("schedule-sweep") is not None, 30, what="the CronJob")
    time.sleep(2)  # give the standby every chance to (wrongly) act too
    assert holder.holder() == "replica-a" and second.thread.is_alive()
    # Both are alive; only the leader is ready.
    assert _probe(ports["replica-a"], "/healthz") == _probe(ports["replica-b"], "/healthz") == 200
    assert (_probe(ports["replica-a"], "/readyz"), _probe(ports["replica-b"], "/readyz")) == (
        200,
        503,
    )
    events = cluster.events("sweep")
    assert {e.reporting_instance for e in events if e.reporting_component == "herald-operator"} == {
        "replica-a"
    }

    # The leader stops (and releases the lease): the standby takes over and acts.
    assert first.stop() == 0
    wait_until(lambda: holder.holder() == "replica-b", 30, what="replica-b to lead")
    cluster.patch("Schedule", "sweep", {"spec": {"schedule": "*/7 * * * *"}})
    wait_until(
        lambda: cluster.cronjob("schedule-sweep").spec.schedule == "*/7 * * * *",
        30,
        what="replica-b to update the CronJob",
    )
    assert second.stop() == 0


def test_watches_exactly_the_configured_namespaces(
    kube_control_plane: KubeControlPlane, kube_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(kube_api)
    names = [f"t-ns{i}-{secrets.token_hex(3)}" for i in range(3)]
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
    monkeypatch.setenv("KUBECONFIG", kube_control_plane.kubeconfig)
    watched, other = names[:2], names[2]
    replica = Replica(
        OperatorSettings(
            namespaces=watched,
            leader_election=False,
            scheduler_image="registry.invalid/herald/scheduler:test",
            log_json=False,
        )
    )
    try:
        clusters = {n: Cluster(kube_api, n) for n in names}
        for cluster in clusters.values():
            cluster.create(schedule_body("sweep"))
        for name in watched:
            wait_until(
                lambda n=name: clusters[n].cronjob("schedule-sweep") is not None,
                30,
                what=f"the CronJob in {name}",
            )
        time.sleep(2)
        assert clusters[other].cronjob("schedule-sweep") is None
        assert clusters[other].status("Schedule", "sweep") == {}
    finally:
        assert replica.stop() == 0
        for name in names:
            core.delete_namespace(name, propagation_policy="Background")
