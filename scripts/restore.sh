#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into the database and storage the environment points at.
#
#   bash scripts/restore.sh BACKUP_DIR [--force]
#
# Checks every hash of BACKUP_DIR/MANIFEST.sha256 first and stops, changing nothing, if one differs.
# Without --force it also refuses to overwrite a database that has tables or a storage folder with
# files; with --force it replaces them (the database objects are dropped and recreated from the dump,
# the storage folder is emptied and refilled). Afterwards the restored files are hashed again.
# Stop the web and worker processes first. With the S3 backend, copy BACKUP_DIR/storage back into the
# bucket yourself (`mc mirror BACKUP_DIR/storage local/medlabel`); this script restores the database.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
FORCE=0
ARGS=()
for arg in "$@"; do
    case "$arg" in
    --force) FORCE=1 ;;
    *) ARGS+=("$arg") ;;
    esac
done
[[ ${#ARGS[@]} -eq 1 ]] || { echo "usage: $0 BACKUP_DIR [--force]" >&2; exit 2; }
SRC=$(cd "${ARGS[0]}" && pwd)
[[ -f "$SRC/MANIFEST.sha256" && -f "$SRC/backup.json" ]] || { echo "restore: $SRC is not a backup (no manifest)" >&2; exit 2; }

echo "restore: checking $(wc -l <"$SRC/MANIFEST.sha256") hashes" >&2
if ! (cd "$SRC" && sha256sum --quiet --strict -c MANIFEST.sha256); then
    echo "restore: the backup does not match its manifest; nothing was changed" >&2
    exit 1
fi
# A file added to the backup after it was made is refused as well.
extra=$(cd "$SRC" && comm -23 <(find . -type f ! -name MANIFEST.sha256 -printf '%P\n' | sort) <(sed 's/^[0-9a-f]*  //' MANIFEST.sha256 | sort))
[[ -z "$extra" ]] || { echo "restore: files not in the manifest: $extra; nothing was changed" >&2; exit 1; }

eval "$(DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-restore-only}" "$PY" - <<'PY'
import os, shlex
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.conf import settings
from django.db import connection
db = settings.DATABASES["default"]
storage = settings.STORAGES["default"]
print(f"DB_ENGINE={shlex.quote(db['ENGINE'])}")
print(f"DB_NAME={shlex.quote(str(db['NAME']))}")
print(f"STORAGE_BACKEND={shlex.quote(storage['BACKEND'])}")
print(f"STORAGE_DIR={shlex.quote(str(storage.get('OPTIONS', {}).get('location', settings.MEDIA_ROOT)))}")
try:
    tables = len(connection.introspection.table_names())
except Exception:
    tables = 0
print(f"DB_TABLES={tables}")
PY
)"
DB_FILE=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['database_file'])" "$SRC/backup.json")

if ((FORCE == 0)); then
    if ((DB_TABLES > 0)); then
        echo "restore: database $DB_NAME has $DB_TABLES tables; use --force to replace it" >&2
        exit 2
    fi
    if [[ "$STORAGE_BACKEND" == *FileSystemStorage* && -d "$STORAGE_DIR" && -n "$(find "$STORAGE_DIR" -type f -print -quit)" ]]; then
        echo "restore: storage $STORAGE_DIR is not empty; use --force to replace it" >&2
        exit 2
    fi
fi

case "$DB_ENGINE:$DB_FILE" in
*postgresql*:database.pgdump)
    echo "restore: pg_restore into $DB_NAME" >&2
    # One transaction: a failed restore leaves the database as it was.
    pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction --exit-on-error \
        --dbname="${DATABASE_URL:?DATABASE_URL is required for PostgreSQL}" "$SRC/database.pgdump"
    ;;
*sqlite3*:database.sqlite3)
    echo "restore: SQLite backup API into $DB_NAME" >&2
    "$PY" - "$SRC/database.sqlite3" "$DB_NAME" <<'PY'
import sqlite3, sys
source = sqlite3.connect(sys.argv[1])
target = sqlite3.connect(sys.argv[2])
with target:
    source.backup(target)  # replaces every page of the target
target.close()
source.close()
PY
    ;;
*)
    echo "restore: backup holds $DB_FILE, which cannot go into a $DB_ENGINE database" >&2
    exit 1
    ;;
esac

if [[ "$STORAGE_BACKEND" == *FileSystemStorage* ]]; then
    echo "restore: storage into $STORAGE_DIR" >&2
    mkdir -p "$STORAGE_DIR"
    if ((FORCE == 1)); then
        find "$STORAGE_DIR" -mindepth 1 -delete
    fi
    cp -a "$SRC/storage/." "$STORAGE_DIR/"
    # The restored files, hashed where they now lie, against the manifest.
    if ! (cd "$STORAGE_DIR" && sed -n 's|^\([0-9a-f]*\)  storage/|\1  |p' "$SRC/MANIFEST.sha256" | sha256sum --quiet --strict -c -); then
        echo "restore: restored storage files do not match the manifest" >&2
        exit 1
    fi
else
    echo "restore: storage backend $STORAGE_BACKEND: copy $SRC/storage back into the bucket (see the header)" >&2
fi
echo "restore: done from $SRC" >&2
