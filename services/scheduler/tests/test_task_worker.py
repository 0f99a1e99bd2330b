"""The local runner's warm task worker: console scripts of this environment run in one
long-lived process (no interpreter start-up per run) with the same exit codes and
output as the installed command; anything else still runs as a process."""

from __future__ import annotations

from pathlib import Path

from herald_scheduler.tasks import TaskWorker, run_command

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


async def test_commands_run_in_one_warm_process_with_their_exit_codes() -> None:
    worker = TaskWorker()
    try:
        ok = await run_command(
            ["herald-scheduler", "validate", str(EXAMPLES)], timeout=120, worker=worker
        )
        assert ok.status == "succeeded" and ok.returncode == 0, ok
        assert "Schedule/order-sweep" in ok.detail
        first = worker._proc
        assert first is not None and first.returncode is None

        bad = await run_command(
            ["herald-scheduler", "validate", "/nonexistent/dir"], timeout=120, worker=worker
        )
        assert bad.status == "failed" and bad.returncode == 2, bad
        assert worker._proc is first  # the same process served both runs

        missing = await run_command(["no-such-herald-command"], timeout=30, worker=worker)
        assert missing.status == "unavailable"
        assert worker._proc is first
    finally:
        await worker.close()
    assert worker._proc is None and first.returncode is not None
