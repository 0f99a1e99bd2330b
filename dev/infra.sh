#!/usr/bin/env bash
# Local infrastructure for Herald: RabbitMQ, Redis and a MongoDB wire-protocol server
# (FerretDB on PostgreSQL).
#
# Usage: dev/infra.sh COMMAND
#
#   up        install (apt) and start what is missing, wait until every server answers,
#             write .run/infra.env; a second `up` is a no-op
#   down      stop what `up` started (servers started by anything else are left alone)
#   status    one line per server: up/down and URL; exits 3 if any server is down
#   env       print `export HERALD_...=` lines (variables already set win)
#   rabbitmqctl ARGS...
#             run rabbitmqctl against the broker started by `up`
#
# Servers (all on 127.0.0.1; data, logs and pid files under .run/):
#   RabbitMQ  5672   Debian's rabbitmq-server, node herald@localhost, data .run/rabbitmq
#   Redis     6379   Debian's redis-server, no persistence, dir .run/redis
#   MongoDB   27017  HERALD_MONGODB_URI / MONGODB_URI if set to another address; else
#                    mongod if on PATH; else FerretDB (dev/ferretdb) on PostgreSQL
#   PostgreSQL 5433  Debian's postgresql-15, only under FerretDB; data .run/postgresql
#
# Environment:
#   HERALD_MONGODB_URI, HERALD_AMQP_URL, HERALD_REDIS_URL
#             use these instead of the defaults; a URL whose host:port is not the local
#             default is treated as an external server: `up` only checks that it answers
#   HERALD_INFRA_MONGO=ferretdb|mongod   choose the local MongoDB server explicitly
#   HERALD_INFRA_TIMEOUT=SECONDS         how long to wait for each server (default 120)
#
# See dev/README.md.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=dev/lib/supervise.sh
. "$REPO_ROOT/dev/lib/supervise.sh"
RUN_DIR="$REPO_ROOT/.run"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
ENV_FILE="$RUN_DIR/infra.env"

HOST=127.0.0.1
AMQP_PORT=5672
REDIS_PORT=6379
MONGO_PORT=27017
PG_PORT=5433
PG_BIN=/usr/lib/postgresql/15/bin
PG_URL="postgres://herald@$HOST:$PG_PORT/ferretdb?sslmode=disable&pool_max_conns=100"

DEFAULT_MONGODB_URI="mongodb://$HOST:$MONGO_PORT"
DEFAULT_AMQP_URL="amqp://guest:guest@$HOST:$AMQP_PORT/"
DEFAULT_REDIS_URL="redis://$HOST:$REDIS_PORT/0"

MONGODB_URI_RESOLVED="${HERALD_MONGODB_URI:-${MONGODB_URI:-$DEFAULT_MONGODB_URI}}"
AMQP_URL_RESOLVED="${HERALD_AMQP_URL:-$DEFAULT_AMQP_URL}"
REDIS_URL_RESOLVED="${HERALD_REDIS_URL:-$DEFAULT_REDIS_URL}"

TIMEOUT="${HERALD_INFRA_TIMEOUT:-120}"

RABBITMQ_LIB_BIN=/usr/lib/rabbitmq/bin
RABBITMQ_NODE="herald@localhost"
FERRETDB_BIN="$RUN_DIR/bin/herald-ferretdb"

# ---------------------------------------------------------------------------- helpers

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
  echo "infra: error: $*" >&2
  exit 1
}

say() {
  printf '%-9s %s\n' "$1:" "$2"
}

now() {
  echo "${EPOCHREALTIME/,/.}"
}

since() {
  awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'
}

# Single-quote a value for the shell.
shell_quote() {
  printf "'%s'" "${1//\'/\'\\\'\'}"
}

# Hide the password of a URL (scheme://user:password@host...).
mask_url() {
  sed -E 's#^([a-z+]+://[^:/@]+):[^@/]*@#\1:***@#' <<<"$1"
}

