#!/usr/bin/env bash
# `make test`: bootstrap, then lint, Django checks, migrations check, OpenAPI validation and pytest against
# real PostgreSQL+PostGIS and Redis: a cluster and a server of this run's own (ops/test-services.sh), on free ports,
# thrown away at the end, so that it runs fine next to `make run`, `make bench` and other test runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/test-services.sh"

"$ROOT/ops/bootstrap.sh"

cd "$ROOT"
load_env
test_services_up
export DJANGO_SETTINGS_MODULE=project.settings.test

log "the virtualenv is exactly the lock, whole (pip check), and both locks are closed"
check_lock "$ROOT/requirements-dev.txt"
check_locks_closed

log "ruff (lint and format, 120 columns)"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

log "the portal's JavaScript, its pure parts (node --test)" && node --test --test-reporter=dot portal/tests/js/

log "known vulnerabilities in the locked requirements (pip-audit)"
audit_requirements

log "layers: each app imports only from below it (import-linter, .importlinter)"
"$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache

log "django system checks"
"$PY" manage.py check --fail-level WARNING

log "production settings pass Django's deployment checks"
DJANGO_SETTINGS_MODULE=project.settings.production DJANGO_ALLOWED_HOSTS=api.example.com \
  DJANGO_SECRET_KEY="check-deploy-only-$(printf '%064d' 0)" "$PY" manage.py check --deploy --fail-level WARNING

log "migrations are up to date"
"$PY" manage.py makemigrations --check --dry-run

log "OpenAPI schema validates without warnings"
"$PY" manage.py spectacular --validate --fail-on-warn --file /dev/null

log "AWS CloudFormation template (cfn-lint)"
"$VENV/bin/cfn-lint" ops/aws/servicearea.yaml

log "pytest"
"$VENV/bin/pytest" "$@"

log "benchmark, small scale: the index and plain lookups agree on every point (no timing targets)"
bench_log="$RUN_DIR/bench-ci.log"
if ! BENCH_DATABASE_NAME=bench_ci_servicearea BENCH_HEXINDEX_REDIS_URL="$REDIS_URL/9" \
  BENCH_CELERY_BROKER_URL="$REDIS_URL/8" BENCH_CACHE_REDIS_URL="$REDIS_URL/7" DJANGO_SETTINGS_MODULE=project.settings.bench \
  "$PY" manage.py bench --scales 2000 --points 500 --duration 2 --check --data-dir "$RUN_DIR/bench-ci" >"$bench_log" 2>&1
then
  tail -40 "$bench_log"
  die "the small-scale benchmark failed (log: $bench_log)"
fi
grep -E "^(imported|index built|in-process|HTTP)" "$bench_log"
