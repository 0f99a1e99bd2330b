"""Schedule tasks: which command each one runs, and running it.

The same mapping serves Kubernetes (the operator puts the command in the CronJob's
container) and the local runner (which runs ``order-sweep`` in-process and the others
as subprocesses, when their command is installed).

Parameters per task (``spec.parameters``):

* ``order-sweep``: ``batchSize`` (int, orders per query), ``limit`` (int, at most this
  many orders per run).
* ``recommendation-batch``: ``changedSinceLastRun`` (bool, default true: only users
  whose activity changed since the last batch).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

_PARAMETERS: dict[str, dict[str, type]] = {
    "order-sweep": {"batchSize": int, "limit": int},
    "recommendation-batch": {"changedSinceLastRun": bool},
}


def validate_parameters(task: str, parameters: dict[str, Any]) -> None:
    """Raise ValueError (``"<key>: ..."``) for an unknown or mistyped parameter."""
    allowed = _PARAMETERS[task]
    for key, value in parameters.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ValueError(f"{key}: unknown parameter for task {task} (known: {known})")
        expected = allowed[key]
        # bool is an int in Python; a batch size of "true" is still a mistake.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ValueError(f"{key}: must be {expected.__name__}, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError(f"{key}: must be at least 1")


def task_command(task: str, parameters: dict[str, Any] | None = None) -> list[str]:
    """The container command that performs ``task`` once."""
    params = parameters or {}
    validate_parameters(task, params)
    if task == "order-sweep":
        argv = ["herald-scheduler", "sweep-orders"]
        if "batchSize" in params:
            argv += ["--batch-size", str(params["batchSize"])]
        if "limit" in params:
            argv += ["--limit", str(params["limit"])]
        return argv
    if task == "recommendation-batch":
        argv = ["herald-recommendations", "batch"]
        if params.get("changedSinceLastRun", True):
            argv.append("--changed-since-last-run")
        return argv
    raise ValueError(f"unknown task {task!r}")


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
