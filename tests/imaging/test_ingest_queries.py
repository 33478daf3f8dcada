"""Uploading one more file to a series costs about the same whatever the size of the series (issue 19): a browser
uploads a series one file per request, and each request recomputes the series' geometry and quality checks from
its instances. It used to read every instance's whole DICOM header (kilobytes of JSON each) to find the slice
thickness: 21 ms per file early in a 200-file series, 65 ms at its end. Now it reads their geometry columns only."""

from __future__ import annotations

import re
import time
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation.models import Project, Role
from imaging.models import Series
from imaging.services.ingest import IncomingFile, ingest_files, refresh_series
from imaging.synthetic import generate_ct_study
from tests.conftest import dataset_bytes
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

UPLOAD_URL = "/api/v1/imaging/uploads/"
SMALL, LARGE = 20, 200


def series_of(slices: int, seed: int) -> list[tuple[str, bytes]]:
    study = generate_ct_study(seed=seed, rows=16, columns=16, slices=slices, n_lesions=0)
    return [(f"slice{k:03d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]


@pytest.mark.django_db
def test_one_more_file_costs_the_same_queries_and_rows_whatever_the_series_size() -> None:
    project = cast(Project, ProjectFactory(slug="uploads"))
    uploader = cast(User, UserFactory(username="uploader"))
    MembershipFactory(project=project, user=uploader, role=Role.MANAGER)
    client = Client()
    client.force_login(uploader)
    client.get("/api/v1/me/")
    counts: dict[int, list[int]] = {}
    captured: dict[int, list[str]] = {}
    seconds: dict[int, float] = {}
    for size, seed in ((SMALL, 31), (LARGE, 32)):
        files = series_of(size + 3, seed)
        ingest_files((IncomingFile(name=n, data=d) for n, d in files[:size]), store=project.image_store)
        counts[size], times = [], []
        for name, data in files[size:]:  # three more files, one request each: the fastest counts
            with CaptureQueriesContext(connection) as context:
                start = time.perf_counter()
                response: Any = client.post(
                    UPLOAD_URL, {"project": "uploads", "files": [SimpleUploadedFile(name, data)]}
                )
                times.append(time.perf_counter() - start)
            assert response.status_code == 201, response.content
            counts[size].append(len(context.captured_queries))
            captured[size] = [q["sql"] for q in context.captured_queries]
        seconds[size] = min(times)
        # The series is what a refresh from every instance makes it, with every slice counted and checked.
        uid = response.json()["files"][0]["sop_instance_uid"]
        series = Series.objects.get(store=project.image_store, instances__sop_instance_uid=uid)
        fields: tuple[str, ...] = ("number_of_instances", "number_of_slices", "slice_positions", "slice_spacing")
        fields += (
            "slice_thickness",
            "quality",
            "quality_checks",
            "rows",
            "columns",
            "pixel_spacing",
            "image_orientation",
        )
        after_upload = {field: getattr(series, field) for field in fields}
        assert after_upload == {field: getattr(refresh_series(series.pk), field) for field in fields}
        assert series.number_of_instances == size + 3 and len(series.slice_positions) == size + 3
        assert series.quality == "ok" and series.slice_thickness is not None, series.quality_checks
    print("upload of one more file:", counts, {k: round(v * 1000, 1) for k, v in seconds.items()}, "ms")
    assert len({*counts[SMALL], *counts[LARGE]}) == 1, "\n".join(captured[LARGE])
    # No query reads the instances' whole headers (the "metadata" column itself, not a value inside it).
    whole_headers = [sql for sql in captured[LARGE] if re.search(r'"imaging_instance"\."metadata"\s*(AS|,|FROM)', sql)]
    assert not whole_headers, "\n".join(whole_headers)