# host:port of the first host in a URL (mongodb, amqp, redis); default port as $2.
url_hostport() {
  local rest="${1#*://}" port
  rest="${rest%%[/?]*}"
  rest="${rest##*@}"
  rest="${rest%%,*}"
  if [[ $rest == \[* ]]; then # [ipv6]:port
    local h="${rest%%]*}]"
    port="${rest#"$h"}"
    port="${port#:}"
    echo "$h:${port:-$2}"
  elif [[ $rest == *:* ]]; then
    echo "$rest"
  else
    echo "$rest:$2"
  fi
}

# True when a URL points at the local default address we manage ourselves.
is_local_default() {
  local hp
  hp="$(url_hostport "$1" "$2")"
  [[ $1 != mongodb+srv://* ]] && [[ $hp == "$HOST:$2" || $hp == "localhost:$2" ]]
}

pid_alive() {
  sv_alive "${1:-}"
}

pid_comm() {
  cat "/proc/$1/comm" 2>/dev/null || true
}

read_pid() {
  sv_read_pid "$PID_DIR/$1.pid"
}

# pid of our server $1 if its pid file names a live process whose name starts with $2.
our_pid() {
  sv_pid "$PID_DIR/$1.pid" "$2" || true
}

# "pid name" of the process listening on TCP port $1 (empty if none / not visible).
port_owner() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "( sport = :$1 )" 2>/dev/null |
    sed -nE 's/.*users:\(\("([^"]*)",pid=([0-9]+).*/\2 \1/p' | head -n1
}

port_in_use() {
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "( sport = :$1 )" 2>/dev/null) ]]
  else
    probe tcp "$HOST" "$1"
  fi
}

describe_owner() {
  local owner
  owner="$(port_owner "$1")"
  if [[ -n $owner ]]; then
    echo "pid ${owner%% *} (${owner#* })"
  else
    echo "an unknown process (see: ss -ltnp 'sport = :$1')"
  fi
}

# probe KIND HOST PORT: does a server of KIND (tcp, redis, amqp, mongo, pg) answer there?
probe() {
  if [[ $1 == pg ]]; then
    "$PG_BIN/pg_isready" -q -h "$2" -p "$3" -t 3 2>/dev/null
    return
  fi
  if ! command -v python3 >/dev/null; then
    # Without Python we can only check that the port accepts connections.
    timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
    return
  fi
  python3 - "$@" <<'PY' 2>/dev/null
import socket, struct, sys

kind, host, port = sys.argv[1], sys.argv[2].strip("[]"), int(sys.argv[3])

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf

def bson_ping():
    # {ping: 1, $db: "admin"}
    body = b"\x10ping\x00" + struct.pack("<i", 1) + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    return struct.pack("<i", len(body) + 5) + body + b"\x00"

with socket.create_connection((host, port), timeout=3) as s:
    s.settimeout(3)
    if kind == "tcp":
        ok = True
    elif kind == "redis":
        s.sendall(b"PING\r\n")
        ok = s.recv(64).startswith(b"+PONG")
    elif kind == "amqp":
        s.sendall(b"AMQP\x00\x00\x09\x01")
        frame = recv_exact(s, 11)
        # method frame on channel 0 carrying connection.start (class 10, method 10)
        ok = frame[0] == 1 and frame[1:3] == b"\x00\x00" and frame[7:11] == b"\x00\x0a\x00\x0a"
    elif kind == "mongo":
        doc = bson_ping()
        msg = struct.pack("<iiii", 16 + 5 + len(doc), 1, 0, 2013) + b"\x00\x00\x00\x00\x00" + doc
        s.sendall(msg)
        length, _, _, opcode = struct.unpack("<iiii", recv_exact(s, 16))
        reply = recv_exact(s, length - 16)
        i = reply.find(b"\x01ok\x00")
        ok = opcode == 2013 and i >= 0 and struct.unpack("<d", reply[i + 4 : i + 12])[0] == 1.0
    else:
        ok = False
sys.exit(0 if ok else 1)
PY
}

# await KIND HOST PORT [PID]: poll until the server answers (0); 1 on timeout, 2 when PID
# (the server process) exits first.
await() {
  local kind="$1" host="$2" port="$3" pid="${4:-}" deadline=$((SECONDS + TIMEOUT))
  until probe "$kind" "$host" "$port"; do
    if [[ -n $pid ]] && ! pid_alive "$pid"; then
      return 2
    fi
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.2
  done
}

