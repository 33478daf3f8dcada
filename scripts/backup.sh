#!/usr/bin/env bash
# Back up the database and the DICOM/mask storage into one folder, with a manifest of SHA-256 hashes.
#
#   bash scripts/backup.sh BACKUP_DIR        BACKUP_DIR must not exist or be empty
#
# Reads the same environment as the app (DATABASE_URL, MEDLABEL_DATA_DIR, MEDLABEL_STORAGE_DIR,
# MEDLABEL_STORAGE_BACKEND): PostgreSQL is dumped with pg_dump (custom format, one consistent snapshot),
# SQLite with its online backup API (safe while the app runs). Files of a filesystem store are copied
# into BACKUP_DIR/storage. With the S3 backend the bucket is not copied here: mirror it separately at the
# same time, e.g. `mc mirror --preserve local/medlabel BACKUP_DIR/storage` or
# `aws s3 sync s3://medlabel BACKUP_DIR/storage`, or rely on bucket versioning; the manifest then covers
# whatever lies in BACKUP_DIR/storage when this script runs (so mirror first, then run it).
#
# BACKUP_DIR/MANIFEST.sha256 (sha256sum format) lists every file of the backup; BACKUP_DIR/backup.json
# says what was backed up. scripts/restore.sh checks the manifest before touching anything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ $# -eq 1 ]] || { echo "usage: $0 BACKUP_DIR" >&2; exit 2; }
OUT=$1
if [[ -e "$OUT" && -n "$(ls -A "$OUT" 2>/dev/null)" ]]; then
    echo "backup: $OUT exists and is not empty; choose a new folder" >&2
    exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Where things are, as the app itself sees them (same defaults as config/settings.py).
eval "$(DJANGO_SECRET_KEY="${DJANGO_SECRET_KEY:-backup-only}" "$PY" - <<'PY'
import os, shlex
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
storage = settings.STORAGES["default"]
print(f"DB_ENGINE={shlex.quote(db['ENGINE'])}")
print(f"DB_NAME={shlex.quote(str(db['NAME']))}")
print(f"STORAGE_BACKEND={shlex.quote(storage['BACKEND'])}")
print(f"STORAGE_DIR={shlex.quote(str(storage.get('OPTIONS', {}).get('location', settings.MEDIA_ROOT)))}")
PY
)"

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
case "$DB_ENGINE" in
*postgresql*)
    echo "backup: pg_dump of database $DB_NAME" >&2
    # The URL carries host, port, user and password; pg_dump takes a snapshot, so writes may go on.
    pg_dump --format=custom --no-owner --no-privileges --dbname="${DATABASE_URL:?DATABASE_URL is required for PostgreSQL}" \
        --file="$OUT/database.pgdump"
    DB_FILE=database.pgdump
    ;;
*sqlite3*)
    echo "backup: SQLite online backup of $DB_NAME" >&2
    "$PY" - "$DB_NAME" "$OUT/database.sqlite3" <<'PY'
import sqlite3, sys
source = sqlite3.connect(sys.argv[1])
target = sqlite3.connect(sys.argv[2])
with target:
    source.backup(target)  # page by page, consistent even while the app writes
target.close()
source.close()
PY
    DB_FILE=database.sqlite3
    ;;
*)
    echo "backup: unsupported database engine $DB_ENGINE" >&2
    exit 1
    ;;
esac

mkdir -p "$OUT/storage"
if [[ "$STORAGE_BACKEND" == *FileSystemStorage* ]]; then
    if [[ -d "$STORAGE_DIR" ]]; then
        echo "backup: copying storage $STORAGE_DIR" >&2
        cp -a "$STORAGE_DIR/." "$OUT/storage/"
    fi
else
    echo "backup: storage backend $STORAGE_BACKEND: mirror the bucket into $OUT/storage yourself (see the header of this script)" >&2
fi

files=$(cd "$OUT" && find storage -type f | wc -l)
"$PY" - "$OUT/backup.json" "$started" "$DB_ENGINE" "$DB_FILE" "$STORAGE_BACKEND" "$files" <<'PY'
import json, subprocess, sys
out, started, engine, db_file, backend, files = sys.argv[1:]
try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    commit = ""
json.dump(
    {"format": 1, "started": started, "database_engine": engine, "database_file": db_file,
     "storage_backend": backend, "storage_files": int(files), "code_commit": commit},
    open(out, "w"), indent=2,
)
PY
# Hashes last, of everything above: restore refuses a backup that changed since.
(cd "$OUT" && find . -type f ! -name MANIFEST.sha256 -printf '%P\0' | sort -z | xargs -0 -r sha256sum >MANIFEST.sha256)
echo "backup: done: $OUT ($DB_FILE, $files storage files, $(wc -l <"$OUT/MANIFEST.sha256") hashed)" >&2
