"""Schedule tasks: their parameters, the command that performs each, and its image.

The same mapping serves Kubernetes (the operator puts the command in the CronJob's
container, in the image of :data:`TASK_COMPONENTS`) and the local runner (which runs
``order-sweep`` in-process and the others as subprocesses, when their command is
installed).

Parameters per task (``spec.parameters``):

* ``order-sweep``: ``batchSize`` (int, orders per query), ``limit`` (int, at most this
  many orders per run).
* ``recommendation-batch``: ``changedSinceLastRun`` (bool, default true: only users
  whose activity changed since the last batch).
* ``digest``: ``limit`` (int, at most this many digest slots per run). Runs
  ``herald-notifications digest`` in the notifications image; run it every minute.
"""

from __future__ import annotations

from typing import Any, Literal

TaskName = Literal["order-sweep", "recommendation-batch", "digest"]
# The component (image) whose command performs each task.
TASK_COMPONENTS: dict[str, str] = {
    "order-sweep": "scheduler",
    "recommendation-batch": "recommendations",
    "digest": "notifications",
}
_PARAMETERS: dict[str, dict[str, type]] = {
    "order-sweep": {"batchSize": int, "limit": int},
    "recommendation-batch": {"changedSinceLastRun": bool},
    "digest": {"limit": int},
}


def validate_parameters(task: str, parameters: dict[str, Any]) -> None:
    """Raise ValueError (``"<key>: ..."``) for an unknown or mistyped parameter."""
    if task not in _PARAMETERS:
        raise ValueError(f"task: unknown task {task!r} (known: {', '.join(_PARAMETERS)})")
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
    if task == "digest":
        argv = ["herald-notifications", "digest"]
        if "limit" in params:
            argv += ["--limit", str(params["limit"])]
        return argv
    raise ValueError(f"unknown task {task!r}")
