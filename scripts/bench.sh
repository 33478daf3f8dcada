#!/usr/bin/env bash
# Runs a benchmark script from tests/benchmarks/ against real services started on loopback (as the
# test command does), then stops them. Figures are printed and written to bench-results/.
#
#   bash scripts/bench.sh imaging            ingest rate, WADO-RS frames, QIDO p95 (issue: foundation)
#   bash scripts/bench.sh interactive        prompts to Dice, NoC@85/90, latency per engine (issue 17)
#   bash scripts/bench.sh reader             first image, stack fps, MPR ready 512x512x300 in Chromium (issue 15)
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: bash scripts/bench.sh NAME [args]}"; shift
bash scripts/bootstrap.sh
SERVICES_DIR=$(mktemp -d /tmp/medlabel-bench.XXXXXX)
cleanup() { bash scripts/services.sh stop "$SERVICES_DIR" || true; rm -rf "$SERVICES_DIR"; }
trap cleanup EXIT
read -r free1 free2 free3 free4 < <(.venv/bin/python scripts/free_ports.py 4)
export PG_PORT="${PG_PORT:-$free1}" REDIS_PORT="${REDIS_PORT:-$free2}"
export ORTHANC_HTTP_PORT="${ORTHANC_HTTP_PORT:-$free3}" ORTHANC_DICOM_PORT="${ORTHANC_DICOM_PORT:-$free4}"
bash scripts/services.sh start "$SERVICES_DIR"
# shellcheck disable=SC1091
source "$SERVICES_DIR/env"
export DJANGO_SECRET_KEY=bench-only-secret-key DJANGO_SETTINGS_MODULE=config.settings
export MEDLABEL_DATA_DIR="$SERVICES_DIR/data" PYTHONUNBUFFERED=1
mkdir -p "$MEDLABEL_DATA_DIR" bench-results
.venv/bin/python manage.py migrate --noinput -v0
.venv/bin/python "tests/benchmarks/bench_$name.py" "$@"
