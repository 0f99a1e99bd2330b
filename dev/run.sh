#!/usr/bin/env bash
# All of Herald as local processes: the four services, the scheduler's local runner and
# the GraphQL gateway, on top of the infrastructure from dev/infra.sh.
#
# Usage: dev/run.sh COMMAND
#
#   up       start infrastructure (dev/infra.sh up) and every component that is not
#            running yet, wait until each answers /readyz, seed mock data once, print
#            the GraphQL URL; a second `up` only starts what is missing
#   down     stop the components started by `up` (infrastructure stays: dev/infra.sh down)
#   status   one line per component; exits 3 if any is down
#   logs [COMPONENT]
#            the last lines of every log, or follow one component's log
#
# Components: a local SMTP server on 127.0.0.1:2525 (mail kept in .run/mail/), users 4001, notifications 4002, recommendations 4003, scheduler 4004 (all
# on 127.0.0.1), the scheduler's local runner (campaign and schedule files in
# examples/campaigns and examples/schedules), and the gateway on 0.0.0.0:5000 (the only
# public listener). A component whose package is not installed is skipped with a note.
#
# Environment (defaults in brackets):
#   HERALD_RUN_DIR            pid files and logs [.run/herald]
#   HERALD_USERS_PORT ... HERALD_SCHEDULER_PORT, HERALD_GATEWAY_PORT   [4001..4004, 5000]
#   HERALD_GATEWAY_HOST       [0.0.0.0]
#   HERALD_RUN_DB_PREFIX      database name prefix: <prefix>_users, ... [herald]
#   HERALD_RUN_SEED           seed mock data once (1/0) [1]
#   HERALD_SEED_USERS, HERALD_SEED_PRODUCTS, HERALD_SEED_EVENTS   mock data size [60, 300, 6000]
#   HERALD_RUN_SKIP_INFRA     1: do not run dev/infra.sh up (the URLs are given) [0]
#   HERALD_RUN_TIMEOUT        seconds to wait for each component [120]
#   HERALD_NOTIFICATIONS_SMTP_PORT   the local SMTP server's port [2525]
#   HERALD_MAIL_DIR           where it keeps every message as a .eml file [.run/mail]
#   HERALD_MONGODB_URI, HERALD_AMQP_URL, HERALD_REDIS_URL, HERALD_EVENTS_EXCHANGE, ...
#                             passed through to every component
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=dev/lib/supervise.sh
. "$REPO_ROOT/dev/lib/supervise.sh"
RUN_DIR="${HERALD_RUN_DIR:-$REPO_ROOT/.run/herald}"
LOG_DIR="$RUN_DIR/logs"
PY="$REPO_ROOT/.venv/bin/python"
TIMEOUT="${HERALD_RUN_TIMEOUT:-120}"
DB_PREFIX="${HERALD_RUN_DB_PREFIX:-herald}"

USERS_PORT="${HERALD_USERS_PORT:-4001}"
NOTIFICATIONS_PORT="${HERALD_NOTIFICATIONS_PORT:-4002}"
RECOMMENDATIONS_PORT="${HERALD_RECOMMENDATIONS_PORT:-4003}"
SCHEDULER_PORT="${HERALD_SCHEDULER_PORT:-4004}"
GATEWAY_PORT="${HERALD_GATEWAY_PORT:-5000}"
GATEWAY_HOST="${HERALD_GATEWAY_HOST:-0.0.0.0}"
# The local SMTP server (herald_testing.mailbox): every email the notifications service
# sends is kept as a .eml file in MAIL_DIR.
SMTP_PORT="${HERALD_NOTIFICATIONS_SMTP_PORT:-2525}"
MAIL_DIR="${HERALD_MAIL_DIR:-$REPO_ROOT/.run/mail}"

# name:port:python-module:command  (port "-" = no HTTP endpoint)
COMPONENTS=(
  "smtp:-:herald_testing:-m herald_testing.mailbox --host 127.0.0.1 --port $SMTP_PORT --dir $MAIL_DIR"
  "users:$USERS_PORT:herald_users:-m herald_users"
  "notifications:$NOTIFICATIONS_PORT:herald_notifications:-m herald_notifications"
  "recommendations:$RECOMMENDATIONS_PORT:herald_recommendations:-m herald_recommendations"
  "scheduler:$SCHEDULER_PORT:herald_scheduler:-m herald_scheduler"
  "scheduler-runner:-:herald_scheduler:-m herald_scheduler.cli run-local --dir examples/campaigns --dir examples/schedules"
  "gateway:$GATEWAY_PORT:herald_gateway:-m herald_gateway"
)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

