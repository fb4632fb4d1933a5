# Shared paths and helpers for the ops scripts. Source it; do not run it.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run"
VENV="$ROOT/.venv"
ENV_FILE="$ROOT/.env"
PY="$VENV/bin/python"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The first port from $1 on that nothing listens on (another checkout's services keep theirs).
free_port_from() {
  local port="$1"
  while ! port_free "$port"; do port=$((port + 1)); done
  printf '%s' "$port"
}

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

# The virtualenv is whole (`pip check`: every installed package's requirements are met) and holds exactly what the
# lock pins, nothing more (ops/lockcheck.py). Fails when the lock misses a dependency or something else installed.
check_lock() {
  local lock="$1" report
  if ! report="$("$VENV/bin/pip" check 2>&1)"; then
    printf '%s\n' "$report" >&2
    die "the virtualenv's requirements are not all met: $lock misses a dependency (make lock)"
  fi
  "$PY" "$ROOT/ops/lockcheck.py" exact "$lock" >/dev/null || die "the virtualenv is not exactly $lock"
}

# Both locks pin every dependency of what their .in files ask for (extras included), at versions that satisfy it.
check_locks_closed() {
  "$PY" "$ROOT/ops/lockcheck.py" closed "$ROOT/requirements-dev.txt" "$ROOT/requirements-dev.in"
  "$PY" "$ROOT/ops/lockcheck.py" closed "$ROOT/requirements.txt" "$ROOT/requirements.in"
}

# Advisories accepted on purpose, each as `--ignore-vuln ID` with the reason beside it.
AUDIT_IGNORED=()

# pip-audit over the lock file alone (nothing is installed or built; the dev lock holds the runtime pins too).
# A known vulnerability fails. When the advisory service cannot be reached, or knows nothing of a pinned release,
# this warns and goes on: an outage of the service says nothing about this code and must not block every run.
audit_requirements() {
  local out status=0
  out="$(mktemp -d)"
  "$VENV/bin/pip-audit" --requirement "$ROOT/requirements-dev.txt" --require-hashes --disable-pip \
    --progress-spinner off --format json --output "$out/report.json" "${AUDIT_IGNORED[@]}" 2>"$out/stderr" \
    || status=$?
  if [ ! -s "$out/report.json" ]; then
    if grep -qE 'ConnectionError|ProxyError|Timeout|NameResolutionError|Max retries exceeded' "$out/stderr"; then
      warn "dependencies NOT audited: the advisory service could not be reached ($(tail -1 "$out/stderr"))"
      rm -rf "$out"
      return 0
    fi
    cat "$out/stderr" >&2
    rm -rf "$out"
    die "pip-audit failed (exit $status) without a report"
  fi
  status=0
  "$PY" - "$out/report.json" <<'PYTHON' || status=$?
import json
import sys

dependencies = json.load(open(sys.argv[1]))["dependencies"]
vulnerable = [d for d in dependencies if d.get("vulns")]
skipped = [d for d in dependencies if "skip_reason" in d]
for dependency in vulnerable:
    for vuln in dependency["vulns"]:
        fixed = ", ".join(vuln["fix_versions"]) or "no fixed release yet"
        aliases = " ".join(vuln.get("aliases") or [])
        print(f"  {dependency['name']} {dependency['version']}: {vuln['id']} {aliases} (fixed in {fixed})")
audited = len(dependencies) - len(skipped)
found = f"{len(vulnerable)} with known vulnerabilities" if vulnerable else "no known vulnerabilities"
print(f"  {audited} of {len(dependencies)} locked packages audited, {found}")
if skipped:
    names = [d["name"] for d in skipped]
    print(f"  not audited: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}")
    print(f"  ({skipped[0]['skip_reason']})")
sys.exit(1 if vulnerable else 2 if skipped else 0)
PYTHON
  rm -rf "$out"
  case "$status" in
    0) ;;
    2) warn "some locked packages could not be audited (above): the advisory service does not know those releases" ;;
    *) die "known vulnerabilities in the locked requirements: upgrade (make lock ARGS=\"--upgrade-package NAME\")," \
      "or accept one in AUDIT_IGNORED (ops/lib.sh) with the reason" ;;
  esac
}
