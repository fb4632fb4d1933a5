# The private PostgreSQL cluster (with PostGIS) and Redis server of one `make test` run: started by ops/test.sh on
# free ports, used by nothing else, thrown away when the run ends. What the tests wait for or read from a server
# (the change feed waits for the cluster's oldest transaction; Redis memory and statistics are server-wide) can then
# not be disturbed by `make run`, `make bench` or another test run on the same machine. Source it after lib.sh
# and load_env.
# shellcheck shell=bash

# The first ports tried; the next free ones are taken. Below Linux's ephemeral range (32768-60999), where an
# outgoing connection can hold a port that nothing listens on (a connect probe finds it free, a bind fails).
TEST_PG_PORT_FROM="${TEST_PG_PORT_FROM:-25432}"
TEST_REDIS_PORT_FROM="${TEST_REDIS_PORT_FROM:-26379}"
TEST_RUN=""  # this run's directory

# Where runs live: beside the project-local cluster (.run, or /var/tmp when `postgres` cannot reach the checkout).
test_runs_dir() { printf '%s/test-runs' "$(dirname "$(pg_home)")"; }

test_pg_ctl() { as_pg "$(pg_bin)/pg_ctl" -D "$1/pg/data" "${@:2}"; }

test_redis_cli() { REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

# Runs whose `make test` was killed before it could clean up: their cluster and Redis would hold ports and memory.
remove_dead_test_runs() {
  local run owner
  for run in "$(test_runs_dir)"/run.*; do
    [ -d "$run" ] || continue
    owner="$(cat "$run/owner.pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
    if [ -f "$run/pg/data/postmaster.pid" ]; then test_pg_ctl "$run" -m immediate -w stop >/dev/null 2>&1 || true; fi
    if [ -f "$run/redis/port" ]; then test_redis_cli "$(cat "$run/redis/port")" shutdown nosave >/dev/null 2>&1 || true; fi
    rm -rf "$run"
  done
}

test_pg_start() {
  local pg="$TEST_RUN/pg" port attempt
  mkdir -p "$pg"
  if is_root; then chown postgres: "$pg"; fi
  as_pg "$(pg_bin)/initdb" -D "$pg/data" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  printf '%s\n' "# one make test run's cluster, thrown away afterwards: durability buys nothing" \
    "listen_addresses = '127.0.0.1'" "unix_socket_directories = '$pg'" "max_connections = 200" \
    "shared_buffers = 128MB" "fsync = off" "synchronous_commit = off" "full_page_writes = off" \
    | as_pg tee -a "$pg/data/postgresql.conf" >/dev/null
  # Another run may take the port found free between the check and the start: then the next free one.
  port="$TEST_PG_PORT_FROM"
  for attempt in 1 2 3 4 5; do
    port="$(free_port_from "$port")"
    if test_pg_ctl "$TEST_RUN" -l "$pg/postgresql.log" -o "-p $port" -w -t 60 start >/dev/null; then
      TEST_PG_PORT="$port"
      break
    fi
    port=$((port + 1))  # held by something after all: try further on
    [ "$attempt" -lt 5 ] || { tail -20 "$pg/postgresql.log" >&2; die "the test cluster did not start"; }
  done
  # PostGIS in template1: the databases the tests create (test_servicearea, the benchmark's) have it.
  as_pg env PGOPTIONS="-c client_min_messages=warning" "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$pg" \
    -p "$TEST_PG_PORT" -U postgres -d template1 \
    -c "CREATE EXTENSION postgis" \
    -c "CREATE ROLE servicearea LOGIN CREATEDB PASSWORD '$PG_PASSWORD'" \
    -c "CREATE DATABASE servicearea OWNER servicearea" >/dev/null
}

test_redis_start() {
  local dir="$TEST_RUN/redis" port attempt
  mkdir -p "$dir"
  port="$TEST_REDIS_PORT_FROM"
  for attempt in 1 2 3 4 5; do
    port="$(free_port_from "$port")"
    echo "$port" >"$dir/port"
    # As the project-local Redis: no persistence, no eviction.
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes --requirepass "$REDIS_PASSWORD" \
      --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
      --save '' --appendonly no --maxmemory-policy noeviction --databases 16 >/dev/null
    for _ in $(seq 50); do
      if [ "$(test_redis_cli "$port" ping 2>/dev/null)" = "PONG" ]; then
        TEST_REDIS_PORT="$port"
        return 0
      fi
      sleep 0.1
    done
    [ "$attempt" -lt 5 ] || { tail -20 "$dir/redis.log" >&2; die "the test Redis did not start"; }
    port=$((port + 1))
  done
}

# Start both, point this shell's environment (and so everything the run starts) at them, stop them at exit.
test_services_up() {
  mkdir -p "$(test_runs_dir)"
  remove_dead_test_runs
  TEST_RUN="$(mktemp -d "$(test_runs_dir)/run.XXXXXX")"
  chmod 755 "$TEST_RUN"
  echo $$ >"$TEST_RUN/owner.pid"
  trap test_services_down EXIT
  test_pg_start
  test_redis_start
  export PG_PORT="$TEST_PG_PORT" REDIS_PORT="$TEST_REDIS_PORT"
  export DATABASE_URL="postgis://servicearea:$PG_PASSWORD@127.0.0.1:$TEST_PG_PORT/servicearea"
  export REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$TEST_REDIS_PORT"
  log "this run's own PostgreSQL on 127.0.0.1:$TEST_PG_PORT and Redis on 127.0.0.1:$TEST_REDIS_PORT ($TEST_RUN)"
}

test_services_down() {
  [ -n "$TEST_RUN" ] && [ -d "$TEST_RUN" ] || return 0
  if [ -f "$TEST_RUN/pg/data/postmaster.pid" ]; then
    test_pg_ctl "$TEST_RUN" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${TEST_REDIS_PORT:-}" ]; then test_redis_cli "$TEST_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$TEST_RUN"
}
