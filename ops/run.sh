#!/usr/bin/env bash
# `make run`: install what is missing, start PostgreSQL+PostGIS and Redis, migrate, load the demo data, then run
# gunicorn, a Celery worker, Celery beat and Flower in the foreground, each started again if it exits. Ctrl-C stops
# everything it started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WEB_PORT="${WEB_PORT:-8000}"
FLOWER_PORT="${FLOWER_PORT:-5555}"

for port in "$WEB_PORT" "$FLOWER_PORT"; do
  port_free "$port" || die "port $port is already in use (another 'make run'?); set WEB_PORT / FLOWER_PORT to move"
done

# Each process runs under `supervise`: when it exits on its own (a crash, an exit during an outage), it is started
# again after a back-off (1 s, doubling up to 30 s; back to 1 s once it ran for a minute) and the others keep
# running. Ctrl-C stops everything.
supervise() {
  local name="$1" logfile="$2"
  shift 2
  local pid="" status delay=1 started
  # TERM from cleanup: stop the process (it gets 10 s to finish what it is doing), then leave.
  trap 'stop_supervised "$pid"; exit 0' TERM
  while true; do
    started=$SECONDS
    if [ "$logfile" = - ]; then "$@" & else "$@" >>"$logfile" 2>&1 & fi
    pid=$!
    status=0
    wait "$pid" || status=$?
    pid=""
    if [ $((SECONDS - started)) -ge 60 ]; then delay=1; fi
    warn "$name exited (status $status); starting it again in ${delay}s"
    sleep "$delay" &
    wait $! || true
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
  done
}

stop_supervised() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -KILL "$pid" 2>/dev/null || true
}

children=()
cleanup() {
  trap - INT TERM EXIT
  if [ ${#children[@]} -gt 0 ]; then
    log "stopping web, worker, beat and flower"
    kill -TERM "${children[@]}" 2>/dev/null || true
    wait "${children[@]}" 2>/dev/null || true
  fi
  services_down
}
services_up
trap cleanup INT TERM EXIT

cd "$ROOT"
load_env
export DJANGO_SETTINGS_MODULE=project.settings.local
mkdir -p "$RUN_DIR/logs"

log "migrating"
"$PY" manage.py migrate --noinput >/dev/null
log "loading demo data"
demo="$("$PY" manage.py load_demo)"
# Redis starts empty (it keeps no data across restarts): let the worker rebuild its side of the index.
"$PY" manage.py reindex --enqueue >/dev/null

for name in worker beat flower; do : >"$RUN_DIR/logs/$name.log"; done
supervise web - "$VENV/bin/gunicorn" project.wsgi:application --bind "127.0.0.1:$WEB_PORT" \
  --workers "${WEB_CONCURRENCY:-3}" --access-logfile - --error-logfile - &
children+=($!)
supervise worker "$RUN_DIR/logs/worker.log" "$VENV/bin/celery" -A worker worker --loglevel INFO \
  --concurrency "${WORKER_CONCURRENCY:-2}" -Q index,maintenance,webhooks --events --hostname "worker@%h" &
children+=($!)
supervise beat "$RUN_DIR/logs/beat.log" "$VENV/bin/celery" -A worker beat --loglevel INFO \
  --schedule "$RUN_DIR/celerybeat-schedule" &
children+=($!)
# Flower's own Celery app reads the broker URL alone, not Django's settings (worker/flower.py).
supervise flower "$RUN_DIR/logs/flower.log" "$VENV/bin/celery" -A worker.flower flower --address=127.0.0.1 \
  --port="$FLOWER_PORT" &
children+=($!)

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$WEB_PORT/health/" >/dev/null 2>&1 && break
  sleep 0.2
done

cat <<EOF

  Service area lookup is running.

    API            http://127.0.0.1:$WEB_PORT/api/v1/
    Lookup         http://127.0.0.1:$WEB_PORT/api/v1/lookup/?lat=40.6413&lng=-73.7781
    Swagger UI     http://127.0.0.1:$WEB_PORT/api/docs/
    ReDoc          http://127.0.0.1:$WEB_PORT/api/redoc/
    OpenAPI        http://127.0.0.1:$WEB_PORT/api/schema/
    Health         http://127.0.0.1:$WEB_PORT/health/
    Admin          http://127.0.0.1:$WEB_PORT/admin/   (create a login: .venv/bin/python manage.py createsuperuser)
    Flower         http://127.0.0.1:$FLOWER_PORT/

  $demo
  Logs: web below; worker, beat and flower in .run/logs/. Ctrl-C stops everything.

EOF

# The supervisors run until Ctrl-C (cleanup stops them).
wait "${children[@]}"