# wait_for NAME KIND HOST PORT [PID]: like await, but fails with a message.
wait_for() {
  local name="$1" rc=0
  shift
  await "$@" || rc=$?
  case $rc in
    0) ;;
    2) die "$name exited during startup; see the log in $LOG_DIR/" ;;
    *) die "$name did not answer on $2:$3 within ${TIMEOUT}s; see the log in $LOG_DIR/" ;;
  esac
}

# Start a process detached from this shell (own session, no stdin); prints its pid.
spawn() {
  # fd 9 is the lock (see with_lock): sv_spawn closes it, servers must not inherit it.
  sv_spawn "$@"
}

# stop_pid NAME PID [SECONDS]: SIGTERM, wait, then SIGKILL.
stop_pid() {
  sv_stop "$2" "${3:-30}"
}

# check_port NAME PORT KIND: the port is free (return 0), or already served by the
# expected kind of server (return 1, after saying so), or taken by something else (die).
check_port() {
  local name="$1" port="$2" kind="$3"
  port_in_use "$port" || return 0
  if probe "$kind" "$HOST" "$port"; then
    say "$name" "already running on $HOST:$port, $(describe_owner "$port"), not started by dev/infra.sh (left alone)"
    return 1
  fi
  die "port $port (needed by $name) is in use by $(describe_owner "$port"), which does not answer like $name; stop it or point HERALD_* at another server"
}

# What `down` says when it has nothing of its own to stop.
not_ours_message() {
  if port_in_use "$1"; then
    echo "not started by dev/infra.sh: $(describe_owner "$1") on port $1 left running"
  else
    echo "not running (nothing to stop)"
  fi
}

with_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/infra.lock"
  flock -w 600 9 || die "another dev/infra.sh is still running (lock $RUN_DIR/infra.lock)"
}

# ---------------------------------------------------------------------------- packages

package_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    package_installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0

  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need to install ${missing[*]} but not root and no sudo"
    sudo=(sudo)
  fi
  local log="$LOG_DIR/apt.log" t0
  t0="$(now)"
  echo "infra: installing ${missing[*]} (apt-get; output in $log)"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
    apt-get -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
  if ! "${apt[@]}" install -y "${missing[@]}" >>"$log" 2>&1 9>&-; then
    echo "infra: install failed; running apt-get update and retrying"
    "${apt[@]}" update >>"$log" 2>&1 9>&- || true
    if ! "${apt[@]}" install -y "${missing[@]}" >>"$log" 2>&1 9>&-; then
      tail -n 20 "$log" >&2
      die "could not install ${missing[*]} with apt-get (full output in $log)"
    fi
  fi
  for pkg in "${missing[@]}"; do
    package_installed "$pkg" || die "$pkg is still not installed after apt-get (see $log)"
  done
  echo "infra: installed ${missing[*]} in $(since "$t0")"
}

# ---------------------------------------------------------------------------- redis

redis_up() {
  local t0 pid
  t0="$(now)"
  if ! is_local_default "$REDIS_URL_RESOLVED" "$REDIS_PORT"; then
    local hp
    hp="$(url_hostport "$REDIS_URL_RESOLVED" "$REDIS_PORT")"
    wait_for redis tcp "${hp%:*}" "${hp##*:}"
    say redis "external server $(mask_url "$REDIS_URL_RESOLVED") reachable"
    return
  fi
  pid="$(our_pid redis redis-server)"
  if [[ -n $pid ]] && probe redis "$HOST" "$REDIS_PORT"; then
    say redis "already running on $HOST:$REDIS_PORT (pid $pid)"
    return
  fi
  check_port redis "$REDIS_PORT" redis || return 0

  mkdir -p "$RUN_DIR/redis"
  rm -f "$PID_DIR/redis.pid"
  # No config file: only these settings. No persistence: this is scratch data.
  redis-server --daemonize yes \
    --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
    --dir "$RUN_DIR/redis" \
    --pidfile "$PID_DIR/redis.pid" \
    --logfile "$LOG_DIR/redis.log" \
    --save "" --appendonly no \
    >>"$LOG_DIR/redis-server.out" 2>&1 </dev/null 9>&- ||
    die "redis-server failed to start; see $LOG_DIR/redis-server.out"
  wait_for redis redis "$HOST" "$REDIS_PORT"
  say redis "started on $HOST:$REDIS_PORT (pid $(read_pid redis), $(since "$t0"))"
}