say() { printf 'run: %s\n' "$*"; }

parse() { # parse SPEC -> NAME PORT MODULE CMD
  local spec="$1"
  NAME="${spec%%:*}"; spec="${spec#*:}"
  PORT="${spec%%:*}"; spec="${spec#*:}"
  MODULE="${spec%%:*}"; CMD="${spec#*:}"
}

load_env() {
  if [[ "${HERALD_RUN_SKIP_INFRA:-0}" != 1 ]]; then
    bash "$REPO_ROOT/dev/infra.sh" up >/dev/null
  fi
  if [[ -f "$REPO_ROOT/.run/infra.env" && "${HERALD_RUN_SKIP_INFRA:-0}" != 1 ]]; then
    # Variables already set win over the file.
    while IFS= read -r line; do
      line="${line#export }"
      [[ "$line" == HERALD_*=* ]] || continue
      local key="${line%%=*}" value="${line#*=}"
      value="${value#\'}"; value="${value%\'}"
      [[ -n "${!key:-}" ]] || export "$key=$value"
    done <"$REPO_ROOT/.run/infra.env"
  fi
  export HERALD_ENVIRONMENT="${HERALD_ENVIRONMENT:-local}"
  export HERALD_LOG_JSON="${HERALD_LOG_JSON:-false}"
  export HERALD_USERS_PORT="$USERS_PORT" HERALD_NOTIFICATIONS_PORT="$NOTIFICATIONS_PORT"
  export HERALD_RECOMMENDATIONS_PORT="$RECOMMENDATIONS_PORT" HERALD_SCHEDULER_PORT="$SCHEDULER_PORT"
  export HERALD_GATEWAY_PORT="$GATEWAY_PORT" HERALD_GATEWAY_HOST="$GATEWAY_HOST"
  # Services listen on loopback only; the gateway is the single public entry point.
  export HERALD_USERS_HOST=127.0.0.1 HERALD_NOTIFICATIONS_HOST=127.0.0.1
  export HERALD_RECOMMENDATIONS_HOST=127.0.0.1 HERALD_SCHEDULER_HOST=127.0.0.1
  export HERALD_USERS_MONGODB_DB="${DB_PREFIX}_users"
  export HERALD_NOTIFICATIONS_MONGODB_DB="${DB_PREFIX}_notifications"
  export HERALD_RECOMMENDATIONS_MONGODB_DB="${DB_PREFIX}_recommendations"
  export HERALD_SCHEDULER_MONGODB_DB="${DB_PREFIX}_scheduler"
  export HERALD_JWKS_URL="http://127.0.0.1:$USERS_PORT/.well-known/jwks.json"
  export HERALD_GATEWAY_USERS_URL="http://127.0.0.1:$USERS_PORT"
  export HERALD_GATEWAY_NOTIFICATIONS_URL="http://127.0.0.1:$NOTIFICATIONS_PORT"
  export HERALD_GATEWAY_RECOMMENDATIONS_URL="http://127.0.0.1:$RECOMMENDATIONS_PORT"
  export HERALD_GATEWAY_SCHEDULER_URL="http://127.0.0.1:$SCHEDULER_PORT"
}

installed() { "$PY" -c "import $1" 2>/dev/null; }

pid_of() { # prints the pid if the component runs
  sv_pid "$RUN_DIR/$1.pid"
}

ready() { # ready PORT -> 0 when /readyz answers 200
  sv_http_ok "http://127.0.0.1:$1/readyz"
}

port_busy() {
  sv_tcp_open 127.0.0.1 "$1"
}

start_one() {
  parse "$1"
  if ! installed "$MODULE"; then
    say "$NAME: skipped: package $MODULE is not installed (make venv installs every component)"
    return 0
  fi
  if pid="$(pid_of "$NAME")"; then
    say "$NAME: already running (pid $pid)"
    return 0
  fi
  if [[ "$PORT" != - ]] && port_busy "$PORT"; then
    say "$NAME: port $PORT is taken by another process; stop it or set HERALD_${NAME^^}_PORT" >&2
    return 1
  fi
  mkdir -p "$LOG_DIR"
  local pid
  # shellcheck disable=SC2086
  pid="$(sv_spawn "$LOG_DIR/$NAME.log" "$PY" $CMD)"
  echo "$pid" >"$RUN_DIR/$NAME.pid"
  say "$NAME: started (pid $pid, log ${LOG_DIR#"$REPO_ROOT"/}/$NAME.log)"
}

