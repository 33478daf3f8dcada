#!/usr/bin/env bash
# Builds the browser app (frontend/) into frontend/dist, which Django serves (whitenoise, /static/).
#   npm ci     when node_modules is missing or package-lock.json changed since the last install
#   npm run build   when a source changed since the last build (a hash stamp in frontend/dist)
# Idempotent and quick when nothing changed. Needs Node 20+ and npm (scripts/services.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../frontend"

if ! command -v npm >/dev/null 2>&1; then
    echo "[frontend] npm is missing: install Node.js 20+ and npm (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

lock_hash=$(hash_of package.json package-lock.json)
if [[ ! -d node_modules || "$(cat node_modules/.medlabel-lock.sha256 2>/dev/null)" != "$lock_hash" ]]; then
    echo "[frontend] npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_hash" > node_modules/.medlabel-lock.sha256
fi

mapfile -t sources < <(find src index.html vite.config.ts tsconfig.json package.json package-lock.json public -type f 2>/dev/null | LC_ALL=C sort)
source_hash=$( (for f in "${sources[@]}"; do echo "$f"; cat "$f"; done) | sha256sum | cut -d' ' -f1)
if [[ -f dist/index.html && "$(cat dist/.build.sha256 2>/dev/null)" == "$source_hash" ]]; then
    echo "[frontend] dist is up to date"
    exit 0
fi
echo "[frontend] npm run build"
npm run build --silent
echo "$source_hash" > dist/.build.sha256
