"""The browser app's API types (frontend/src/api/schema.d.ts) are generated from the OpenAPI schema
(scripts/api-types.sh, openapi-typescript): a serializer changed without regenerating them fails here."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "frontend" / "src" / "api" / "schema.d.ts"


def test_generated_typescript_types_match_the_openapi_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "schema.d.ts"
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "api-types.sh"), str(fresh)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected, actual = fresh.read_text().splitlines(), COMMITTED.read_text().splitlines()
    diff = "\n".join(difflib.unified_diff(actual, expected, "committed", "from the schema", lineterm="", n=1))
    assert expected == actual, (
        "frontend/src/api/schema.d.ts is out of date: run `bash scripts/api-types.sh` and commit it\n" + diff[:4000]
    )
    assert any(line.startswith("export interface paths") for line in actual)
