"""An export reads the cases of its snapshot together (issue 19): its queries grow by a fixed, small number per
case (the series' images, and the panel's decision for an adjudicated case), not by the eight or nine that a
case-by-case read of provenance, series, burned-in flags and the mask's series took."""

from __future__ import annotations

import zipfile
from pathlib import Path

from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.models import AnnotationRevision, Case
from datasets.models import Export
from datasets.services import export_create, export_write

FORMATS = ["monai", "csv", "json"]


def _queries(export: Export, cases: int, path: Path) -> int:
    subset = Export.objects.create(
        **{
            f.name: getattr(export, f.name)
            for f in Export._meta.fields
            if f.name not in ("id", "version", "selection", "job", "created_at")
        },
        version=export.version + cases,
        selection=export.selection[:cases],
    )
    subset.created_at = export.created_at  # the same snapshot, as of the same moment
    subset.save(update_fields=["created_at"])
    with CaptureQueriesContext(connection) as captured:
        result = export_write(subset, str(path))
    assert result.cases_written == cases
    with zipfile.ZipFile(path) as archive:
        assert sum(name.startswith("imagesTr/") for name in archive.namelist()) == cases
    return len(captured.captured_queries)


def test_an_export_makes_a_fixed_number_of_queries_per_case(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]], users: dict[str, User], tmp_path: Path
) -> None:
    export = export_create(
        project=adjudicated_cases[0][0].project,
        created_by=users["manager"],
        formats=FORMATS,
        filters={"min_qa_level": "adjudicated"},
        split={"train": 0.34, "validation": 0.33, "test": 0.33, "seed": 7},
        enqueue=False,
    )
    assert len(export.selection) == 3
    one, two, three = (_queries(export, n, tmp_path / f"export-{n}.zip") for n in (1, 2, 3))
    assert three - two == two - one, (one, two, three)
    assert two - one <= 2, f"{two - one} queries per case ({one}, {two}, {three} for 1, 2, 3 cases)"
