"""Stop the broker, Redis and the database of a running Herald mid-load and start them
again.

    .venv/bin/python -m tests.chaos.restart_servers --messages 10000
    .venv/bin/python -m tests.chaos.restart_servers --messages 3000 --kill --rounds 3

A second Herald runs on a private RabbitMQ node, a private Redis and a private FerretDB
on a PostgreSQL cluster of its own (``tests/e2e/servers.py``; the shared servers of
dev/infra.sh are never stopped). The broker is stopped with ``rabbitmqctl stop``
(``--kill``: SIGKILL of the node) while confirmed requests flow, and started again on
the same ports and data; every confirmed request is then stored exactly once. Then
Redis is stopped and started under an open subscription. Then FerretDB, and separately
PostgreSQL under it, are each stopped for 10 s in the middle of a load of ``--messages``
requests of its own. The tests: ``tests/e2e/test_server_restarts.py``.
"""

from __future__ import annotations

import argparse
import sys

from .run import run_tests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="requests per load")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the node instead of stop")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    env = {
        "HERALD_FAULT_LOAD": str(args.messages),
        "HERALD_FAULT_BROKER_STOP": "kill" if args.kill else "stop",
    }
    tests = [
        "tests/e2e/test_server_restarts.py::test_rabbitmq_stopped_and_restarted_mid_load",
        "tests/e2e/test_server_restarts.py::test_redis_stopped_and_restarted",
        "tests/e2e/test_server_restarts.py::test_database_stopped_and_restarted_mid_load",
    ]
    return run_tests(tests, env, rounds=args.rounds)


if __name__ == "__main__":
    sys.exit(main())
