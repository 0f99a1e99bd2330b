"""When things fire: cron in time zones (DST included), local intervals, and the local
runner's plan — all with an injected clock, nothing sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from herald_common.resources import NotificationCampaign, Schedule, load_text
from herald_common.resources.cron import (
    latest_fire,
    next_fire,
    next_interval_fire,
    parse_interval,
    slot_run_id,
    validate_cron,
)
from herald_common.resources.tasks import task_command
from herald_scheduler.runner import Firing, LocalRunner, Plan
from herald_scheduler.tasks import TaskOutcome

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_fire_is_evaluated_in_the_time_zone() -> None:
    after = utc(2026, 3, 9, 12, 0)  # a Monday, 08:00 in New York (EDT since Mar 8)
    nxt = next_fire("0 9 * * 1", "America/New_York", after)
    assert nxt == datetime(2026, 3, 9, 9, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert nxt == utc(2026, 3, 9, 13, 0)
    # Strictly after: at the instant itself, the next one is a week later.
    assert next_fire("0 9 * * 1", "America/New_York", nxt) == utc(2026, 3, 16, 13, 0)
    # The same expression in UTC fires at another instant.
    assert next_fire("0 9 * * 1", "UTC", after) == utc(2026, 3, 16, 9, 0)


def test_spring_forward_fires_once_after_the_gap() -> None:
    # 2026-03-29: Paris clocks jump from 02:00 to 03:00; 02:30 does not exist.
    after = datetime(2026, 3, 28, 12, 0, tzinfo=PARIS)
    first = next_fire("30 2 * * *", "Europe/Paris", after)
    assert first.astimezone(PARIS).strftime("%m-%d %H:%M") == "03-29 03:00"
    second = next_fire("30 2 * * *", "Europe/Paris", first)
    assert second.astimezone(PARIS).strftime("%m-%d %H:%M") == "03-30 02:30"


def test_fall_back_fires_a_repeated_time_once() -> None:
    # 2026-10-25: Paris clocks go back from 03:00 to 02:00; 02:30 happens twice.
    after = datetime(2026, 10, 24, 12, 0, tzinfo=PARIS)
    first = next_fire("30 2 * * *", "Europe/Paris", after)
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST (UTC+2)
    second = next_fire("30 2 * * *", "Europe/Paris", first)
    assert second.astimezone(PARIS).strftime("%m-%d %H:%M") == "10-26 02:30"


def test_latest_fire_is_the_slot_a_late_pod_belongs_to() -> None:
    late = utc(2026, 3, 9, 13, 0, 42)
    assert latest_fire("0 9 * * 1", "America/New_York", late) == utc(2026, 3, 9, 13, 0)
    assert latest_fire("*/5 * * * *", "UTC", utc(2026, 1, 1, 10, 7)) == utc(2026, 1, 1, 10, 5)
    assert latest_fire("*/5 * * * *", "UTC", utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 10, 5)


def test_validate_cron() -> None:
    assert validate_cron("@hourly") == "@hourly"
    for bad, words in (
        ("@sometimes", "unknown macro"),
        ("* * * *", "5 fields"),
        ("*/10 * * * * *", "5 fields"),
        ("99 * * * *", "invalid"),
        ("0 0 31 2 *", "never fires"),
    ):
        with pytest.raises(ValueError, match=words):
            validate_cron(bad)


def test_intervals_are_aligned_slots() -> None:
    ten = parse_interval("10s")
    assert ten == timedelta(seconds=10)
    assert parse_interval("5m") == timedelta(minutes=5)
    with pytest.raises(ValueError):
        parse_interval("0s")
    assert next_interval_fire(ten, utc(2026, 1, 1, 0, 0, 3)) == utc(2026, 1, 1, 0, 0, 10)
    assert next_interval_fire(ten, utc(2026, 1, 1, 0, 0, 10)) == utc(2026, 1, 1, 0, 0, 20)
    assert slot_run_id("flash", utc(2026, 1, 1, 0, 0, 10), seconds=True) == "flash-20260101t000010z"
    assert slot_run_id("weekly", utc(2026, 3, 9, 13, 0)) == "weekly-20260309t1300z"


def _campaign(extra_meta: str = "", spec: str = 'schedule: "*/5 * * * *"') -> NotificationCampaign:
    [res] = load_text(
        f"""\