redis_down() {
  local pid
  pid="$(our_pid redis redis-server)"
  if [[ -z $pid ]]; then
    rm -f "$PID_DIR/redis.pid"
    say redis "$(not_ours_message "$REDIS_PORT")"
    return
  fi
  redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  pid_alive "$pid" && stop_pid redis "$pid" 10
  rm -f "$PID_DIR/redis.pid"
  say redis "stopped"
}

# ---------------------------------------------------------------------------- rabbitmq

# Environment for our own RabbitMQ node. It runs as the calling user with everything
# under .run/, so it never touches the Debian service's node, cookie or data.
rabbitmq_env() {
  export HOME="$RUN_DIR/rabbitmq" # the Erlang cookie lives in $HOME/.erlang.cookie
  export RABBITMQ_NODENAME="$RABBITMQ_NODE"
  export RABBITMQ_NODE_IP_ADDRESS="$HOST"
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000))
  export RABBITMQ_MNESIA_BASE="$RUN_DIR/rabbitmq/mnesia"
  export RABBITMQ_LOG_BASE="$LOG_DIR"
  export RABBITMQ_LOGS="$LOG_DIR/rabbitmq.log"
  export RABBITMQ_PID_FILE="$PID_DIR/rabbitmq.pid"
  export RABBITMQ_CONF_ENV_FILE="$RUN_DIR/rabbitmq/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$RUN_DIR/rabbitmq/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RUN_DIR/rabbitmq/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RUN_DIR/rabbitmq/enabled_plugins"
  # Keep Erlang distribution (epmd, inter-node port) on the loopback interface too.
  export ERL_EPMD_ADDRESS="$HOST"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbitmq_prepare() {
  local dir="$RUN_DIR/rabbitmq"
  mkdir -p "$dir/mnesia"
  if [[ ! -s $dir/.erlang.cookie ]]; then
    (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' >"$dir/.erlang.cookie")
  fi
  chmod 400 "$dir/.erlang.cookie"
  : >"$dir/rabbitmq-env.conf" # ignore /etc/rabbitmq/rabbitmq-env.conf
  # Quorum queues, dead-lettering and TTLs are built in: no plugins are needed.
  echo '[].' >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<'EOF'
# Generated by dev/infra.sh; edits are overwritten on `up`.
# The default guest/guest user may only connect from the loopback interface.
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
}

rabbitmqctl_ours() {
  (rabbitmq_env && cd "$RUN_DIR/rabbitmq" && "$RABBITMQ_LIB_BIN/rabbitmqctl" "$@")
}

rabbitmq_up() {
  local t0 pid
  t0="$(now)"
  if ! is_local_default "$AMQP_URL_RESOLVED" "$AMQP_PORT"; then
    local hp
    hp="$(url_hostport "$AMQP_URL_RESOLVED" "$AMQP_PORT")"
    wait_for rabbitmq tcp "${hp%:*}" "${hp##*:}"
    say rabbitmq "external server $(mask_url "$AMQP_URL_RESOLVED") reachable"
    return
  fi
  pid="$(our_pid rabbitmq beam)"
  # It may still be booting; if it exits meanwhile (it was being stopped), start anew.
  if [[ -n $pid ]] && await amqp "$HOST" "$AMQP_PORT" "$pid"; then
    say rabbitmq "already running on $HOST:$AMQP_PORT (pid $pid)"
    return
  fi
  check_port rabbitmq "$AMQP_PORT" amqp || return 0
  if port_in_use $((AMQP_PORT + 20000)); then
    die "port $((AMQP_PORT + 20000)) (RabbitMQ inter-node port) is in use by $(describe_owner $((AMQP_PORT + 20000)))"
  fi

  rabbitmq_prepare
  rm -f "$PID_DIR/rabbitmq.pid"
  local script_pid
  script_pid="$(rabbitmq_env && cd "$RUN_DIR/rabbitmq" &&
    spawn "$LOG_DIR/rabbitmq-server.out" "$RABBITMQ_LIB_BIN/rabbitmq-server")"
  wait_for rabbitmq amqp "$HOST" "$AMQP_PORT" "$script_pid"
  say rabbitmq "started on $HOST:$AMQP_PORT (node $RABBITMQ_NODE, pid $(read_pid rabbitmq), $(since "$t0"))"
}