wait_ready() {
  parse "$1"
  [[ "$PORT" != - ]] || return 0
  installed "$MODULE" || return 0
  local pid rc=0
  if pid="$(pid_of "$NAME")"; then
    sv_wait "$TIMEOUT" "$pid" ready "$PORT" || rc=$?
  else
    rc=2
  fi
  if ((rc == 2)); then
    say "$NAME: exited during start-up; last log lines:" >&2
    tail -n 30 "$LOG_DIR/$NAME.log" >&2 || true
    return 1
  fi
  if ((rc == 1)); then
    say "$NAME: not ready after ${TIMEOUT}s (http://127.0.0.1:$PORT/readyz); see $LOG_DIR/$NAME.log" >&2
    return 1
  fi
  say "$NAME: ready on port $PORT"
}

seed() {
  [[ "${HERALD_RUN_SEED:-1}" == 1 ]] || return 0
  local marker="$RUN_DIR/seeded-$DB_PREFIX"
  [[ -f "$marker" ]] && return 0
  if installed herald_recommendations; then
    say "seeding the catalog and mock activity (recommendations generate)"
    "$PY" -m herald_recommendations.cli generate \
      --users "${HERALD_SEED_USERS:-60}" --products "${HERALD_SEED_PRODUCTS:-300}" \
      --events "${HERALD_SEED_EVENTS:-6000}" >>"$LOG_DIR/seed.log" 2>&1 ||
      { say "seeding the catalog failed; see $LOG_DIR/seed.log" >&2; return 1; }
  fi
  if installed herald_scheduler; then
    say "seeding mock orders (scheduler seed-orders)"
    "$PY" -m herald_scheduler.cli seed-orders --all-users --per-user 1 >>"$LOG_DIR/seed.log" 2>&1 ||
      say "seeding orders failed (see $LOG_DIR/seed.log); continuing" >&2
  fi
  touch "$marker"
}

cmd_up() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  load_env
  local spec failed=0
  for spec in "${COMPONENTS[@]}"; do
    start_one "$spec" || failed=1
  done
  for spec in "${COMPONENTS[@]}"; do
    wait_ready "$spec" || failed=1
  done
  if ((failed)); then
    say "some components did not start; \`dev/run.sh status\` and the logs tell more" >&2
    exit 1
  fi
  seed
  cat <<EOF

Herald is up.
  GraphQL (POST, GraphiQL in a browser, WebSocket subscriptions):  http://localhost:$GATEWAY_PORT/graphql
  Schema (SDL):                                                  http://localhost:$GATEWAY_PORT/graphql/schema.graphql
  Example operations:                                            examples/graphql/
  Admin account (local only): admin@herald.local / herald-admin-local
    (HERALD_USERS_ADMIN_EMAIL / HERALD_USERS_ADMIN_PASSWORD override it; see services/users/README.md)
  Emails (local SMTP server on 127.0.0.1:$SMTP_PORT): ${MAIL_DIR#"$REPO_ROOT"/}/*.eml
  Logs: ${LOG_DIR#"$REPO_ROOT"/}/   Stop: make down
EOF
}

stop_one() {
  local name="$1" pid
  pid="$(pid_of "$name")" || return 0
  # sv_spawn made each component its own process group: stop the group it leads.
  sv_stop "$pid" 15 group
  rm -f "$RUN_DIR/$name.pid"
  say "$name: stopped"
}

cmd_down() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    parse "${COMPONENTS[$i]}"
    stop_one "$NAME"
  done
}

cmd_status() {
  local spec down=0 pid
  for spec in "${COMPONENTS[@]}"; do
    parse "$spec"
    if ! installed "$MODULE"; then
      printf '%-17s not installed\n' "$NAME"
    elif pid="$(pid_of "$NAME")"; then
      if [[ "$PORT" == - ]]; then
        printf '%-17s up    (pid %s)\n' "$NAME" "$pid"
      elif ready "$PORT"; then
        printf '%-17s up    http://127.0.0.1:%s (pid %s)\n' "$NAME" "$PORT" "$pid"
      else
        printf '%-17s starting or unhealthy  http://127.0.0.1:%s/readyz (pid %s)\n' "$NAME" "$PORT" "$pid"
        down=1
      fi
    else
      printf '%-17s down\n' "$NAME"
      down=1
    fi
  done
  return $((down ? 3 : 0))
}

cmd_logs() {
  if [[ $# -gt 0 ]]; then
    exec tail -n 100 -F "$LOG_DIR/$1.log"
  fi
  local f
  for f in "$LOG_DIR"/*.log; do
    [[ -f "$f" ]] || continue
    echo "==> ${f#"$REPO_ROOT"/} <=="
    tail -n 20 "$f"
  done
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
