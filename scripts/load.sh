#!/usr/bin/env bash
# Load test: 50 simulated readers (Locust, headless, token auth) run the reading loop against gunicorn with
# the production settings, PostgreSQL and Redis (and Orthanc), all on loopback, for 5 minutes.
#
#   bash scripts/load.sh                  defaults: 50 users, 5 minutes, 250 studies
#   LOAD_USERS=20 LOAD_TIME=60s LOAD_STUDIES=60 bash scripts/load.sh      a short run
#
# Every gunicorn worker is warmed (has answered a request) before measuring (tests/load/warm.py). Prints
# Locust's table (CSVs in bench-results/load/), then per endpoint p50/p95/p99/max and database queries per
# request for the saturated phase apart from the idle tail once work runs out (tests/load/report.py), the
# CPU used by the load generator, the machine's load (uptime) before and after, and checks that every
# submission answered 201 is stored exactly once and that every case whose readings are all in was decided
# once (the agreement check runs after the reader's answer; tests/load/verify.py). Exit status 1 when a
# request failed, a worker was slow to answer its first request, a submission is missing or stored twice, or
# a case was left undecided or decided twice.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
USERS=${LOAD_USERS:-50}
RUN_TIME=${LOAD_TIME:-5m}
STUDIES=${LOAD_STUDIES:-250}
WORKERS=${LOAD_GUNICORN_WORKERS:-3}
THREADS=${LOAD_GUNICORN_THREADS:-4}
OUT=${LOAD_OUT:-bench-results/load}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/medlabel-load.XXXXXX)
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

# Production settings: DEBUG off, JSON logs at WARNING, persistent connections.
export DJANGO_DEBUG=false DJANGO_SECRET_KEY=load-test-secret LOG_FORMAT=json LOG_LEVEL=WARNING
export MEDLABEL_DATA_DIR="$WORK/data" MEDLABEL_STORAGE_DIR="$WORK/data/storage" DATABASE_CONN_MAX_AGE=60
export MEDLABEL_QUERY_COUNT_HEADER=true  # X-Query-Count on each response, for the report
mkdir -p "$MEDLABEL_STORAGE_DIR"
.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py collectstatic --noinput >/dev/null 2>&1 || true
echo "[load] seeding $STUDIES studies"
.venv/bin/python -m tests.load.seed "$WORK/seed.json" --studies "$STUDIES"

.venv/bin/gunicorn -c config/gunicorn.py config.wsgi:application --bind "127.0.0.1:$WEB_PORT" --workers "$WORKERS" \
    --threads "$THREADS" --timeout 60 --keep-alive 75 --log-level warning --error-logfile "$WORK/gunicorn.log" \
    --access-logfile "$WORK/access.log" &
GUNICORN_PID=$!
for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null 2>&1 && break
    sleep 1
done
curl -fsS "http://127.0.0.1:$WEB_PORT/readyz" >/dev/null || { tail -50 "$WORK/gunicorn.log"; exit 1; }
rc=0
.venv/bin/python -m tests.load.warm "http://127.0.0.1:$WEB_PORT" "$WORK/access.log" "$GUNICORN_PID" || rc=1

echo "[load] before: $(uptime)"
LOAD_SEED="$WORK/seed.json" LOAD_SUBMITS="$WORK/submits.jsonl" LOAD_REQUESTS="$WORK/requests.jsonl" \
    LOAD_CPU="$WORK/locust-cpu.json" .venv/bin/locust -f tests/load/locustfile.py \
    --headless --host "http://127.0.0.1:$WEB_PORT" -u "$USERS" -r 10 --run-time "$RUN_TIME" \
    --stop-timeout 30 --csv "$OUT/load" --only-summary --loglevel WARNING 2>&1 | tee "$OUT/summary.txt" || rc=$?
echo "[load] after:  $(uptime)"
cp "$WORK/submits.jsonl" "$WORK/requests.jsonl" "$OUT/"
cp "$WORK/locust-cpu.json" "$OUT/" 2>/dev/null || true
.venv/bin/python -m tests.load.report "$WORK/requests.jsonl" "$WORK/locust-cpu.json" | tee "$OUT/report.txt" || rc=1
echo "[load] checking that every submitted revision is stored and every complete case decided"
.venv/bin/python -m tests.load.verify "$WORK/submits.jsonl" || rc=1
if grep -qiE "error|Traceback" "$WORK/gunicorn.log"; then
    echo "[load] gunicorn logged errors:"; grep -iE "error|Traceback" "$WORK/gunicorn.log" | head -20
fi
exit "$rc"
