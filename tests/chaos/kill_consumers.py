"""SIGKILL each consuming service in the middle of a load, restart it, count effects.

    .venv/bin/python -m tests.chaos.kill_consumers --messages 10000
    .venv/bin/python -m tests.chaos.kill_consumers --messages 2000 --services scheduler --rounds 3

Each service gets a load of its own (``--together`` kills recommendations and the
scheduler in one load of purchases, as CI does): notifications a load of
``notification.requested`` for one user, recommendations and the scheduler a load of
``activity.recorded`` purchases (one per message, 50 per shopper). After the restart
every confirmed event has exactly one effect in every service that consumes it and
every queue of the vhost drains. The test: ``tests/e2e/test_faults.py::
test_sigkill_consumers_mid_load``; the scenario: ``tests/e2e/faultkit.py``.
"""

from __future__ import annotations

import argparse
import sys

from .run import run_tests

SERVICES = ("notifications", "recommendations", "scheduler")


def kill_groups(services: list[str], *, together: bool) -> str:
    """``HERALD_FAULT_KILL``: one load per service, or (``together``) one load of
    purchases for recommendations and the scheduler."""
    groups = [[s] for s in services]
    if together:
        buyers = [s for s in services if s != "notifications"]
        groups = [[s] for s in services if s == "notifications"] + ([buyers] if buyers else [])
    return ";".join("+".join(g) for g in groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="events per load")
    parser.add_argument(
        "--services", default=",".join(SERVICES), help="comma-separated consumers to kill"
    )
    parser.add_argument("--together", action="store_true", help="one load of purchases for both")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    services = [s for s in args.services.split(",") if s]
    unknown = set(services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown services {sorted(unknown)}; choose from {SERVICES}")
    env = {
        "HERALD_FAULT_LOAD": str(args.messages),
        "HERALD_FAULT_KILL": kill_groups(services, together=args.together),
    }
    test = "tests/e2e/test_faults.py::test_sigkill_consumers_mid_load"
    return run_tests([test], env, rounds=args.rounds)


if __name__ == "__main__":
    sys.exit(main())
