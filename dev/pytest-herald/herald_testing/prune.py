"""Remove what interrupted test sessions and benchmark runs left on the shared RabbitMQ.

    python -m herald_testing.prune [--dry-run]

Lists the broker's queues and exchanges (``dev/infra.sh rabbitmqctl``), picks the names
built from a test id (a dot-separated part of 10 hex digits, optionally after ``t``:
``notifications.requests.t3f9c0a1b2d``, ``observer.3f9c0a1b2d``), groups them by that id
and deletes every group none of whose queues has a consumer, so a test that is running
right now keeps its queues. The virtual hosts of end-to-end stacks and benchmark runs
(``herald-e2e-<id>``, ``herald-bench-<id>``) go too when nothing is connected to them:
each holds a few dozen quorum queues, which keep the broker busy even when idle. Run it
when no test session runs to remove everything.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict

from herald_testing.cleanup import delete
from herald_testing.infra import REPO_ROOT, infra_env

TEST_ID = re.compile(r"(?:^|\.)t?([0-9a-f]{10})(?:\.|$)")
RUN_VHOST = re.compile(r"^herald-(?:e2e|bench)-[0-9a-f]{8}$")


def _rabbitmqctl(*args: str) -> list[list[str]]:
    script = REPO_ROOT / "dev" / "infra.sh"
    out = subprocess.run(  # noqa: S603 - this repository's own script, fixed arguments
        [
            "/bin/bash",
            str(script),
            "rabbitmqctl",
            *args,
            "-q",
            *(["--no-table-headers"] if args[0].startswith("list_") else []),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def id_in(name: str) -> str | None:
    match = TEST_ID.search(name)
    return match.group(1) if match else None


def plan(
    queues: list[tuple[str, int]], exchanges: list[str]
) -> tuple[set[str], set[str], set[str]]:
    """(queues to delete, exchanges to delete, ids kept because a queue is in use)."""
    groups: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    busy: set[str] = set()
    for name, consumers in queues:
        if (tid := id_in(name)) is not None:
            groups[tid][0].add(name)
            if consumers:
                busy.add(tid)
    for name in exchanges:
        if (tid := id_in(name)) is not None:
            groups[tid][1].add(name)
    doomed_q: set[str] = set()
    doomed_x: set[str] = set()
    for tid, (q, x) in groups.items():
        if tid not in busy:
            doomed_q |= q
            doomed_x |= x
    return doomed_q, doomed_x, busy


def idle_vhosts(vhosts: list[str], connected: set[str]) -> list[str]:
    """The run virtual hosts nothing is connected to."""
    return sorted(v for v in vhosts if RUN_VHOST.match(v) and v not in connected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m herald_testing.prune", description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="only list what would go")
    args = parser.parse_args(argv)
    queues = [
        (row[0], int(row[1] or 0)) for row in _rabbitmqctl("list_queues", "name", "consumers")
    ]
    exchanges = [row[0] for row in _rabbitmqctl("list_exchanges", "name")]
    doomed_q, doomed_x, busy = plan(queues, exchanges)
    vhosts = idle_vhosts(
        [row[0] for row in _rabbitmqctl("list_vhosts", "name")],
        {row[0] for row in _rabbitmqctl("list_connections", "vhost")},
    )
    if args.dry_run:
        for name in [*sorted(doomed_q | doomed_x), *(f"vhost {v}" for v in vhosts)]:
            print(name)
    else:
        delete(infra_env()["HERALD_AMQP_URL"], doomed_q, doomed_x)
        for vhost in vhosts:
            _rabbitmqctl("delete_vhost", vhost)
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {len(doomed_q)} queues, {len(doomed_x)} exchanges and {len(vhosts)} virtual "
        f"hosts left by tests and benchmarks; kept those of {len(busy)} test(s) with consumers",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
