"""scripts/backup.sh and scripts/restore.sh against the real PostgreSQL: annotations with revisions and
masks are backed up, the database and storage wiped, restored, and every revision and file hash is back."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client

from annotation.models import AnnotationRevision, Case, MaskFile, Project
from annotation.services import assignment_create, load_mask
from review.models import CaseEvent
from tests.annotation.conftest import chest_values, mask_for, post_revision
from tests.conftest import require_env

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def run_script(name: str, *args: str, storage: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDLABEL_STORAGE_DIR": str(storage)}
    env.pop("MEDLABEL_STORAGE_BACKEND", None)
    return subprocess.run(
        ["bash", f"scripts/{name}", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def snapshot() -> dict[str, Any]:
    revisions = [
        (r.pk, r.annotation_id, r.number, r.parent_id, r.author_id, r.is_submission, r.items, r.created_at,
         sorted(m.sha256 for m in r.masks.all()))
        for r in AnnotationRevision.objects.prefetch_related("masks").order_by("pk")
    ]  # fmt: skip
    return {
        "revisions": revisions,
        "masks": sorted(MaskFile.objects.values_list("sha256", "file", "stored_bytes")),
        "events": sorted(CaseEvent.objects.values_list("pk", "case_id", "to_status")),
        "cases": sorted(Case.objects.values_list("pk", "status")),
    }


def wipe_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE")
        cursor.execute("CREATE SCHEMA public")
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_backup_wipe_restore_brings_back_every_revision_and_file(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
    tmp_path: Path,
) -> None:
    require_env("DATABASE_URL")
    assert connection.vendor == "postgresql"
    annotator = client_for(users["annotator"])
    reviewer = client_for(users["reviewer"])
    for case in reading_cases:
        assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
        assignment_create(case=case, user=users["reviewer"], role="second_reader", assigned_by=users["manager"])
    # Drafts, a changed mask, then submissions by two readers: several revisions and distinct masks per case.
    for k, case in enumerate(reading_cases):
        first = post_revision(annotator, case, chest_values(case, mask=True), base_revision=0)
        assert first.status_code == 201, first.content
        other = mask_for(case)
        other[5, 40 + k : 44 + k, 40:44] = 1
        second = post_revision(annotator, case, chest_values(case, mask=other, diameter=7.0 + k), base_revision=1)
        assert second.status_code == 201, second.content
        done = post_revision(
            annotator, case, chest_values(case, mask=other, diameter=7.0 + k), base_revision=2, submit=True
        )
        assert done.status_code == 201, done.content
        read2 = post_revision(
            reviewer, case, chest_values(case, mask=True), base_revision=0, role="second_reader", submit=True
        )
        assert read2.status_code == 201, read2.content

    before = snapshot()
    files_before = file_hashes(isolated_storage)
    assert len(before["revisions"]) == 4 * len(reading_cases)
    assert len(before["masks"]) >= len(reading_cases) + 1
    assert any(name.startswith("masks/") for name in files_before) and len(files_before) > 20

    backup = tmp_path / "backup"
    made = run_script("backup.sh", str(backup), storage=isolated_storage)
    assert made.returncode == 0, made.stderr
    assert (backup / "database.pgdump").stat().st_size > 0
    manifest = dict(line.split("  ", 1)[::-1] for line in (backup / "MANIFEST.sha256").read_text().splitlines())
    assert {f"storage/{name}": digest for name, digest in files_before.items()}.items() <= manifest.items()

    # Disaster: the database schema and every stored file are gone.
    wipe_database()
    for path in sorted(isolated_storage.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert file_hashes(isolated_storage) == {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert cursor.fetchone()[0] == 0

    restored = run_script("restore.sh", str(backup), storage=isolated_storage)
    assert restored.returncode == 0, restored.stderr
    connections.close_all()

    assert snapshot() == before
    assert file_hashes(isolated_storage) == files_before
    for mask in MaskFile.objects.all():  # every mask decodes to the array it was stored for
        array = load_mask(mask)
        content = np.ascontiguousarray(array).tobytes() + str(array.shape).encode() + str(array.dtype).encode()
        assert hashlib.sha256(content).hexdigest() == mask.sha256
    # The audit tables are append-only again: the triggers came back with the schema.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%%_append_only'")
        assert cursor.fetchone()[0] >= 4

    # Restoring over a live database needs --force.
    again = run_script("restore.sh", str(backup), storage=isolated_storage)
    assert again.returncode == 2 and "use --force" in again.stderr
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_tampered_backup_and_changes_nothing(
    reading_project: Project, isolated_storage: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    made = run_script("backup.sh", str(backup), storage=isolated_storage)
    assert made.returncode == 0, made.stderr
    some_file = next(p for p in sorted((backup / "storage").rglob("*")) if p.is_file())
    some_file.write_bytes(some_file.read_bytes() + b"x")
    files_before = file_hashes(isolated_storage)
    cases_before = Case.objects.count()

    refused = run_script("restore.sh", str(backup), "--force", storage=isolated_storage)
    assert refused.returncode == 1 and "does not match its manifest" in refused.stderr
    connections.close_all()
    assert file_hashes(isolated_storage) == files_before and Case.objects.count() == cases_before

    # A second backup into a folder that is not empty is refused too.
    assert run_script("backup.sh", str(backup), storage=isolated_storage).returncode == 2
