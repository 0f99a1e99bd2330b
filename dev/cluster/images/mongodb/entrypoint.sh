#!/bin/sh
# Accepts the mongod arguments the chart passes (--bind_ip_all, --auth, --port N) and
# runs herald-ferretdb on all addresses with its SQLite database in /data/db.
# FerretDB 1.x with SQLite accepts PLAIN authentication without checking the password
# (the chart's authMechanism=PLAIN); SCRAM is not supported.
set -eu
port=27017
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift ;;
    --port=*) port="${1#--port=}" ;;
  esac
  shift
done
exec /usr/local/bin/herald-ferretdb -backend sqlite -listen-addr "0.0.0.0:$port" \
  -data-dir /data/db -log-level "${HERALD_FERRETDB_LOG_LEVEL:-info}"
