#!/usr/bin/env bash
# `make bench`: load areas, build the index and measure lookups in-process and over HTTP (the lookup against a raw
# PostGIS query, the plain GeoDjango endpoint and two ceilings, all on one gunicorn), at several scales.
# Arguments go to `manage.py bench` (see `make bench ARGS=--help`), e.g. ARGS="--scales 1000,10000", or your own
# data: ARGS="--areas zones.ndjson --points points.ndjson" (one GeoJSON Feature / one {"lat", "lng"} per line;
# relative paths are from the repository root).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

services_up

cd "$ROOT"
load_env
export DJANGO_SETTINGS_MODULE=project.settings.bench
"$PY" manage.py bench "$@"
