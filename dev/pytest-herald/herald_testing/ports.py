"""Free TCP ports for the servers tests start.

A port found free by binding port 0 is released before the server that is given it
binds it, so two pytest-xdist workers (or an outgoing connection, which takes its port
from the same ephemeral range) can be handed the same one in between. Each xdist worker
therefore takes its ports from a block of its own below the kernel's ephemeral range
(``gw0`` 20000 to 20999, ``gw1`` 21000 to 21999, ...), in turn, skipping any port something is
listening on. A process outside xdist (one-process runs, the benchmarks) keeps the
kernel's choice.
"""

from __future__ import annotations

import itertools
import os
import socket

BASE = 20_000
BLOCK = 1_000
# Blocks stay below 32768, where Linux's default ephemeral range starts.
MAX_WORKERS = 12


def worker_index() -> int | None:
    """The number of this pytest-xdist worker (``gw3`` → 3), None outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % MAX_WORKERS
    return None


_next = itertools.count()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 nothing is bound to, from this worker's block under xdist."""
    index = worker_index()
    if index is not None:
        start = BASE + index * BLOCK
        for _ in range(BLOCK):
            port = start + next(_next) % BLOCK
            if _bindable(port):
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
