#!/usr/bin/env bash
# The whole test suite with the cluster tests beside it (what `make test` and CI run).
#
#   dev/cluster/alongside.sh [PYTEST ARGS...]
#
# In the background: `cluster.sh prepare` (packages, binaries, images; cached outside
# the clone), then `pytest -m cluster tests/cluster` (which starts the node, installs
# the chart, and stops the node again if it started it), logged to
# .run/cluster/logs/tests.log. In the foreground: the rest of the suite
# (`--ignore=tests/cluster`). The cluster log is printed at the end; the run fails when
# either part fails.
#
#   CLUSTER_TESTS=0       leave the cluster tests out (the rest of the suite only)
#   TEST_WORKERS=N        pytest-xdist workers for the rest of the suite (default 2 on a
#                         machine with 2 or more cores, else 0: one process). On the 2-core
#                         machines CI uses, 2 workers took the suite from 22.5 to 14.7
#                         minutes; 4 ran every end-to-end stack at once and some of them
#                         timed out. Which tests share a worker: herald_testing.parallel.
#   a machine that cannot run a node at all (exit 3 of `cluster.sh prepare`: no root, no
#   cgroups, ...) skips them with the reason; any other failure fails the run.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="${PY:-$REPO_ROOT/.venv/bin/python}"
cd "$REPO_ROOT" || exit 1
PARALLEL=()
if [[ -z "${TEST_WORKERS:-}" ]]; then
  TEST_WORKERS=$(( $(nproc) >= 2 ? 2 : 0 ))
fi
if [[ "$TEST_WORKERS" != 0 ]]; then
  PARALLEL=(-n "$TEST_WORKERS" --dist loadgroup --no-loadscope-reorder)
fi

if [[ "${CLUSTER_TESTS:-1}" == 0 ]]; then
  log "CLUSTER_TESTS=0: the cluster tests are left out"
  exec "$PY" -m pytest --ignore=tests/cluster "${PARALLEL[@]}" "$@"
fi

mkdir -p "$RUN_DIR/logs"
TESTS_LOG="$RUN_DIR/logs/tests.log"
: >"$TESTS_LOG"

cluster_part() {
  local t0=$SECONDS rc
  echo "[cluster $(date +%H:%M:%S)] prepare: packages, binaries and images"
  bash "$CLUSTER_DIR/cluster.sh" prepare
  rc=$?
  if [[ $rc == 3 ]]; then
    echo "SKIPPED: this machine cannot run the node: $(cat "$RUN_DIR/unsupported" 2>/dev/null)"
    return 0
  fi
  if [[ $rc != 0 ]]; then
    echo "FAILED: dev/cluster/cluster.sh prepare exited $rc"
    df -h "$REPO_ROOT" "$CACHE_DIR" 2>/dev/null
    return "$rc"
  fi
  echo "[cluster $(date +%H:%M:%S)] prepared in $((SECONDS - t0))s; running tests/cluster"
  "$PY" -m pytest -m cluster tests/cluster -p no:cacheprovider "$@"
  rc=$?
  echo "[cluster $(date +%H:%M:%S)] tests/cluster done in $((SECONDS - t0))s (exit $rc)"
  return "$rc"
}

t0=$SECONDS
cluster_part "$@" >"$TESTS_LOG" 2>&1 &
cluster_pid=$!
# An interrupted run stops the cluster tests too (their fixture stops the node).
trap 'kill -TERM "$cluster_pid" 2>/dev/null; wait "$cluster_pid" 2>/dev/null; exit 130' INT TERM
log "cluster tests run in the background (log: ${TESTS_LOG#"$REPO_ROOT"/})"

# The slowest tests are listed at the end: where the suite's time goes.
"$PY" -m pytest --ignore=tests/cluster --durations=40 "${PARALLEL[@]}" "$@"
suite_rc=$?
log "the rest of the suite is done in $((SECONDS - t0))s (exit $suite_rc); waiting for the cluster tests"
wait "$cluster_pid"
cluster_rc=$?
trap - INT TERM
printf '%s\n' "==================== cluster tests (tests/cluster, log: ${TESTS_LOG#"$REPO_ROOT"/}) ===================="
cat "$TESTS_LOG"
log "suite and cluster tests done in $((SECONDS - t0))s (suite exit $suite_rc, cluster exit $cluster_rc)"
exit $(( suite_rc != 0 ? suite_rc : cluster_rc ))
