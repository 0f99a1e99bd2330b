"""The command-line entry points and their exit codes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from herald_common.resources import load_file, scheduled_run_id
from herald_scheduler.cli import main, termination_summary

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def test_validate_exit_codes(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(EXAMPLES / "campaigns"), str(EXAMPLES / "schedules")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "campaigns" / "flash-sale.yaml").read_text().replace("promotion", "spam")
    )
    assert main(["validate", str(bad)]) == 2
    assert "spec.type" in capsys.readouterr().err


def test_fire_campaign_with_an_invalid_file_exits_2_naming_the_field(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "campaigns" / "weekly-picks.yaml")
        .read_text()
        .replace("{first_name}", "{coupon}")
    )
    assert main(["fire-campaign", "--file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "spec.template.title" in err and "{coupon}" in err


def test_bad_configuration_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("HERALD_SCHEDULER_ORDER_CANCEL_PROBABILITY", "2")
    assert main(["sweep-orders"]) == 2
    assert "order_cancel_probability" in capsys.readouterr().err


def test_default_run_id_is_the_scheduled_slot() -> None:
    [weekly] = load_file(EXAMPLES / "campaigns" / "weekly-picks.yaml")
    # A pod that starts 40 s late still names the 09:00 New York slot.
    late = datetime(2026, 3, 9, 13, 0, 40, tzinfo=UTC)
    assert scheduled_run_id(weekly.name, weekly.spec, late) == "weekly-picks-20260309t1300z"
    assert scheduled_run_id("x", None, late) == "x-20260309t1300z"


@pytest.mark.integration
async def test_fire_campaign_and_sweep_orders_talk_to_the_real_servers(
    scheduler_settings, broker_for, make_sink, monkeypatch, capsys
):
    import asyncio

    settings = scheduler_settings()
    broker = await broker_for(settings)
    sink = await make_sink(broker, ["campaign.fired"])
    env = {
        "HERALD_SCHEDULER_MONGODB_URI": settings.mongodb_uri,
        "HERALD_SCHEDULER_MONGODB_DB": settings.mongodb_db,
        "HERALD_SCHEDULER_AMQP_URL": settings.amqp_url.get_secret_value(),
        "HERALD_SCHEDULER_EVENTS_EXCHANGE": settings.events_exchange,
        "HERALD_SCHEDULER_DEAD_LETTER_EXCHANGE": settings.dead_letter_exchange,
        "HERALD_SCHEDULER_LOG_JSON": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    file = str(EXAMPLES / "campaigns" / "flash-sale.yaml")
    # The CLI runs its own event loop (as in a container): run it in a thread.
    code = await asyncio.to_thread(main, ["fire-campaign", "--file", file, "--run-id", "r-1"])
    assert code == 0
    code = await asyncio.to_thread(main, ["fire-campaign", "--file", file, "--dry-run"])
    assert code == 0
    await sink.drain()
    fired = sink.of("campaign.fired")
    first = fired[0]
    assert (first.campaign, first.run_id, first.dry_run) == ("flash-sale", "r-1", False)
    assert fired[1].dry_run and fired[1].run_id.startswith("flash-sale-")
    assert fired[0].template.title == "{first_name}, flash sale in {favorite_category}!"

    assert await asyncio.to_thread(main, ["sweep-orders", "--limit", "5"]) == 0
    assert '"advanced": 0' in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["fire-campaign", "--name", "never-seen"]) == 2


def test_termination_summary_fits_a_termination_message() -> None:
    import json

    samples = [
        {"user_id": f"u{i}", "content": {"title": "T" * 500, "body": "B" * 2000}} for i in range(10)
    ]
    result = {"campaign": "c", "run_id": "r", "dry_run": True, "audience_size": 42}
    text = termination_summary({**result, "samples": samples})
    assert len(text.encode()) <= 4000 and len(json.loads(text)["samples"]) == 10
    text = termination_summary({**result, "samples": samples}, limit=1500)
    assert len(text.encode()) <= 1500

    parsed = json.loads(text)
    assert parsed["audience_size"] == 42 and 0 < len(parsed["samples"]) < 10
    assert parsed["samples"][0] == {"userId": "u0", "title": "T" * 160, "body": "B" * 160}
    assert json.loads(termination_summary(result)) == result


def test_fire_campaign_from_inline_json_honours_suspend(tmp_path: Path, capsys) -> None:
    import json

    [flash] = load_file(EXAMPLES / "campaigns" / "flash-sale.yaml")
    document = flash.model_dump(by_alias=True, mode="json", exclude={"source"}, exclude_none=True)
    document["spec"]["suspend"] = True
    log = tmp_path / "termination-log"
    code = main(
        ["fire-campaign", "--resource-json", json.dumps(document), "--termination-log", str(log)]
    )
    assert code == 0
    assert json.loads(log.read_text()) == {
        "campaign": "flash-sale",
        "fired": False,
        "reason": "suspended",
    }
    document["spec"]["schedule"] = "every minute"
    assert main(["fire-campaign", "--resource-json", json.dumps(document)]) == 2
    assert (
        "--resource-json: NotificationCampaign/flash-sale: spec.schedule" in capsys.readouterr().err
    )


@pytest.mark.integration
async def test_pod_fire_paths_preview_and_wait_report_through_the_termination_log(
    db, seed_users, broker_for, make_sink, tmp_path: Path
):
    """What the operator's pods run, as separate processes: a dry run evaluated in the
    pod (nothing sent), and a real firing that waits for the fan-out's counts."""
    import asyncio
    import json
    import os
    import sys

    from herald_scheduler.campaigns import execute_run

    seed_users(12, preferences=lambda i: {"promotions": i % 4 != 0})  # 9 opted in
    broker = await broker_for(db)
    sink = await make_sink(broker, ["campaign.fired"])
    env = {
        **os.environ,
        "HERALD_SCHEDULER_MONGODB_URI": db.mongodb_uri,
        "HERALD_SCHEDULER_MONGODB_DB": db.mongodb_db,
        "HERALD_SCHEDULER_AMQP_URL": db.amqp_url.get_secret_value(),
        "HERALD_SCHEDULER_EVENTS_EXCHANGE": db.events_exchange,
        "HERALD_SCHEDULER_DEAD_LETTER_EXCHANGE": db.dead_letter_exchange,
        "HERALD_SCHEDULER_LOG_JSON": "false",
    }
    command = str(Path(sys.executable).parent / "herald-scheduler")

    async def pod(*args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            command, "fire-campaign", *args, env=env, stdout=asyncio.subprocess.DEVNULL
        )

    [flash] = load_file(EXAMPLES / "campaigns" / "flash-sale.yaml")
    document = flash.model_dump(by_alias=True, mode="json", exclude={"source"}, exclude_none=True)
    document["spec"]["dryRun"] = True
    preview_log = tmp_path / "preview"
    proc = await pod(
        "--resource-json", json.dumps(document), "--force", "--preview", "--run-id", "p-1",
        "--termination-log", str(preview_log),
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    preview = json.loads(preview_log.read_text())
    assert preview["dry_run"] is True and preview["fired"] is False
    assert (preview["audience_size"], preview["suppressed"]) == (9, 3)
    assert len(preview["samples"]) == 9 and preview["samples"][0]["userId"].startswith("u")
    assert sink.of("campaign.fired") == []

    document["spec"]["dryRun"] = False
    run_log = tmp_path / "run"
    proc = await pod(
        "--resource-json", json.dumps(document), "--force", "--run-id", "w-1",
        "--wait-seconds", "60", "--termination-log", str(run_log),
    )  # fmt: skip
    for _ in range(300):  # the test plays the scheduler's campaign.fired consumer
        if sink.of("campaign.fired"):
            break
        await asyncio.sleep(0.1)
    [fired] = sink.of("campaign.fired")
    assert fired.run_id == "w-1" and fired.dry_run is False
    await execute_run(fired, owner="test", settings=db, broker=broker)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    result = json.loads(run_log.read_text())
    assert result["status"] == "succeeded"
    assert (result["audience_size"], result["sent"], result["suppressed"]) == (9, 9, 3)
