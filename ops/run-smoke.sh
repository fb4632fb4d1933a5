#!/usr/bin/env bash
# `make run-smoke` (CI runs it): `make run` as a new user starts it, on spare ports, until it serves the demo:
# the health check answers, a public lookup at JFK names the demo providers, the portal and the API docs load.
# Then Ctrl-C, and everything it started must be gone. Prints how long `make run` took to serve.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WEB_PORT="${WEB_PORT:-18000}"
FLOWER_PORT="${FLOWER_PORT:-15555}"
LOG="$(mktemp)"
started=$SECONDS

cd "$ROOT"
WEB_PORT=$WEB_PORT FLOWER_PORT=$FLOWER_PORT setsid ops/run.sh >"$LOG" 2>&1 &
run_pid=$!
stop_run() {
  kill -INT -- "-$run_pid" 2>/dev/null || true
  for _ in $(seq 120); do kill -0 "$run_pid" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL -- "-$run_pid" 2>/dev/null || true
}
trap 'stop_run; rm -f "$LOG"' EXIT

base="http://127.0.0.1:$WEB_PORT"
until grep -q "Service area lookup is running" "$LOG"; do
  kill -0 "$run_pid" 2>/dev/null || { cat "$LOG" >&2; die "make run exited before serving"; }
  [ $((SECONDS - started)) -lt 900 ] || { tail -40 "$LOG" >&2; die "make run did not serve within 15 minutes"; }
  sleep 1
done
log "make run served after $((SECONDS - started)) s"

body="$(curl -fsS "$base/api/v1/lookup/?lat=40.6413&lng=-73.7781")" || { tail -40 "$LOG" >&2; die "lookup failed"; }
for provider in "Acme Shuttles" "Big Apple Cabs"; do
  grep -q "\"$provider\"" <<<"$body" || die "the demo lookup at JFK does not name $provider: $body"
done
curl -fsS "$base/health/live/" >/dev/null || die "/health/live/ failed"
curl -fsS "$base/portal/" >/dev/null || die "the portal did not load"
curl -fsS "$base/api/docs/" >/dev/null || die "Swagger UI did not load"
curl -fsS "$base/api/schema/" >/dev/null || die "the OpenAPI schema did not load"
log "the demo lookup, the portal and the API docs answer"

stop_run
trap 'rm -f "$LOG"' EXIT
if curl -fs "$base/health/live/" >/dev/null 2>&1; then die "the web server still answers after Ctrl-C"; fi
log "make run stopped cleanly; $((SECONDS - started)) s in all"