apiVersion: herald.io/v1alpha1
kind: NotificationCampaign
metadata:
  name: promo
{extra_meta}spec:
  type: promotion
  {spec}
  template: {{title: "Hi {{name}}", body: "b"}}
"""
    )
    assert isinstance(res, NotificationCampaign)
    return res


def _schedule(extra_spec: str = "") -> Schedule:
    [res] = load_text(
        f"""\
apiVersion: herald.io/v1alpha1
kind: Schedule
metadata: {{name: batch}}
spec:
  task: recommendation-batch
  schedule: "0 * * * *"
{extra_spec}"""
    )
    assert isinstance(res, Schedule)
    return res


def test_plan_fires_cron_slots_once_and_skips_missed_ones() -> None:
    plan = Plan()
    t0 = utc(2026, 1, 1, 10, 1)
    plan.sync([_campaign()], t0)
    assert plan.next_wakeup() == utc(2026, 1, 1, 10, 5)
    assert plan.due(utc(2026, 1, 1, 10, 4, 59)) == []
    [firing] = plan.due(utc(2026, 1, 1, 10, 5))
    assert firing.slot == utc(2026, 1, 1, 10, 5) and firing.run_id == "promo-20260101t1005z"
    assert plan.due(utc(2026, 1, 1, 10, 5, 30)) == []
    # The process was paused for 20 minutes: one firing, for the latest slot.
    [late] = plan.due(utc(2026, 1, 1, 10, 26))
    assert late.slot == utc(2026, 1, 1, 10, 25)
    assert plan.next_wakeup() == utc(2026, 1, 1, 10, 30)


def test_plan_local_interval_and_reload_keep_the_schedule() -> None:
    plan = Plan()
    fast = _campaign("  annotations: {herald.io/local-interval: 10s}\n")
    t0 = utc(2026, 1, 1, 10, 0, 3)
    plan.sync([fast], t0)
    assert plan.next_wakeup() == utc(2026, 1, 1, 10, 0, 10)
    [f1] = plan.due(utc(2026, 1, 1, 10, 0, 10))
    assert f1.run_id == "promo-20260101t100010z" and f1.reason == "interval"
    # Re-reading an unchanged file keeps the next instant (no double fire, no skip).
    plan.sync([fast], utc(2026, 1, 1, 10, 0, 15))
    assert plan.next_wakeup() == utc(2026, 1, 1, 10, 0, 20)
    [f2] = plan.due(utc(2026, 1, 1, 10, 0, 21))
    assert f2.slot == utc(2026, 1, 1, 10, 0, 20)
    # Removing the file removes it from the plan.
    plan.sync([], utc(2026, 1, 1, 10, 0, 22))
    assert plan.next_wakeup() is None


def test_plan_suspended_and_one_shot() -> None:
    plan = Plan(grace=timedelta(minutes=5))
    now = utc(2026, 1, 1, 12, 0)
    suspended = _campaign(spec='schedule: "* * * * *"\n  suspend: true')
    soon = _campaign(spec="runAt: 2026-01-01T12:00:30Z").model_copy(
        update={"metadata": _campaign().metadata.model_copy(update={"name": "soon"})}
    )
    expired = _campaign(spec="runAt: 2026-01-01T11:00:00Z").model_copy(
        update={"metadata": _campaign().metadata.model_copy(update={"name": "old"})}
    )
    plan.sync([suspended, soon, expired], now)
    assert plan.due(now + timedelta(minutes=10)) == [
        Firing(soon, utc(2026, 1, 1, 12, 0, 30), "one-shot")
    ]
    assert plan.due(now + timedelta(minutes=20)) == []  # once only


def test_plan_requested_run_fires_once_per_new_value() -> None:
    plan = Plan(grace=timedelta(minutes=5))
    now = utc(2026, 1, 1, 12, 0)
    old = _schedule("  requestedRunAt: 2025-12-31T00:00:00Z\n")
    plan.sync([old], now)
    assert plan.due(now) == []  # an old request was served before this runner started
    new = _schedule("  requestedRunAt: 2026-01-01T12:00:05Z\n")
    plan.sync([new], now + timedelta(seconds=6))
    [firing] = plan.due(now + timedelta(seconds=6))
    assert firing.reason == "requested" and firing.run_id.startswith("batch-requested-")
    plan.sync([new], now + timedelta(seconds=12))
    assert plan.due(now + timedelta(seconds=12)) == []


def test_task_commands() -> None:
    assert task_command("order-sweep", {"batchSize": 50}) == [
        "herald-scheduler",
        "sweep-orders",
        "--batch-size",
        "50",
    ]
    assert task_command("recommendation-batch", {}) == [
        "herald-recommendations",
        "batch",
        "--changed-since-last-run",
    ]
    assert task_command("recommendation-batch", {"changedSinceLastRun": False})[-1] == "batch"


class FakeActions:
    def __init__(self, outcome: TaskOutcome) -> None:
        self.outcome = outcome
        self.loaded: list[str] = []
        self.fired: list[str] = []
        self.tasks: list[str] = []

    async def campaigns_loaded(self, campaigns):
        self.loaded = [c.name for c in campaigns]

    async def fire_campaign(self, campaign, firing):
        self.fired.append(firing.run_id)

    async def run_task(self, schedule, firing):
        self.tasks.append(firing.run_id)
        if schedule.spec.task == "order-sweep":
            return TaskOutcome("succeeded", '{"advanced": 0}')
        return self.outcome


REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A copy of the examples plus one broken file."""
    for sub in ("campaigns", "schedules"):
        (tmp_path / sub).mkdir()
        for f in (REPO / "examples" / sub).glob("*.yaml"):
            (tmp_path / sub / f.name).write_text(f.read_text())
    (tmp_path / "campaigns" / "broken.yaml").write_text(
        "apiVersion: herald.io/v1alpha1\nkind: Nope\n"
    )
    return tmp_path


