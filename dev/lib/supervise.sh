# shellcheck shell=bash
# The one process supervisor of the dev scripts (dev/infra.sh, dev/run.sh,
# dev/prometheus.sh): pid files, detached start, readiness, stop. Source it:
#
#   . "$REPO_ROOT/dev/lib/supervise.sh"
#   pid="$(sv_spawn "$log" server --port 1234)"; echo "$pid" >"$pidfile"
#   sv_wait 30 "$pid" sv_http_ok http://127.0.0.1:1234/readyz   # 0 ready, 1 timeout, 2 exited
#   pid="$(sv_pid "$pidfile")" && sv_stop "$pid" 15 group
#
# Tested by tests/test_supervise.py with processes of its own.

# sv_alive PID: the process exists.
sv_alive() {
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null
}

# sv_read_pid FILE: the pid a pid file holds (nothing when the file is missing or empty).
sv_read_pid() {
  if [[ -s $1 ]]; then
    tr -dc '0-9' <"$1"
  fi
}

# sv_pid FILE [NAME]: print the pid of FILE if that process lives (and, with NAME, its
# command name starts with NAME); otherwise remove the stale file and return 1.
sv_pid() {
  local file="$1" name="${2:-}" pid
  pid="$(sv_read_pid "$file")"
  if sv_alive "$pid" && { [[ -z $name ]] || [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]]; }; then
    echo "$pid"
    return 0
  fi
  [[ -z $name ]] && rm -f "$file"
  return 1
}

# sv_spawn LOG CMD...: start CMD detached (own session and process group, no stdin,
# output appended to LOG, without the caller's lock on fd 9); prints its pid.
sv_spawn() {
  local log="$1"
  shift
  (exec setsid "$@" >>"$log" 2>&1 </dev/null 9>&-) &
  echo $!
}

# sv_stop PID [SECONDS] [group]: SIGTERM (to its process group with "group"), wait up to
# SECONDS (default 15), then SIGKILL. Returns once the process is gone.
sv_stop() {
  local pid="$1" wait="${2:-15}" target="$1" i
  [[ ${3:-} == group ]] && target="-$1"
  sv_alive "$pid" || return 0
  kill -TERM -- "$target" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < wait * 5; i++)); do
    sv_alive "$pid" || return 0
    sleep 0.2
  done
  echo "supervise: pid $pid did not stop within ${wait}s; killing it" >&2
  kill -KILL -- "$target" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    sv_alive "$pid" || return 0
    sleep 0.1
  done
}

# sv_wait SECONDS PID CHECK...: run CHECK until it succeeds (0), the process PID exits
# (2; empty PID: not watched) or SECONDS pass (1).
sv_wait() {
  local deadline=$((SECONDS + $1)) pid="$2"
  shift 2
  until "$@"; do
    if [[ -n $pid ]] && ! sv_alive "$pid"; then
      return 2
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# sv_http_ok URL: the URL answers HTTP 200 (within 2 s).
sv_http_ok() {
  python3 - "$1" <<'PYEOF' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PYEOF
}

# sv_tcp_open HOST PORT: something accepts TCP connections there.
sv_tcp_open() {
  python3 - "$1" "$2" <<'PYEOF' 2>/dev/null
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PYEOF
}
