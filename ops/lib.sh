# Shared paths and helpers for the ops scripts. Source it; do not run it.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
VENV="$ROOT/.venv"
ENV_FILE="$ROOT/.env"
PY="$VENV/bin/python"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if is_root; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

load_env() {
  [ -f "$ENV_FILE" ] || die "$ENV_FILE is missing; run ops/bootstrap.sh first"
  set -a
  # shellcheck disable=SC1090
  . "$ENV_FILE"
  set +a
}

# Newest installed PostgreSQL major version that has PostGIS next to it.
pg_version() {
  local dir ver best=""
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] || continue
    ver="$(basename "$(dirname "$dir")")"
    [ -f "/usr/share/postgresql/$ver/extension/postgis.control" ] || continue
    if [ -z "$best" ] || [ "$ver" -gt "$best" ]; then best="$ver"; fi
  done
  printf '%s' "$best"
}

pg_bin() { printf '/usr/lib/postgresql/%s/bin' "$(pg_version)"; }

# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` system user.
pg_user() { if is_root; then echo postgres; else id -un; fi; }

as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The cluster lives in the git-ignored .run folder when its owner can reach it; a checkout under a
# private home (e.g. /root) is not reachable by `postgres`, so it then lives in /var/tmp instead.
pg_home() {
  if is_root && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
    printf '/var/tmp/servicearea-%s/pg' "$(printf '%s' "$ROOT" | md5sum | cut -c1-10)"
  else
    printf '%s/pg' "$RUN_DIR"
  fi
}

# Start the local services; the ones this call started are stopped when the calling script exits (or when it
# calls services_down from its own exit handler).
services_up() {
  "$ROOT/ops/bootstrap.sh"
  STARTED_SERVICES="$(mktemp)"
  trap services_down EXIT
  "$ROOT/ops/services.sh" start "$STARTED_SERVICES"
}

services_down() {
  # shellcheck disable=SC2046
  [ -s "${STARTED_SERVICES:-}" ] && "$ROOT/ops/services.sh" stop $(cat "$STARTED_SERVICES")
  rm -f "${STARTED_SERVICES:-}"
}
