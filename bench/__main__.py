"""Every benchmark, one after another (``make bench``).

    python -m bench [--smoke] [SCENARIO ...]

Scenarios (each is also its own command, ``python -m bench.<scenario> --help``):
ceilings, messaging, inbox, gateway, ingest, recommendations, fanout, latency, pipeline,
hostile, revocation, operator.
Without names all run at their default (full) sizes; ``--smoke`` runs them at tiny
sizes in seconds to prove they work end to end (what the test suite does). Each
appends its section to ``bench/RESULTS.md`` (``HERALD_BENCH_RESULTS`` writes elsewhere).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench import support

SCENARIOS = [
    "ceilings",
    "messaging",
    "inbox",
    "gateway",
    "ingest",
    "recommendations",
    "fanout",
    "latency",
    "pipeline",
    "hostile",
    "revocation",
    "operator",
]

# Tiny sizes: each finishes in well under a minute on a quiet machine.
SMOKE: dict[str, list[str]] = {
    "ceilings": ["--messages", "100", "--seconds", "1", "--docs", "500"],
    "messaging": ["--messages", "50", "--concurrency", "10"],
    "inbox": [
        "--notifications", "400", "--users", "40", "--active-users", "20",
        "--concurrency", "5", "--seconds", "2",
    ],
    "gateway": [
        "--users", "20", "--events-per-user", "5", "--concurrency", "4", "--seconds", "2",
    ],
    "recommendations": ["--users", "100", "--events-per-user", "10"],
    "ingest": [
        "--seconds", "3", "--concurrency", "4", "--users", "10", "--ceiling-messages", "50",
    ],
    "fanout": ["--users", "60", "120", "--ceiling-docs", "300", "--ceiling-messages", "50"],
    "latency": [
        "--probes", "10", "--interval", "0.05", "--subscribers", "2", "--background-users",
        "20", "--activity-rate", "50", "--campaign-rate", "10", "--warmup", "0.5",
        "--ceiling-messages", "50",
    ],
    "pipeline": ["--seconds", "3", "--users", "200"],
    "hostile": ["--seconds", "1", "--attackers", "2"],
    "revocation": ["--sockets", "3", "--others", "2"],
    "operator": ["--latency-samples", "3", "--campaigns", "5"],
}  # fmt: skip


def command(scenario: str, smoke: bool) -> list[str]:
    return [sys.executable, "-m", f"bench.{scenario}", *(SMOKE[scenario] if smoke else [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds each")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    failed: list[str] = []
    for scenario in args.scenarios or SCENARIOS:
        print(f"== bench.{scenario}", flush=True)
        if subprocess.run(command(scenario, args.smoke), cwd=support.ROOT).returncode:
            failed.append(scenario)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
