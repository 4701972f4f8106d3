#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the store and nightly tests.
#
#   eval "$(bash .ci/postgres.sh)"     # exports RISKMATRIX_TEST_PG_URL
#   bash .ci/postgres.sh stop          # stops it
#
# Installs PostgreSQL with apt when no server binaries are found, creates a private cluster
# under $RISKMATRIX_PG_DIR (default /tmp/riskmatrix-pg) listening on 127.0.0.1 only, a user
# and a database. Progress goes to stderr; stdout carries only the export line.
set -euo pipefail

PG_DIR="${RISKMATRIX_PG_DIR:-/tmp/riskmatrix-pg}"
PG_PORT="${RISKMATRIX_PG_PORT:-55432}"
PG_USER="riskmatrix"
PG_PASSWORD="riskmatrix-test"
PG_DB="riskmatrix_test"
DATA="$PG_DIR/data"
LOG="$PG_DIR/server.log"

say() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then echo "$found"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
}

BINDIR="$(find_bindir)"
if [ -z "$BINDIR" ]; then
  say "installing PostgreSQL (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BINDIR="$(find_bindir)"
fi
[ -n "$BINDIR" ] || { say "PostgreSQL server binaries not found after install"; exit 1; }

# The server refuses to run as root: run it as the `postgres` system user when we are root.
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  as_owner() { "$@"; }
fi

if [ "${1:-start}" = "stop" ]; then
  if [ -f "$DATA/postmaster.pid" ]; then as_owner "$BINDIR/pg_ctl" -D "$DATA" -m fast stop >&2; fi
  exit 0
fi

mkdir -p "$PG_DIR"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$PG_DIR"; fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  say "initialising a cluster in $DATA"
  as_owner "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >&2 2>&1 || as_owner "$BINDIR/initdb" -D "$DATA" -U postgres \
    --auth=trust --encoding=UTF8 --locale=C >&2
fi

if ! as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  say "starting the server on 127.0.0.1:$PG_PORT"
  as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off" start >&2
fi

psql_admin() { as_owner "$BINDIR/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != "1" ]; then
  psql_admin -d postgres -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'" >&2
fi
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != "1" ]; then
  psql_admin -d postgres -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
fi

say "ready"
echo "export RISKMATRIX_TEST_PG_URL=postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
