"""Running Schedule tasks locally (the local runner).

Which command performs a task, its parameters and its image are part of the resource
models (:mod:`herald_common.resources.tasks`), shared with the operator, which puts the
same command in a CronJob's container. Here the local runner hands that command to one
warm worker process (:mod:`herald_scheduler.task_worker`: no Python start-up per run)
when it is a console script of this environment, and otherwise runs it as a
subprocess when it is installed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    """How one run of a task went."""

    status: Literal["succeeded", "failed", "unavailable"]
    detail: str = ""
    returncode: int | None = None


def _outcome(returncode: int, output: str) -> TaskOutcome:
    tail = output.strip()[-2000:]
    if returncode == 0:
        return TaskOutcome("succeeded", tail, 0)
    return TaskOutcome("failed", f"exit code {returncode}: {tail}", returncode)


class TaskWorker:
    """One warm ``herald_scheduler.task_worker`` process, started on first use and
    again after it died or a command timed out (then it is killed)."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def run(self, argv: list[str], *, timeout: float) -> TaskOutcome | None:
        """The command's outcome, or None when it is no console script here."""
        async with self._lock:
            proc = await self._process()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write((json.dumps({"argv": argv}) + "\n").encode())
            try:
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=timeout)
            except TimeoutError:
                await self.close()
                return TaskOutcome("failed", f"timed out after {timeout:.0f}s")
            except (ConnectionError, BrokenPipeError):
                line = b""
            if not line:
                await self.close()
                return TaskOutcome("failed", "the task worker exited during the run")
        answer = json.loads(line)
        if answer["returncode"] is None:
            return None
        return _outcome(int(answer["returncode"]), str(answer["output"]))

    async def _process(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "herald_scheduler.task_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            log.info("task worker started", extra={"pid": self._proc.pid})
        return self._proc

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run_command(
    argv: list[str], *, timeout: float, worker: TaskWorker | None = None
) -> TaskOutcome:
    """Run ``argv`` (in ``worker`` when given and ``argv[0]`` is a console script of
    this environment); ``unavailable`` when its program is not installed here."""
    if worker is not None:
        outcome = await worker.run(argv, timeout=timeout)
        if outcome is not None:
            return outcome
    # Console scripts of the same environment sit next to its interpreter, which need
    # not be on PATH (e.g. a virtualenv used without activating it).
    program = shutil.which(argv[0]) or shutil.which(argv[0], path=os.path.dirname(sys.executable))
    if program is None:
        return TaskOutcome("unavailable", f"command {argv[0]!r} is not installed (not on PATH)")
    proc = await asyncio.create_subprocess_exec(
        program,
        *argv[1:],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return TaskOutcome("failed", f"timed out after {timeout:.0f}s", proc.returncode)
    return _outcome(int(proc.returncode or 0), output.decode(errors="replace"))
