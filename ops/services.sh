#!/usr/bin/env bash
# Project-local PostgreSQL+PostGIS and Redis, on ports that do not clash with system services.
#   ops/services.sh start [STARTED_FILE]   start what is not running; list what this call started in STARTED_FILE
#   ops/services.sh stop [pg] [redis]      stop the named services (both by default)
#   ops/services.sh status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_env

PG_HOME="$(pg_home)"
PGDATA="$PG_HOME/data"
PG_SOCK="$PG_HOME/sock"
REDIS_DIR="$RUN_DIR/redis"

psql_admin() { as_pg env PGOPTIONS="-c client_min_messages=warning" "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres "$@"; }

pg_running() { as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

pg_init() {
  [ -f "$PGDATA/PG_VERSION" ] && return 0
  log "initialising PostgreSQL cluster in $PGDATA"
  mkdir -p "$PG_HOME"
  is_root && chown postgres: "$PG_HOME"
  as_pg mkdir -p "$PGDATA" "$PG_SOCK"
  as_pg chmod 700 "$PG_SOCK"
  # Local socket connections (owner-only directory) are trusted; TCP needs the password from .env.
  as_pg "$(pg_bin)/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF
# servicearea development cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 512MB
# A developer cluster: losing the last transactions on a crash is fine, corruption is not.
synchronous_commit = off
max_wal_size = 4GB
EOF
}

pg_start() {
  pg_init
  # The port can change in .env; keep the cluster config in step with it.
  as_pg sed -i "s/^port = .*/port = $PG_PORT/" "$PGDATA/postgresql.conf"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" -l "$PG_HOME/postgresql.log" -w -t 60 start >/dev/null \
    || { tail -20 "$PG_HOME/postgresql.log" >&2; die "PostgreSQL did not start (log: $PG_HOME/postgresql.log)"; }
}

pg_provision() {
  # Idempotent: role (password follows .env), database, and PostGIS in template1 so that test
  # databases created by the test runner have it without superuser rights.
  psql_admin -d postgres <<EOF
SELECT 'CREATE ROLE servicearea LOGIN CREATEDB' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'servicearea')\gexec
ALTER ROLE servicearea PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE servicearea OWNER servicearea' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'servicearea')\gexec
EOF
  psql_admin -d template1 -c 'CREATE EXTENSION IF NOT EXISTS postgis'
  psql_admin -d servicearea -c 'CREATE EXTENSION IF NOT EXISTS postgis'
}

redis_cli() { REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

redis_running() { [ "$(redis_cli ping 2>/dev/null)" = "PONG" ]; }

redis_start() {
  mkdir -p "$REDIS_DIR"
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  # Redis holds derived data only (the index is rebuilt from PostgreSQL), so no persistence: a restart
  # comes back empty and the app notices, instead of coming back with a stale snapshot.
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
    --requirepass "$REDIS_PASSWORD" --daemonize yes --dir "$REDIS_DIR" \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --save '' --appendonly no --maxmemory-policy noeviction --databases 16 >/dev/null
  for _ in $(seq 50); do redis_running && return 0; sleep 0.1; done
  tail -20 "$REDIS_DIR/redis.log" >&2
  die "Redis did not start (log: $REDIS_DIR/redis.log)"
}

start() {
  local started_file="${1:-/dev/null}"
  mkdir -p "$RUN_DIR"
  : >"$started_file"
  # Two concurrent starts (make run and make test) must not both initialise the cluster.
  exec 9>"$RUN_DIR/services.lock"
  flock 9
  if ! pg_running; then pg_start; echo pg >>"$started_file"; fi
  pg_provision
  if ! redis_running; then redis_start; echo redis >>"$started_file"; fi
  flock -u 9
}

stop() {
  local what=("$@")
  [ ${#what[@]} -gt 0 ] || what=(pg redis)
  for service in "${what[@]}"; do
    case "$service" in
      pg)
        if pg_running; then log "stopping PostgreSQL"; as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; fi ;;
      redis)
        if redis_running; then log "stopping Redis"; redis_cli shutdown nosave >/dev/null 2>&1 || true; fi ;;
      *) die "unknown service: $service" ;;
    esac
  done
}

status() {
  if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT ($PGDATA)"; else echo "postgres: stopped"; fi
  if redis_running; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; fi
}

cmd="${1:-status}"
shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  status) status ;;
  *) die "usage: $0 start [STARTED_FILE] | stop [pg] [redis] | status" ;;
esac