rabbitmq_down() {
  local pid
  pid="$(our_pid rabbitmq beam)"
  if [[ -z $pid ]]; then
    rm -f "$PID_DIR/rabbitmq.pid"
    say rabbitmq "$(not_ours_message "$AMQP_PORT")"
    return
  fi
  # `stop PIDFILE` waits until the Erlang VM has exited.
  if ! rabbitmqctl_ours -q stop "$PID_DIR/rabbitmq.pid" >>"$LOG_DIR/rabbitmq-server.out" 2>&1; then
    echo "infra: rabbitmqctl stop failed; sending SIGTERM" >&2
  fi
  pid_alive "$pid" && stop_pid rabbitmq "$pid" 30
  rm -f "$PID_DIR/rabbitmq.pid"
  # epmd (Erlang port mapper) was started by the node; stop it if nothing else uses it.
  if [[ -f $PID_DIR/epmd.ours ]] && command -v epmd >/dev/null; then
    if ! ERL_EPMD_ADDRESS="$HOST" epmd -names 2>/dev/null | grep -q '^name '; then
      ERL_EPMD_ADDRESS="$HOST" epmd -kill >/dev/null 2>&1 || true
    fi
    rm -f "$PID_DIR/epmd.ours"
  fi
  say rabbitmq "stopped"
}

# ---------------------------------------------------------------------------- postgresql

# FerretDB stores its data in PostgreSQL: our own cluster, on loopback, trust auth for
# the local role `herald`. PostgreSQL refuses to run as root; as root the cluster runs
# as the `postgres` system user that the Debian package creates.
PG_DIR="$RUN_DIR/postgresql"

pg_as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The data directory must be reachable by the cluster's user: when the checkout is not
# (e.g. under a private home directory), the cluster lives in /var/tmp, linked from .run.
pg_prepare_dir() {
  if ((EUID != 0)); then
    mkdir -p "$PG_DIR"
    return
  fi
  if [[ -L $PG_DIR || -d $PG_DIR ]]; then
    chown postgres: "$(readlink -f "$PG_DIR")"
    return
  fi
  mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR"
  if ! runuser -u postgres -- test -w "$PG_DIR"; then
    rmdir "$PG_DIR"
    local alt
    alt="/var/tmp/herald-postgresql-$(sha256sum <<<"$REPO_ROOT" | cut -c1-12)"
    mkdir -p "$alt"
    chown postgres: "$alt"
    ln -s "$alt" "$PG_DIR"
  fi
}

pg_up() {
  local t0 pid
  t0="$(now)"
  pid="$(our_pid postgresql postgres)"
  if [[ -n $pid ]] && await pg "$HOST" "$PG_PORT" "$pid"; then
    pg_ensure_database
    return
  fi
  ! port_in_use "$PG_PORT" ||
    die "port $PG_PORT (PostgreSQL under FerretDB) is in use by $(describe_owner "$PG_PORT")"

  pg_prepare_dir
  # The cluster's user may not be able to traverse the path of the link: use its target.
  local data
  data="$(readlink -f "$PG_DIR")/data"
  if [[ ! -s $data/PG_VERSION ]]; then
    pg_as_owner "$PG_BIN/initdb" -D "$data" -U herald -A trust -E UTF8 --locale=C.UTF-8 \
      >>"$LOG_DIR/postgresql-initdb.log" 2>&1 </dev/null 9>&- ||
      die "initdb failed; see $LOG_DIR/postgresql-initdb.log"
  fi
  # A local, loopback-only development server. synchronous_commit=off may lose the last
  # few hundred milliseconds of commits if the machine crashes (never when only a process
  # dies) and makes FerretDB's many small transactions several times faster.
  pg_as_owner tee "$data/postgresql.auto.conf" >/dev/null <<CONF
# Generated by dev/infra.sh; edits are overwritten on \`up\`.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$(readlink -f "$PG_DIR")'
max_connections = 300
shared_buffers = 256MB
synchronous_commit = off
log_min_messages = warning
# Statistics follow young, fast-growing collections within seconds: without them the
# planner guesses that a \$in of many keys matches most rows and reads the whole table.
autovacuum_naptime = 5s
CONF
  pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$(readlink -f "$PG_DIR")/postgresql.log" -s -w -t "$TIMEOUT" start \
    </dev/null 9>&- || die "PostgreSQL failed to start; see $PG_DIR/postgresql.log"
  head -n1 "$data/postmaster.pid" >"$PID_DIR/postgresql.pid"
  wait_for postgres pg "$HOST" "$PG_PORT" "$(read_pid postgresql)"
  pg_ensure_database
  say postgres "started on $HOST:$PG_PORT (pid $(read_pid postgresql), $(since "$t0"))"
}

