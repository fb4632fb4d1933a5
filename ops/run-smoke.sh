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
# As in a terminal: its own process group, SIGINT not ignored (a background job of a script ignores it), so the
# Ctrl-C below reaches every process of the group, as a terminal's does.
WEB_PORT=$WEB_PORT FLOWER_PORT=$FLOWER_PORT python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setpgid(0, 0)
os.execvp(sys.argv[1], sys.argv[1:])' ops/run.sh >"$LOG" 2>&1 &
run_pid=$!
ctrl_c() {
  kill -INT -- "-$run_pid" 2>/dev/null || return 0
  for _ in $(seq 60); do kill -0 "$run_pid" 2>/dev/null || return 0; sleep 0.5; done
  return 1
}
kill_all() { kill -KILL -- "-$run_pid" 2>/dev/null || true; }
# On any failure: stop it as a user would (honcho stops its processes), then make sure.
trap 'ctrl_c || kill_all; rm -f "$LOG"' EXIT

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
curl -fsS "http://127.0.0.1:$FLOWER_PORT/healthcheck" >/dev/null || die "Flower did not answer"
# The worker rebuilds the index in Redis (make run queues it): once /health/ says so, web, worker and Redis work.
for _ in $(seq 120); do
  curl -fs "$base/health/" | grep -q '"redis": *"live"' && break
  sleep 0.5
done
curl -fs "$base/health/" | grep -q '"redis": *"live"' || { curl -s "$base/health/" >&2; die "the index never went live"; }
log "the demo lookup, the portal, the API docs and Flower answer; the worker made the index live"

ctrl_c || { tail -30 "$LOG" >&2; die "make run did not stop within 30 s of Ctrl-C"; }
sleep 1
if pgrep -g "$run_pid" >/dev/null; then
  ps -o pid,args -g "$run_pid" >&2
  die "processes of make run are left after Ctrl-C"
fi
if curl -fs "$base/health/live/" >/dev/null 2>&1; then die "the web server still answers after Ctrl-C"; fi
log "make run stopped cleanly on Ctrl-C; $((SECONDS - started)) s in all"
