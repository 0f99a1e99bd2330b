"""A warm worker for the local runner's task commands: ``python -m herald_scheduler.task_worker``.

Running ``herald-recommendations batch …`` as a new process costs about a second of
CPU in Python start-up and imports, every run. The local runner instead keeps this
one worker process and sends it a command per line on stdin (``{"argv": [...]}``); the
worker runs the console script's entry point of this environment in-process (the
same function the installed command calls, so the CronJob path and this one run the
same code) and answers one line (``{"returncode", "output"}``) on its protocol pipe.
Commands run one at a time. What a command prints goes into ``output``; its logs go to
the worker's stderr (the runner's log). A command that is not a console script of this
environment answers ``returncode`` null: the runner then starts it as a process.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any


def entry_point(name: str) -> Callable[..., Any] | None:
    """The function behind console script ``name`` in this environment, or None."""
    found = entry_points(group="console_scripts", name=name)
    return next(iter(found)).load() if found else None


def run(argv: list[str]) -> tuple[int | None, str]:
    """Run one command in this process; ``(exit code, printed output)``."""
    func = entry_point(argv[0])
    if func is None:
        return None, ""
    out = io.StringIO()
    saved_argv = sys.argv
    sys.argv = list(argv)
    code: int
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            takes_argv = bool(inspect.signature(func).parameters)
            result = func(argv[1:]) if takes_argv else func()
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # noqa: BLE001 - a failing command is reported, the worker goes on
        code = 1
        out.write(traceback.format_exc())
    finally:
        sys.argv = saved_argv
    return code, out.getvalue()


def main() -> None:
    # Answers go to a private copy of stdout; anything else written to file descriptor 1
    # (a command's own subprocess, C code) lands in stderr instead of the protocol.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            argv = [str(a) for a in json.loads(line)["argv"]]
        except (ValueError, KeyError, TypeError):
            answers.write(json.dumps({"returncode": 2, "output": "malformed request"}) + "\n")
            continue
        code, output = run(argv)
        answers.write(json.dumps({"returncode": code, "output": output[-4000:]}) + "\n")


if __name__ == "__main__":
    main()