pg_ensure_database() {
  local psql=("$PG_BIN/psql" -X -q -h "$HOST" -p "$PG_PORT" -U herald -d postgres -v ON_ERROR_STOP=1)
  if [[ -z $("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" 9>&-) ]]; then
    "${psql[@]}" -c "CREATE DATABASE ferretdb" >/dev/null 9>&- || die "could not create the ferretdb database"
  fi
}

pg_down() {
  local pid
  pid="$(our_pid postgresql postgres)"
  if [[ -z $pid ]]; then
    rm -f "$PID_DIR/postgresql.pid"
    return
  fi
  pg_as_owner "$PG_BIN/pg_ctl" -D "$(readlink -f "$PG_DIR")/data" -s -m fast -w -t 30 stop </dev/null 9>&- ||
    stop_pid postgres "$pid" 10
  rm -f "$PID_DIR/postgresql.pid"
  say postgres "stopped"
}

# Data of the SQLite backend (used before PostgreSQL) is moved aside, never mixed in.
ferretdb_retire_sqlite() {
  compgen -G "$RUN_DIR/ferretdb/*.sqlite" >/dev/null || return 0
  local dest="$RUN_DIR/ferretdb-sqlite"
  [[ ! -e $dest ]] || dest="$dest-$(date +%Y%m%d%H%M%S)"
  mkdir -p "$dest"
  mv "$RUN_DIR/ferretdb/"*.sqlite* "$dest/"
  echo "infra: FerretDB now keeps its data in PostgreSQL; the SQLite data of the earlier setup moved to ${dest#"$REPO_ROOT"/} (kept; \`make up\` seeds fresh mock data; to read it: .run/bin/herald-ferretdb -backend sqlite -data-dir ${dest#"$REPO_ROOT"/} -listen-addr 127.0.0.1:27018)"
}

# ---------------------------------------------------------------------------- mongodb

mongo_server_kind() {
  case "${HERALD_INFRA_MONGO:-}" in
    ferretdb | mongod) echo "$HERALD_INFRA_MONGO" ;;
    "") if command -v mongod >/dev/null; then echo mongod; else echo ferretdb; fi ;;
    *) die "HERALD_INFRA_MONGO must be ferretdb or mongod, not '$HERALD_INFRA_MONGO'" ;;
  esac
}

mongo_running_pid() {
  local pid
  pid="$(our_pid ferretdb herald-ferretdb)"
  [[ -n $pid ]] || pid="$(our_pid mongod mongod)"
  echo "$pid"
}

build_ferretdb() {
  local rc=0
  # With pipefail the pipeline fails with build.sh's status.
  "$REPO_ROOT/dev/ferretdb/build.sh" 2>&1 9>&- | sed -u 's/^/ferretdb: /' |
    { grep -Ev --line-buffered 'is up to date|go: downloading' || true; } || rc=$?
  ((rc == 0)) || die "building FerretDB failed (dev/ferretdb/build.sh, output above)"
}

