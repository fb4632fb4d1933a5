#!/usr/bin/env bash
# `make run`: install what is missing, start PostgreSQL+PostGIS and Redis, migrate, load the demo data, then run the
# Procfile's processes (gunicorn, a Celery worker, Celery beat and Flower) in the foreground with honcho. Ctrl-C
# stops everything it started; so does any of them exiting.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WEB_PORT="${WEB_PORT:-8000}"
FLOWER_PORT="${FLOWER_PORT:-5555}"

for port in "$WEB_PORT" "$FLOWER_PORT"; do
  port_free "$port" || die "port $port is already in use (another 'make run'?); set WEB_PORT / FLOWER_PORT to move"
done

honcho_pid=""
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$honcho_pid" ]; then
    kill -TERM "$honcho_pid" 2>/dev/null || true  # honcho stops every process of the Procfile
    wait "$honcho_pid" 2>/dev/null || true
  fi
  services_down
}
services_up
trap cleanup INT TERM EXIT

cd "$ROOT"
load_env
export DJANGO_SETTINGS_MODULE=project.settings.local
mkdir -p "$RUN_DIR"

log "migrating"
"$PY" manage.py migrate --noinput >/dev/null
log "loading demo data"
demo="$("$PY" manage.py load_demo | sed 's/^/  /')"  # indented as the URLs below are, every line
# Redis starts empty (it keeps no data across restarts): let the worker rebuild its side of the index.
"$PY" manage.py reindex --enqueue >/dev/null

# The Procfile's processes (web, worker, beat, flower), as every other way of running the service starts them.
export PATH="$VENV/bin:$PATH" WEB_BIND="127.0.0.1:$WEB_PORT" FLOWER_PORT CELERY_BEAT_SCHEDULE="$RUN_DIR/celerybeat-schedule"
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-3}" CELERY_WORKER_CONCURRENCY="${CELERY_WORKER_CONCURRENCY:-2}"
"$VENV/bin/honcho" start -f "$ROOT/Procfile" &
honcho_pid=$!

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

  Logs of all four processes below. Ctrl-C stops everything.

EOF

# Until Ctrl-C (cleanup stops everything), or until a process exits: honcho then stops the others.
status=0
wait "$honcho_pid" || status=$?
# A wait interrupted by Ctrl-C returns above 128 (and cleanup runs); otherwise a process ended by itself.
[ "$status" -gt 128 ] || warn "a process of the Procfile exited (above); everything is stopped"
