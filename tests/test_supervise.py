"""dev/lib/supervise.sh, the process supervisor of dev/infra.sh, dev/run.sh and
dev/prometheus.sh, with processes of its own: start detached, pid files, readiness,
start-up failure, timeout, stop (also of a process that ignores SIGTERM)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from herald_testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "dev/lib/supervise.sh"


def sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'set -u; . "{LIB}"\n{script}'],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_start_ready_pid_file_and_stop(tmp_path: Path) -> None:
    port = free_port()
    started = sh(
        f"""
        pid="$(sv_spawn server.log {sys.executable} -m http.server {port} --bind 127.0.0.1)"
        echo "$pid" > server.pid
        sv_wait 120 "$pid" sv_http_ok http://127.0.0.1:{port}/ || exit $?
        sv_tcp_open 127.0.0.1 {port} || exit 9
        sv_pid server.pid
        """,
        tmp_path,
    )
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.strip())
    assert alive(pid)
    assert os.getpgid(pid) == pid, "started as the leader of its own process group"

    stopped = sh(f"sv_stop {pid} 15 group; sv_pid server.pid; echo rc=$?", tmp_path)
    assert "rc=1" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not alive(pid)
    assert not (tmp_path / "server.pid").exists(), "a stale pid file is removed"
    assert sh(f"sv_tcp_open 127.0.0.1 {port}", tmp_path).returncode == 1


def test_a_process_that_exits_during_start_up_is_reported(tmp_path: Path) -> None:
    port = free_port()
    result = sh(
        f"""
        pid="$(sv_spawn early.log sh -c 'echo broken; exit 3')"
        sv_wait 120 "$pid" sv_http_ok http://127.0.0.1:{port}/
        echo rc=$?
        """,
        tmp_path,
    )
    assert "rc=2" in result.stdout, result.stdout + result.stderr
    assert (tmp_path / "early.log").read_text() == "broken\n"


def test_wait_gives_up_after_its_time(tmp_path: Path) -> None:
    result = sh(
        """
        pid="$(sv_spawn idle.log sleep 300)"
        sv_wait 1 "$pid" false
        echo rc=$? pid=$pid
        sv_stop "$pid" 15
        """,
        tmp_path,
    )
    assert "rc=1" in result.stdout, result.stdout + result.stderr
    pid = int(result.stdout.split("pid=")[1].split()[0])
    assert not alive(pid)


@pytest.mark.slow
def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "pathlib.Path('armed').touch()\n"
        "while True: time.sleep(60)\n"
    )
    (tmp_path / "stubborn.py").write_text(stubborn)
    result = sh(
        f"""
        pid="$(sv_spawn stubborn.log {sys.executable} stubborn.py)"
        sv_wait 120 "$pid" test -f armed || exit 7
        sv_stop "$pid" 1 group
        echo pid=$pid
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "killing it" in result.stderr
    pid = int(result.stdout.split("pid=")[1].split()[0])
    assert not alive(pid)
