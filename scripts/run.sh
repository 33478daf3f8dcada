#!/usr/bin/env bash
# Sets up and runs the platform on its embedded default, on one machine, with no services to install:
# SQLite (WAL) database, Celery on kombu's filesystem transport, DICOM files under var/.
#
#   bash scripts/run.sh            set up, then serve in the foreground (Ctrl-C stops web and worker)
#   bash scripts/run.sh --detach   set up, then serve in the background and return
#   bash scripts/run.sh stop       stop a background run
#
# Idempotent: a second run reuses the virtualenv, the database and the demo data.
# Settings come from the environment (see README); MEDLABEL_PORT (default 8000) picks the port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT="${MEDLABEL_PORT:-8000}"
VAR="${MEDLABEL_DATA_DIR:-$ROOT/var}"
RUN="$VAR/run"
LOGS="$VAR/logs"
mkdir -p "$RUN" "$LOGS"

stop_running() {
    for name in gunicorn celery; do
        if [[ -f "$RUN/$name.pid" ]]; then
            pid=$(cat "$RUN/$name.pid")
            if kill -0 "$pid" 2>/dev/null; then
                kill "$pid" 2>/dev/null || true
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
                kill -9 "$pid" 2>/dev/null || true
            fi
            rm -f "$RUN/$name.pid"
        fi
    done
}

if [[ "${1:-}" == "stop" ]]; then
    stop_running
    echo "[run] stopped"
    exit 0
fi

bash scripts/bootstrap.sh
[[ -s "$VAR/secret_key" ]] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VAR/secret_key"
export DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-$(cat "$VAR/secret_key")}"
export MEDLABEL_DATA_DIR="$VAR"
export DJANGO_SETTINGS_MODULE=config.settings
PY=.venv/bin/python

stop_running
if [[ -f frontend/package.json ]]; then
    bash scripts/build-frontend.sh
fi
$PY manage.py migrate --noinput -v0
$PY manage.py collectstatic --noinput -v0
$PY manage.py seed_demo

.venv/bin/celery -A config worker -Q default,gpu --concurrency=1 --loglevel=INFO \
    --logfile "$LOGS/celery.log" --pidfile "$RUN/celery.pid" --detach
GUNICORN=(.venv/bin/gunicorn -c config/gunicorn.py config.wsgi:application --bind "127.0.0.1:$PORT" --workers 2 --threads 4
    --timeout 120 --keep-alive 75 --access-logfile "$LOGS/access.log" --error-logfile "$LOGS/gunicorn.log" --pid "$RUN/gunicorn.pid")

cat <<MSG

  MedLabel QA is running at http://127.0.0.1:$PORT/
  API docs http://127.0.0.1:$PORT/api/docs/   DICOMweb http://127.0.0.1:$PORT/dicomweb/studies

  Demo logins (password: ${MEDLABEL_DEMO_PASSWORD:-medlabel-demo}):
    admin (superuser), manager, annotator, annotator2, reviewer, expert1, expert2, expert3
  Logs in $LOGS

MSG

if [[ "${1:-}" == "--detach" ]]; then
    "${GUNICORN[@]}" --daemon
    for _ in $(seq 1 100); do
        if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null; then
            echo "[run] serving in the background; stop with: bash scripts/run.sh stop"
            exit 0
        fi
        sleep 0.2
    done
    echo "[run] gunicorn did not answer on port $PORT; see $LOGS/gunicorn.log" >&2
    tail -n 30 "$LOGS/gunicorn.log" >&2 || true
    exit 1
fi
trap stop_running EXIT INT TERM
"${GUNICORN[@]}"
