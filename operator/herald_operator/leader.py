"""One active operator at a time: leader election on a ``coordination.k8s.io`` Lease.

Like client-go's leader election: a replica holds the Lease while it renews it at least
every ``lease_duration_seconds``; another replica takes it over only once it expired.
``herald-operator`` runs kopf only while it holds the Lease, and stops (exit code 1, so
the Deployment restarts it as a standby) when it cannot renew in time. Releasing on
shutdown lets a standby take over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_common.clock import Clock, utcnow
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


def _micro(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class LeaseElector:
    """Acquire, renew and release one Lease for ``identity``."""

    api: ApiClient
    name: str
    namespace: str
    identity: str
    duration: float = 15.0
    clock: Clock = utcnow

    def __post_init__(self) -> None:
        # Typed as Any: the calls send and receive plain dicts (raw JSON).
        self.coordination: Any = client.CoordinationV1Api(self.api)
        self.leading = False

    def _read(self) -> dict[str, Any] | None:
        try:
            response = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        lease: dict[str, Any] = json.loads(response.data)
        return lease

    def holder(self) -> str | None:
        """Who holds the Lease now (None: nobody, or it expired)."""
        lease = self._read()
        if lease is None:
            return None
        spec = lease.get("spec") or {}
        renewed = _parse(spec.get("renewTime"))
        duration = spec.get("leaseDurationSeconds") or self.duration
        if not spec.get("holderIdentity") or renewed is None:
            return None
        if renewed + timedelta(seconds=duration) < self.clock():
            return None
        return str(spec["holderIdentity"])

    def try_acquire(self) -> bool:
        """Take or renew the Lease; True when this identity holds it afterwards."""
        now = self.clock()
        lease = self._read()
        spec_now = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": _micro(now),
        }
        try:
            if lease is None:
                self.coordination.create_namespaced_lease(
                    self.namespace,
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": {**spec_now, "acquireTime": _micro(now), "leaseTransitions": 0},
                    },
                )
                self.leading = True
                return True
            spec = lease.get("spec") or {}
            mine = spec.get("holderIdentity") == self.identity
            if not mine and self.holder() is not None:
                self.leading = False
                return False
            new_spec = {**spec, **spec_now}
            if not mine:
                new_spec["acquireTime"] = _micro(now)
                new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            # Replacing with the read resourceVersion: of two replicas taking over an
            # expired Lease at once, one gets 409 Conflict.
            lease["spec"] = new_spec
            self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status in (409, 422):
                self.leading = False
                return False
            raise
        if not self.leading:
            log.info("acquired lease %s/%s as %s", self.namespace, self.name, self.identity)
        self.leading = True
        return True

    def release(self) -> None:
        """Give the Lease up (if held) so that a standby takes over without waiting."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["leaseDurationSeconds"] = 1
            self.coordination.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            log.warning("could not release lease %s: %s", self.name, exc.reason)

    async def acquire(self, stop: asyncio.Event, retry_seconds: float) -> bool:
        """Wait until this replica leads (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.try_acquire):
                    return True
            except ApiException as exc:
                log.warning("lease %s: API error %s", self.name, exc.status)
            if not announced:
                log.info(
                    "standing by: lease %s/%s is held by another replica", self.namespace, self.name
                )
                announced = True
            # Wait for the next attempt, or end early when asked to stop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
        return False

    async def hold(self, lost: asyncio.Event, renew_seconds: float) -> None:
        """Renew every ``renew_seconds``; set ``lost`` once the Lease could not be
        renewed within its duration (another replica may lead by then)."""
        last_renewed = self.clock()
        while True:
            await asyncio.sleep(renew_seconds)
            try:
                renewed = await asyncio.to_thread(self.try_acquire)
            except Exception as exc:  # noqa: BLE001 - keep renewing through API hiccups
                log.warning("lease %s: renewing failed: %s", self.name, exc)
                renewed = False
            now = self.clock()
            if renewed:
                last_renewed = now
            elif not self.leading or now - last_renewed > timedelta(seconds=self.duration):
                log.error("lost lease %s/%s; stopping", self.namespace, self.name)
                lost.set()
                return
