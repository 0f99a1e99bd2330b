"""The local runner: NotificationCampaign and Schedule files fired without Kubernetes.

``herald-scheduler run-local --dir examples/`` reads every ``*.yaml`` under the given
folders (re-reading them every few seconds, so edits apply live), validates them
against the CRDs, and fires each one on its schedule:

* a cron ``schedule`` in its ``timeZone`` (croniter), the way a CronJob would;
* or, when the ``herald.io/local-interval`` annotation is set (``10s``, ``5m``), every
  interval instead — for demos; Kubernetes ignores the annotation;
* a campaign's one-shot ``runAt`` once (also when it is up to ``grace`` late);
* a Schedule's ``requestedRunAt``, once per new value, as an immediate run.

Firing a campaign publishes ``campaign.fired`` through the same
:func:`herald_common.resources.firing.fire_resource` the CLI and the API use (run id = name + scheduled slot, so two
runners firing the same slot de-duplicate). An ``order-sweep`` runs in-process; other
tasks run their command as a subprocess when it is installed, and otherwise log that
they were skipped. Like a CronJob with ``concurrencyPolicy: Forbid``, a firing is
skipped while the previous run of the same resource is still going; missed slots
(the process was paused) fire once, not once per slot.

:class:`Plan` is the pure part (what is due at a given instant), tested with an
injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from herald_common.clock import SleepingClock, SystemClock
from herald_common.resources import (
    NotificationCampaign,
    Resource,
    ResourceError,
    Schedule,
    load_directories,
)
from herald_common.resources.cron import (
    latest_fire,
    next_fire,
    next_interval_fire,
    slot_run_id,
)

from herald_scheduler.tasks import TaskOutcome

log = logging.getLogger(__name__)

Reason = Literal["schedule", "interval", "one-shot", "requested"]


@dataclass(frozen=True)
class Firing:
    """One resource due at one scheduled instant."""

    resource: Resource
    slot: datetime
    reason: Reason

    @property
    def run_id(self) -> str:
        if self.reason == "requested":
            return slot_run_id(f"{self.resource.name}-requested", self.slot, seconds=True)
        sub_minute = self.reason == "interval" or self.slot.second != 0
        return slot_run_id(self.resource.name, self.slot, seconds=sub_minute)


@dataclass
class _Entry:
    resource: Resource
    fingerprint: str
    next_at: datetime | None
    reason: Reason
    requested_seen: datetime | None = None
    pending: list[Firing] = field(default_factory=list)


def _fingerprint(resource: Resource) -> str:
    return resource.model_dump_json(exclude={"source"})


class Plan:
    """When each loaded resource fires next. Pure: every method takes ``now``."""

    def __init__(self, *, grace: timedelta = timedelta(minutes=5)) -> None:
        self.grace = grace
        self.entries: dict[str, _Entry] = {}

    def _first(self, resource: Resource, now: datetime) -> tuple[datetime | None, Reason]:
        spec = resource.spec
        if spec.suspend:
            return None, "schedule"
        interval = resource.local_interval
        if interval is not None:
            return next_interval_fire(interval, now), "interval"
        if isinstance(resource, NotificationCampaign) and resource.spec.run_at is not None:
            run_at = resource.spec.run_at
            return (run_at if run_at >= now - self.grace else None), "one-shot"
        assert spec.schedule is not None
        return next_fire(spec.schedule, spec.time_zone, now), "schedule"

    def sync(self, resources: Iterable[Resource], now: datetime) -> None:
        """Adopt the current set of resources; unchanged ones keep their next instant."""
        current: dict[str, _Entry] = {}
        for res in resources:
            old = self.entries.get(res.ref)
            fp = _fingerprint(res)
            if old is not None and old.fingerprint == fp:
                old.resource = res
                current[res.ref] = old
                continue
            next_at, reason = self._first(res, now)
            entry = _Entry(res, fp, next_at, reason)
            if old is not None:
                entry.requested_seen = old.requested_seen
            if isinstance(res, Schedule):
                requested = res.spec.requested_run_at
                if requested is not None and requested != entry.requested_seen:
                    # On first sight, an old request was already served by someone.
                    first_sight = old is None
                    if not (first_sight and requested < now - self.grace) and not res.spec.suspend:
                        entry.pending.append(Firing(res, requested, "requested"))
                    entry.requested_seen = requested
            current[res.ref] = entry
        self.entries = current

    def due(self, now: datetime) -> list[Firing]:
        """The firings due at ``now``; advances each entry past ``now``."""
        out: list[Firing] = []
        for entry in self.entries.values():
            out.extend(entry.pending)
            entry.pending.clear()
            if entry.next_at is None or entry.next_at > now:
                continue
            res = entry.resource
            if entry.reason == "one-shot":
                out.append(Firing(res, entry.next_at, "one-shot"))
                entry.next_at = None
                continue
            if entry.reason == "interval":
                interval = res.local_interval
                assert interval is not None  # the reason is "interval" only when it is set
                # Several missed slots fire once, for the latest of them (≤ now).
                slot = next_interval_fire(interval, now - interval)
                out.append(Firing(res, slot, "interval"))
                entry.next_at = next_interval_fire(interval, now)
                continue
            spec = res.spec
            assert spec.schedule is not None
            slot = latest_fire(spec.schedule, spec.time_zone, now)
            out.append(Firing(res, max(slot, entry.next_at), "schedule"))
            entry.next_at = next_fire(spec.schedule, spec.time_zone, now)
        return out

    def next_wakeup(self) -> datetime | None:
        times = [e.next_at for e in self.entries.values() if e.next_at is not None]
        if any(e.pending for e in self.entries.values()):
            return datetime.min.replace(tzinfo=UTC)
        return min(times) if times else None


class Actions(Protocol):
    """What the runner does when something fires (the service's real one is in cli)."""

    async def campaigns_loaded(self, campaigns: Sequence[NotificationCampaign]) -> None: ...

    async def fire_campaign(self, campaign: NotificationCampaign, firing: Firing) -> None: ...

    async def run_task(self, schedule: Schedule, firing: Firing) -> TaskOutcome: ...


class LocalRunner:
    """Loads resource files and fires them through :class:`Actions` on time."""

    def __init__(
        self,
        directories: Sequence[str | Path],
        actions: Actions,
        *,
        clock: SleepingClock | None = None,
        reload_seconds: float = 5.0,
        grace: timedelta = timedelta(minutes=5),
    ) -> None:
        self.directories = list(directories)
        self.actions = actions
        self.clock = clock or SystemClock()
        self.reload_seconds = reload_seconds
        self.plan = Plan(grace=grace)
        self.running: dict[str, asyncio.Task[None]] = {}
        self._reported: set[str] = set()
        self._unavailable: set[str] = set()

    async def reload(self, now: datetime) -> list[ResourceError]:
        """Re-read the files; invalid ones are logged (once each) and left out."""
        resources, errors = load_directories(self.directories)
        for err in errors:
            if str(err) not in self._reported:
                self._reported.add(str(err))
                log.error("invalid resource file: %s", err)
        known = {r.ref for r in resources}
        added = known - set(self.plan.entries)
        self.plan.sync(resources, now)
        for ref in sorted(added):
            entry = self.plan.entries[ref]
            log.info(
                "loaded %s (%s): next run %s",
                ref,
                entry.resource.source,
                entry.next_at.isoformat() if entry.next_at else "none (suspended or expired)",
            )
        campaigns = [r for r in resources if isinstance(r, NotificationCampaign)]
        if campaigns:
            await self.actions.campaigns_loaded(campaigns)
        return errors

    def start_due(self, now: datetime) -> list[Firing]:
        """Start every firing due at ``now`` (as tasks); returns those started."""
        started = []
        for firing in self.plan.due(now):
            ref = firing.resource.ref
            if ref in self.running and not self.running[ref].done():
                log.warning("%s: previous run still going; skipping slot %s", ref, firing.run_id)
                continue
            self.running[ref] = asyncio.create_task(self._execute(firing), name=f"run-{ref}")
            started.append(firing)
        return started

    async def _execute(self, firing: Firing) -> None:
        res = firing.resource
        try:
            if isinstance(res, NotificationCampaign):
                await self.actions.fire_campaign(res, firing)
                log.info("%s fired (run %s)", res.ref, firing.run_id)
                return
            assert isinstance(res, Schedule)
            outcome = await self.actions.run_task(res, firing)
            if outcome.status == "unavailable":
                if res.ref not in self._unavailable:
                    self._unavailable.add(res.ref)
                    log.warning(
                        "%s: task %s skipped: %s; install it to run this schedule locally "
                        "(reported once)",
                        res.ref,
                        res.spec.task,
                        outcome.detail,
                    )
            elif outcome.status == "failed":
                log.error("%s: task %s failed: %s", res.ref, res.spec.task, outcome.detail)
            else:
                log.info("%s: task %s done %s", res.ref, res.spec.task, outcome.detail[-300:])
        except Exception:
            log.exception("%s: run %s failed", res.ref, firing.run_id)

    async def wait_idle(self) -> None:
        """Wait for the runs started so far (tests, shutdown)."""
        tasks = [t for t in self.running.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        next_reload = self.clock.now()
        while not stop.is_set():
            now = self.clock.now()
            if now >= next_reload:
                await self.reload(now)
                next_reload = now + timedelta(seconds=self.reload_seconds)
            self.start_due(now)
            wake = self.plan.next_wakeup()
            target = min(wake, next_reload) if wake is not None else next_reload
            delay = max(0.0, (target - self.clock.now()).total_seconds())
            stopper = asyncio.ensure_future(stop.wait())
            sleeper = asyncio.ensure_future(self.clock.sleep(delay))
            await asyncio.wait({stopper, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (stopper, sleeper):
                fut.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fut
        await self.wait_idle()