mongo_up() {
  local t0 pid kind
  t0="$(now)"
  if ! is_local_default "$MONGODB_URI_RESOLVED" "$MONGO_PORT"; then
    if [[ $MONGODB_URI_RESOLVED == mongodb+srv://* ]]; then
      say mongodb "external server $(mask_url "$MONGODB_URI_RESOLVED") (SRV URI; not checked)"
      return
    fi
    local hp
    hp="$(url_hostport "$MONGODB_URI_RESOLVED" "$MONGO_PORT")"
    wait_for mongodb tcp "${hp%:*}" "${hp##*:}"
    say mongodb "external server $(mask_url "$MONGODB_URI_RESOLVED") reachable"
    return
  fi
  pid="$(mongo_running_pid)"
  if [[ -n $pid && $(pid_comm "$pid") == herald-ferretdb ]]; then
    # Rebuild if dev/ferretdb changed; a running server whose binary was replaced restarts.
    build_ferretdb
    if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == *" (deleted)" ]]; then
      say mongodb "restarting FerretDB (pid $pid): its binary was rebuilt"
      stop_pid ferretdb "$pid" 30
      rm -f "$PID_DIR/ferretdb.pid"
      pid=""
    fi
  fi
  if [[ -n $pid ]] && await mongo "$HOST" "$MONGO_PORT" "$pid"; then
    say mongodb "already running on $HOST:$MONGO_PORT ($(pid_comm "$pid"), pid $pid)"
    return
  fi
  check_port mongodb "$MONGO_PORT" mongo || return 0

  kind="$(mongo_server_kind)"
  if [[ $kind == mongod ]]; then
    command -v mongod >/dev/null || die "HERALD_INFRA_MONGO=mongod but mongod is not on PATH"
    mkdir -p "$RUN_DIR/mongodb"
    rm -f "$PID_DIR/mongod.pid"
    mongod --bind_ip "$HOST" --port "$MONGO_PORT" --dbpath "$RUN_DIR/mongodb" \
      --logpath "$LOG_DIR/mongod.log" --logappend \
      --pidfilepath "$PID_DIR/mongod.pid" --fork >>"$LOG_DIR/mongod.out" 2>&1 </dev/null 9>&- ||
      die "mongod failed to start; see $LOG_DIR/mongod.log"
    wait_for mongodb mongo "$HOST" "$MONGO_PORT" "$(read_pid mongod)"
    say mongodb "started mongod on $HOST:$MONGO_PORT (pid $(read_pid mongod), $(since "$t0"))"
  else
    build_ferretdb
    pg_up
    mkdir -p "$RUN_DIR/ferretdb"
    ferretdb_retire_sqlite
    pid="$(spawn "$LOG_DIR/ferretdb.log" "$FERRETDB_BIN" \
      -listen-addr "$HOST:$MONGO_PORT" -postgresql-url "$PG_URL" -data-dir "$RUN_DIR/ferretdb" \
      -log-level "${HERALD_FERRETDB_LOG_LEVEL:-error}")"
    echo "$pid" >"$PID_DIR/ferretdb.pid"
    wait_for mongodb mongo "$HOST" "$MONGO_PORT" "$pid"
    say mongodb "started FerretDB on $HOST:$MONGO_PORT (pid $pid, $(since "$t0"))"
  fi
}

mongo_down() {
  local pid name
  for name in ferretdb mongod; do
    pid="$(our_pid "$name" "${name/ferretdb/herald-ferretdb}")"
    if [[ -n $pid ]]; then
      stop_pid "$name" "$pid" 30
      rm -f "$PID_DIR/$name.pid"
      say mongodb "stopped $name"
      pg_down
      return
    fi
    rm -f "$PID_DIR/$name.pid"
  done
  say mongodb "$(not_ours_message "$MONGO_PORT")"
  pg_down
}

# ---------------------------------------------------------------------------- commands

print_env() {
  printf 'export HERALD_MONGODB_URI=%s\n' "$(shell_quote "$MONGODB_URI_RESOLVED")"
  printf 'export HERALD_AMQP_URL=%s\n' "$(shell_quote "$AMQP_URL_RESOLVED")"
  printf 'export HERALD_REDIS_URL=%s\n' "$(shell_quote "$REDIS_URL_RESOLVED")"
}

