"""The standard's own checker on what the platform writes: David Clunie's ``dciodvfy`` (Debian's
dicom3tools, installed by scripts/services.sh). ``assert_valid_dicom(data, name)`` runs it on one object and
fails the test on any line starting with "Error"; the warnings are returned (and collected for the report
printed at the end of the session) because some are the standard's own "may be empty" Type 2 notes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest

# Warning text (without the object's name) -> times seen, for the summary at the end of the run.
WARNINGS_SEEN: Counter[str] = Counter()


def dciodvfy_lines(data: bytes) -> list[str]:
    """dciodvfy's "Error" and "Warning" lines for one Part 10 object."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.fail("dciodvfy is missing: scripts/services.sh installs Debian's dicom3tools; run the suite with it")
    with tempfile.TemporaryDirectory(prefix="dciodvfy-") as folder:
        path = Path(folder) / "object.dcm"
        path.write_bytes(data)
        run = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [
        line.strip()
        for line in (run.stdout + run.stderr).splitlines()
        if line.startswith("Error") or line.startswith("Warning")
    ]


def assert_valid_dicom(data: bytes, name: str) -> list[str]:
    """Fail on any dciodvfy error; return its warnings."""
    lines = dciodvfy_lines(data)
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, f"dciodvfy found {len(errors)} error(s) in {name}:\n" + "\n".join(errors)
    warnings = [line for line in lines if line.startswith("Warning")]
    WARNINGS_SEEN.update(warnings)
    return warnings
