#!/usr/bin/env bash
# `make test`: bootstrap, then lint, Django checks, migrations check, OpenAPI validation and pytest against
# real PostgreSQL+PostGIS and Redis (a separate test database and Redis databases, so it runs fine next to
# `make run`). Services this script starts are stopped again when it ends; ones already running are left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$ROOT/ops/bootstrap.sh"
started="$(mktemp)"
cleanup() {
  # shellcheck disable=SC2046
  [ -s "$started" ] && "$ROOT/ops/services.sh" stop $(cat "$started")
  rm -f "$started"
}
trap cleanup EXIT
"$ROOT/ops/services.sh" start "$started"

cd "$ROOT"
load_env
export DJANGO_SETTINGS_MODULE=project.settings.test

log "ruff (lint and format, 120 columns)"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

log "django system checks"
"$PY" manage.py check --fail-level WARNING

log "migrations are up to date"
"$PY" manage.py makemigrations --check --dry-run

log "OpenAPI schema validates without warnings"
"$PY" manage.py spectacular --validate --fail-on-warn --file /dev/null

log "pytest"
"$VENV/bin/pytest" "$@"
