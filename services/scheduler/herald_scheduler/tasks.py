"""Running Schedule tasks locally (the local runner).

Which command performs a task, its parameters and its image are part of the resource
models (:mod:`herald_common.resources.tasks`), shared with the operator, which puts the
same command in a CronJob's container. Here the local runner runs that command as a
subprocess when it is installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TaskOutcome:
    """How one run of a task went."""

    status: Literal["succeeded", "failed", "unavailable"]
    detail: str = ""
    returncode: int | None = None


async def run_command(argv: list[str], *, timeout: float) -> TaskOutcome:
    """Run ``argv``; ``unavailable`` when its program is not installed here."""
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
    tail = output.decode(errors="replace").strip()[-2000:]
    if proc.returncode == 0:
        return TaskOutcome("succeeded", tail, 0)
    return TaskOutcome("failed", f"exit code {proc.returncode}: {tail}", proc.returncode)
