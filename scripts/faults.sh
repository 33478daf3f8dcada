#!/usr/bin/env bash
# Fault drills (tests/faults/run_faults.py): Redis restarted during a batch of jobs, PostgreSQL restarted
# under load, the upstream PACS hung and stopped during reading, a Celery worker killed mid-job.
# Starts PostgreSQL, Redis and Orthanc on loopback (scripts/services.sh), gunicorn with the production
# settings and a seeded project, then runs the drills. Report in bench-results/faults/report.md.
#
#   bash scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
OUT=${FAULTS_OUT:-bench-results/faults}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/medlabel-faults.XXXXXX)
chmod a+x "$WORK"  # PostgreSQL runs as user postgres and must reach $WORK/services
read -r PG_PORT REDIS_PORT ORTHANC_HTTP_PORT ORTHANC_DICOM_PORT WEB_PORT < <(.venv/bin/python scripts/free_ports.py 5)
export PG_PORT REDIS_PORT ORTHANC_HTTP_PORT ORTHANC_DICOM_PORT
GUNICORN_PID=""
cleanup() {
    [[ -n "$GUNICORN_PID" ]] && kill "$GUNICORN_PID" 2>/dev/null && wait "$GUNICORN_PID" 2>/dev/null || true
    bash scripts/services.sh stop "$WORK/services" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
bash scripts/services.sh start "$WORK/services" 2>"$WORK/services.log" || { cat "$WORK/services.log"; exit 1; }
# shellcheck disable=SC1091
source "$WORK/services/env"
export DJANGO_DEBUG=false DJANGO_SECRET_KEY=faults-secret LOG_FORMAT=json LOG_LEVEL=WARNING
export MEDLABEL_DATA_DIR="$WORK/data" MEDLABEL_STORAGE_DIR="$WORK/data/storage" DATABASE_CONN_MAX_AGE=60
mkdir -p "$MEDLABEL_STORAGE_DIR"
.venv/bin/python manage.py migrate --noinput >/dev/null
# One reading per case, so that submitted cases are final (single read) and can be exported.
.venv/bin/python -m tests.load.seed "$WORK/seed.json" --studies "${FAULTS_STUDIES:-150}" --readers-per-case 1
.venv/bin/gunicorn -c config/gunicorn.py config.wsgi:application --bind "127.0.0.1:$WEB_PORT" --workers 2 --threads 4 --timeout 60 \
    --log-level warning --error-logfile "$OUT/gunicorn.log" &
GUNICORN_PID=$!
for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$WEB_PORT/healthz" >/dev/null 2>&1 && break
    sleep 1
done
# Some submitted readings first, so that the exports have content and the counts have something to lose.
LOAD_SEED="$WORK/seed.json" LOAD_SUBMITS="$OUT/warmup-submits.jsonl" .venv/bin/locust -f tests/load/locustfile.py \
    --headless --host "http://127.0.0.1:$WEB_PORT" -u 10 -r 10 --run-time 20s --only-summary --loglevel ERROR >/dev/null 2>&1 || true
SERVICES_DIR="$WORK/services" WEB_URL="http://127.0.0.1:$WEB_PORT" LOAD_SEED="$WORK/seed.json" FAULTS_OUT="$OUT" \
    .venv/bin/python -m tests.faults.run_faults
