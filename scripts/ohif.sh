#!/usr/bin/env bash
# Installs the published OHIF Viewer build, exactly as the npm registry ships it (@ohif/app, whose tarball
# holds the built viewer in dist/), into var/ohif/<version>/dist. The platform serves it under /ohif/ when
# MEDLABEL_OHIF_ENABLED is on, and tests/browser/test_ohif.py runs it against a live server.
#
# The version and the tarball's sha512 are pinned here: a tarball whose digest differs is refused, whatever
# the registry says. Idempotent and quick when the pinned build is already in place.
#
#   bash scripts/ohif.sh            install (or check) into var/ohif
#   MEDLABEL_OHIF_ROOT=/srv/ohif bash scripts/ohif.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OHIF_VERSION=3.13.2
# npm's "integrity" of @ohif/app@3.13.2 (npm view @ohif/app@3.13.2 dist.integrity).
OHIF_INTEGRITY="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
ROOT="${MEDLABEL_OHIF_ROOT:-$(pwd)/var/ohif}"
DEST="$ROOT/$OHIF_VERSION"

if [[ -f "$DEST/dist/index.html" && "$(cat "$DEST/.integrity" 2>/dev/null)" == "$OHIF_INTEGRITY" ]]; then
    echo "[ohif] @ohif/app@$OHIF_VERSION is installed in $DEST/dist"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "[ohif] npm is missing: install Node.js 20+ and npm (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/medlabel-ohif.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "[ohif] fetching @ohif/app@$OHIF_VERSION (about 50 MB; npm checks it against the registry's integrity)"
# npm pack downloads through npm's own cache, so a second machine-wide install does not download again.
npm pack "@ohif/app@$OHIF_VERSION" --pack-destination "$work" --silent >/dev/null
tarball="$work/ohif-app-$OHIF_VERSION.tgz"
actual=$(node -e 'const fs = require("fs"), c = require("crypto");
process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));' "$tarball")
if [[ "$actual" != "$OHIF_INTEGRITY" ]]; then
    echo "[ohif] refusing $tarball: its sha512 is $actual, pinned $OHIF_INTEGRITY" >&2
    exit 1
fi

# Unpack beside the destination and swap it in, so that an interrupted run never leaves half a viewer.
mkdir -p "$ROOT"
staging="$ROOT/.$OHIF_VERSION.partial"
rm -rf "$staging"
mkdir -p "$staging"
tar -xzf "$tarball" -C "$staging" --strip-components=1 package/dist package/LICENSE package/package.json
echo "$OHIF_INTEGRITY" > "$staging/.integrity"
rm -rf "$DEST"
mv "$staging" "$DEST"
echo "[ohif] installed @ohif/app@$OHIF_VERSION in $DEST/dist"