async def test_runner_reads_a_folder_and_fires_on_the_injected_clock(
    example_dir: Path, caplog
) -> None:
    tmp_path = example_dir
    actions = FakeActions(
        TaskOutcome("unavailable", "command 'herald-recommendations' is not installed")
    )
    runner = LocalRunner([tmp_path], actions)
    t0 = utc(2026, 1, 5, 13, 59, 55)  # a Monday, 08:59:55 in New York
    errors = await runner.reload(t0)
    assert len(errors) == 1 and "broken.yaml" in str(errors[0]) and "kind" in str(errors[0])
    assert sorted(actions.loaded) == ["flash-sale", "weekly-picks"]

    assert runner.start_due(t0) == []
    started = runner.start_due(utc(2026, 1, 5, 14, 0, 0))
    await runner.wait_idle()
    # Every 10-second resource fires at :00, the cron ones that run a process (digest every
    # minute, the recommendation batch every 5) and the weekly one at 09:00 New York.
    assert sorted(f.resource.name for f in started) == [
        "digest",
        "flash-sale",
        "order-sweep",
        "recommendation-batch",
        "weekly-picks",
    ]
    assert sorted(actions.fired) == ["flash-sale-20260105t140000z", "weekly-picks-20260105t1400z"]
    assert len(actions.tasks) == 3
    runner.start_due(utc(2026, 1, 5, 14, 0, 10))
    await runner.wait_idle()
    assert len(actions.fired) == 3 and len(actions.tasks) == 4  # order-sweep again only
    # A missing command is reported once per resource, clearly, not on every run.
    skipped = sorted(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    assert len(skipped) == 2
    assert "digest" in skipped[0] and "recommendation-batch" in skipped[1]
    assert all("not installed" in m for m in skipped)
