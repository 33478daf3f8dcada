#!/usr/bin/env bash
# Sets up and runs the whole test suite against real services: PostgreSQL, Redis and Orthanc are
# installed from Debian packages when missing, started on 127.0.0.1 with data in a temp folder, and
# stopped afterwards. Also runs ruff and mypy (as tests). Extra arguments go to pytest.
#
#   bash scripts/test.sh                 everything
#   bash scripts/test.sh tests/imaging   a subset
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

SERVICES_DIR=$(mktemp -d /tmp/medlabel-services.XXXXXX)
# Free loopback ports unless given, so that two test runs on one machine do not collide.
read -r free1 free2 free3 free4 < <(.venv/bin/python scripts/free_ports.py 4)
export PG_PORT="${PG_PORT:-$free1}" REDIS_PORT="${REDIS_PORT:-$free2}"
export ORTHANC_HTTP_PORT="${ORTHANC_HTTP_PORT:-$free3}" ORTHANC_DICOM_PORT="${ORTHANC_DICOM_PORT:-$free4}"
ARTIFACTS="${TEST_ARTIFACTS_DIR:-$(pwd)/test-artifacts}"
cleanup() {
    bash scripts/services.sh stop "$SERVICES_DIR" || true
    rm -rf "$SERVICES_DIR"
}
trap cleanup EXIT
bash scripts/services.sh start "$SERVICES_DIR"
# shellcheck disable=SC1091
source "$SERVICES_DIR/env"

export DJANGO_SECRET_KEY=test-only-secret-key
export MEDLABEL_DATA_DIR="$SERVICES_DIR/data"
export TEST_ARTIFACTS_DIR="$ARTIFACTS"
mkdir -p "$MEDLABEL_DATA_DIR" "$ARTIFACTS"
export PYTHONUNBUFFERED=1
bash scripts/build-frontend.sh
# The published OHIF Viewer that tests/browser/test_ohif.py runs against the platform (pinned, checked).
bash scripts/ohif.sh

.venv/bin/python -m pytest "$@"
