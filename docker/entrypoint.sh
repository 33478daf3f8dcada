#!/bin/sh
# Web container start: wait for the database, apply migrations, then run the given command (gunicorn).
# MEDLABEL_MIGRATE_ON_START=false skips migrations (e.g. a second web replica while the first migrates).
set -eu
tries=0
until python manage.py shell -c "from django.db import connection; connection.ensure_connection()" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "entrypoint: database not reachable after 60 tries" >&2
        exit 1
    fi
    sleep 1
done
if [ "${MEDLABEL_MIGRATE_ON_START:-true}" = "true" ]; then
    python manage.py migrate --noinput
fi
exec "$@"
