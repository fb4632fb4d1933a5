#!/usr/bin/env bash
# `make bench`: generate data, build the index and measure lookups in-process and over HTTP, at several scales.
# Arguments go to `manage.py bench` (see `make bench ARGS=--help`), e.g. ARGS="--scales 1000,10000".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

services_up

cd "$ROOT"
load_env
export DJANGO_SETTINGS_MODULE=project.settings.bench
"$PY" manage.py bench "$@"
