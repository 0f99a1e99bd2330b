"""Run fault tests of tests/e2e at another size and print what they counted.

The commands of this package run the very tests CI runs (same fixtures: a second Herald
on free ports, its own vhost and databases), with ``HERALD_FAULT_LOAD`` and friends set,
and read the counts the tests append to ``HERALD_FAULT_REPORT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_tests(
    tests: Sequence[str], env: dict[str, str], *, rounds: int = 1, timeout: int = 7200
) -> int:
    """Run ``tests`` (pytest node ids) ``rounds`` times; print every scenario's counts.
    Returns pytest's exit status (the first failing round's)."""
    status = 0
    with tempfile.TemporaryDirectory(prefix="herald-chaos-") as tmp:
        report = Path(tmp) / "report.jsonl"
        for n in range(1, rounds + 1):
            print(f"round {n}/{rounds}: {' '.join(tests)}", flush=True)
            started = time.monotonic()
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"]
            result = subprocess.run(
                [*argv, "-o", f"timeout={timeout}", *tests],
                cwd=REPO,
                env={**os.environ, **env, "HERALD_FAULT_REPORT": str(report)},
                check=False,
            )
            print(f"round {n}: exit {result.returncode} in {time.monotonic() - started:.0f}s")
            status = status or result.returncode
            if result.returncode:
                break
        lines = report.read_text().splitlines() if report.exists() else []
    print("\nscenario | counts")
    print("---|---")
    for line in lines:
        row = json.loads(line)
        print(f"{row.pop('scenario')} | {json.dumps(row)}")
    return status