cmd_up() {
  local t0
  t0="$(now)"
  with_lock
  mkdir -p "$LOG_DIR" "$PID_DIR"

  local pkgs=()
  is_local_default "$AMQP_URL_RESOLVED" "$AMQP_PORT" && pkgs+=(rabbitmq-server)
  is_local_default "$REDIS_URL_RESOLVED" "$REDIS_PORT" && pkgs+=(redis-server)
  if is_local_default "$MONGODB_URI_RESOLVED" "$MONGO_PORT" && [[ $(mongo_server_kind) == ferretdb ]]; then
    pkgs+=(postgresql-15)
  fi
  ((${#pkgs[@]} == 0)) || ensure_packages "${pkgs[@]}"

  # Remember whether epmd was already there, so `down` only stops one we caused.
  if is_local_default "$AMQP_URL_RESOLVED" "$AMQP_PORT" && [[ -z $(our_pid rabbitmq beam) ]] &&
    ! port_in_use 4369 && ! port_in_use "$AMQP_PORT"; then
    : >"$PID_DIR/epmd.ours"
  fi

  # RabbitMQ boots slowly (10-20 s); start it first and overlap the others with it.
  local rabbit_log="$LOG_DIR/rabbitmq-up.out"
  rabbitmq_up >"$rabbit_log" 2>&1 &
  local rabbit_job=$!
  # Subshells: a failure (die) in one still lets the others start and report.
  local rc=0
  (redis_up) || rc=1
  (mongo_up) || rc=1
  wait "$rabbit_job" || rc=1
  cat "$rabbit_log"
  ((rc == 0)) || die "up failed (see above); logs are in $LOG_DIR/"

  {
    echo "# Written by dev/infra.sh up; source it or use \`dev/infra.sh env\`."
    print_env
  } >"$ENV_FILE"
  echo "infra: all servers up in $(since "$t0"); environment in ${ENV_FILE#"$REPO_ROOT"/}"
}

cmd_down() {
  with_lock
  mkdir -p "$LOG_DIR" "$PID_DIR"
  mongo_down
  redis_down
  rabbitmq_down
}

status_line() {
  local name="$1" kind="$2" url="$3" port="$4" pidname="$5" comm="$6" hp state note=""
  hp="$(url_hostport "$url" "$port")"
  if [[ $url == mongodb+srv://* ]]; then
    state="?"
    note="(SRV URI; not checked)"
  elif is_local_default "$url" "$port"; then
    if probe "$kind" "$HOST" "$port"; then
      state=up
      local pid
      pid="$(our_pid "$pidname" "$comm")"
      if [[ -n $pid ]]; then
        note="(pid $pid, dev/infra.sh)"
      else
        note="($(describe_owner "$port"), not started by dev/infra.sh)"
      fi
    else
      state=down
    fi
  elif probe tcp "${hp%:*}" "${hp##*:}"; then
    state=up
    note="(external)"
  else
    state=down
    note="(external)"
  fi
  printf '%-9s %-5s %s %s\n' "$name" "$state" "$(mask_url "$url")" "$note"
  [[ $state == up ]]
}

cmd_status() {
  local rc=0 mongo_pidname=ferretdb mongo_comm=herald-ferretdb
  if [[ -n $(our_pid mongod mongod) ]]; then
    mongo_pidname=mongod
    mongo_comm=mongod
  fi
  status_line rabbitmq amqp "$AMQP_URL_RESOLVED" "$AMQP_PORT" rabbitmq beam || rc=3
  status_line redis redis "$REDIS_URL_RESOLVED" "$REDIS_PORT" redis redis-server || rc=3
  status_line mongodb mongo "$MONGODB_URI_RESOLVED" "$MONGO_PORT" "$mongo_pidname" "$mongo_comm" || rc=3
  if [[ $mongo_pidname == ferretdb ]] && is_local_default "$MONGODB_URI_RESOLVED" "$MONGO_PORT"; then
    status_line postgres pg "${PG_URL%%\?*}" "$PG_PORT" postgresql postgres || rc=3
  fi
  return "$rc"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env ;;
    rabbitmqctl) rabbitmqctl_ours "$@" ;;
    -h | --help | help) usage ;;
    "")
      usage >&2
      exit 2
      ;;
    *)
      echo "infra: unknown command: $cmd" >&2
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
