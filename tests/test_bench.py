"""Every benchmark at a tiny size, end to end against the real servers, so none of them
rots. Nothing about speed is asserted: only that each one runs, cleans up, and writes a
section with its table (and its plot) to the results file it is given.

``bench.pipeline`` is left out here: it writes to ``bench/RESULTS.md`` itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.__main__ import SMOKE  # noqa: E402

# A loaded shared machine makes even the tiny sizes take minutes: no timing is asserted.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

SECTIONS = {
    "ceilings": ("Ceilings", None),
    "messaging": ("Messaging", None),
    "inbox": ("Inbox (postgresql)", None),
    "gateway": ("Gateway: me + recommendations", None),
    "ingest": ("Activity ingest", None),
    "recommendations": ("Recommendations batch", None),
    "fanout": ("Campaign fan-out", "fanout.png"),
    "latency": ("End-to-end latency", "latency.png"),
    "hostile": ("Alias amplification and fairness", None),
    "revocation": ("Revocation: logout → WebSocket closed", None),
    "operator": ("Operator", None),
}


def _databases(fragment: str) -> set[str]:
    import pymongo

    uri = os.environ.get("HERALD_MONGODB_URI", "mongodb://127.0.0.1:27017")
    client: pymongo.MongoClient = pymongo.MongoClient(uri)
    try:
        return {d for d in client.list_database_names() if fragment in d}
    finally:
        client.close()


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, marks=[pytest.mark.kube] if s == "operator" else []) for s in SECTIONS],
)
def test_benchmark_runs_at_a_tiny_size(scenario: str, infra, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = {**os.environ, **infra, "HERALD_BENCH_RESULTS": str(results)}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{scenario}", *SMOKE[scenario]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    title, image = SECTIONS[scenario]
    text = results.read_text()
    assert f"## {title} (" in text
    assert "Machine: " in text and "Load during the run: " in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and re.search(r"\d", line)]
    assert rows, text
    if image:
        assert (tmp_path / image).stat().st_size > 0
        assert f"]({image})" in text
    if scenario == "operator":
        return  # its namespace is deleted by the benchmark; it creates no databases
    # What the run created is gone again.
    runs = re.findall(r"^run (\S+)-([0-9a-f]{8}): logs in", done.stdout, re.M)
    assert runs, done.stdout[-2000:]
    for _, run_id in runs:
        assert not _databases(run_id)
