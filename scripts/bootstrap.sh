#!/usr/bin/env bash
# Creates .venv with the pinned requirements. Reuses it when requirements.txt has not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    command -v python3.11 >/dev/null && PYTHON=python3.11
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x .venv/bin/python ]]; then
    echo "[bootstrap] .venv is up to date"
    exit 0
fi
echo "[bootstrap] creating .venv with pinned requirements (about a minute the first time)"
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and exactly pinned: its CPU wheel lies on these machines; anything else pulls CUDA builds.
.venv/bin/pip install -q "$(grep -E '^torch==' requirements.txt)"
.venv/bin/pip install -q -r requirements.txt
echo "$want" > "$stamp"
echo "[bootstrap] done"
