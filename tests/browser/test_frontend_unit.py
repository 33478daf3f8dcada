"""The browser app's unit tests (Vitest: API client, i18n, schema forms, geometry and mask conversion),
run from pytest so the test command covers them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
# Raise when tests are added; a drop means a test file stopped being collected.
MIN_TESTS = 110


def test_vitest_unit_tests_pass(tmp_path: Path) -> None:
    report = tmp_path / "vitest.json"
    result = subprocess.run(
        ["npx", "vitest", "run", "--reporter=default", "--reporter=json", f"--outputFile={report}"],
        cwd=FRONTEND,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-4000:]
    summary = json.loads(report.read_text())
    assert summary["numFailedTests"] == 0, output[-4000:]
    assert summary["numPassedTests"] >= MIN_TESTS, output[-4000:]
    assert summary["numPassedTests"] == summary["numTotalTests"]  # nothing skipped or todo
