"""The export API: managers create (a job), list, read (manifest, left-out cases, de-identification report)
and download; other roles and other projects get 403/404; bad requests are a 400 naming the problem and store
nothing; what can only be seen while building (a flagged series, a label without geometry) is listed as left
out, with the reason, in the job result and the export."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import AnnotationRevision, Case, Project, Role
from datasets.models import Export
from imaging.models import Instance, Series
from jobs.models import Job, JobStatus
from tests.datasets.conftest import run_export
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

JSON = "application/json"
BODY = {
    "formats": ["monai", "dicom_seg", "csv"],
    "filters": {"min_qa_level": "adjudicated"},
    "split": {"train": 0.67, "validation": 0.33, "test": 0.0, "seed": 1},
}


def job_of(export: Export) -> Job:
    assert export.job_id is not None
    return Job.objects.get(pk=export.job_id)


def url(slug: str, *rest: Any) -> str:
    return "/".join([f"/api/v1/projects/{slug}/exports", *(str(r) for r in rest)]) + "/"


def create(client: Client, slug: str, body: dict[str, Any]) -> Any:
    return client.post(url(slug), data=body, content_type=JSON)


def test_a_manager_creates_builds_reads_and_downloads_an_export(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    manager = client_for(users["manager"])
    slug = adjudicated_cases[0][0].project.slug
    response = create(manager, slug, BODY)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["version"], body["cases"], body["job_status"]) == (1, 3, "queued")
    assert body["download_url"] is None
    assert manager.get(url(slug, body["id"], "download")).status_code == 409  # not built yet
    export = run_export(Export.objects.get(pk=body["id"]))
    job = job_of(export)
    assert job.result["cases_written"] == 3 and job.result["sha256"] == export.sha256
    assert job.progress["done"] == job.progress["total"] == 3

    detail = manager.get(url(slug, export.pk)).json()
    assert detail["job_status"] == "succeeded"
    assert "dataset.json" in detail["manifest"] and detail["left_out"] == []
    assert detail["deid_report"]["deidentified"] is True
    assert sum(detail["split_counts"].values()) == 3
    listed = manager.get(url(slug)).json()
    assert [row["id"] for row in listed] == [export.pk]

    download = manager.get(detail["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    data = b"".join(cast(Any, download).streaming_content)
    assert hashlib.sha256(data).hexdigest() == export.sha256 == download["X-Content-SHA256"]


def test_the_celery_task_runs_the_export(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = create(client_for(users["manager"]), adjudicated_cases[0][0].project.slug, BODY)
    finally:
        app.conf.task_always_eager = False
    export = Export.objects.get(pk=response.json()["id"])
    assert job_of(export).status == JobStatus.SUCCEEDED
    assert export.sha256 and export.file


@pytest.mark.parametrize("role", ["annotator", "reviewer", "expert"])
def test_readers_may_not_export(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    role: str,
) -> None:
    slug = adjudicated_cases[0][0].project.slug
    client = client_for(users[role])
    response = create(client, slug, BODY)
    assert response.status_code == 403 and "manager" in response.json()["detail"]
    assert client.get(url(slug)).status_code == 403
    assert Export.objects.count() == 0 and Job.objects.count() == 0


def test_outsiders_and_managers_of_other_projects_see_nothing(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    slug = adjudicated_cases[0][0].project.slug
    export = run_export(Export.objects.get(pk=create(client_for(users["manager"]), slug, BODY).json()["id"]))
    other_project = cast(Project, ProjectFactory(slug="other"))
    other_manager = cast(User, UserFactory(username="other-manager"))
    MembershipFactory(project=other_project, user=other_manager, role=Role.MANAGER)
    for user in (users["outsider"], other_manager):
        client = client_for(user)
        assert client.get(url(slug)).status_code == 404
        assert client.get(url(slug, export.pk)).status_code == 404
        assert client.get(url(slug, export.pk, "download")).status_code == 404
    # The other project's manager cannot reach this export through their own project either.
    other = client_for(other_manager)
    assert other.get(url("other", export.pk)).status_code == 404
    assert other.get(url("other", export.pk, "download")).status_code == 404
    assert client_for(None).get(url(slug)).status_code in (401, 403)


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({**BODY, "formats": ["tiff"]}, 400, "invalid", "tiff"),
        ({**BODY, "formats": []}, 400, "invalid", "formats"),
        (
            {**BODY, "formats": ["coco"], "filters": {"labels": ["nodule_mask"], "min_qa_level": "adjudicated"}},
            400,
            "format_does_not_fit",
            "COCO holds boxes (2D, and 3D slice by slice) and polygons",
        ),
        (
            {**BODY, "formats": ["monai"], "filters": {"labels": ["nodule_box"], "min_qa_level": "adjudicated"}},
            400,
            "format_does_not_fit",
            "mask",
        ),
        ({**BODY, "filters": {"labels": ["tumour"]}}, 400, "bad_filter", "tumour"),
        ({**BODY, "filters": {"modalities": ["MR"], "min_qa_level": "adjudicated"}}, 400, "no_cases", "MR"),
        ({**BODY, "filters": {"study_date_from": "last week"}}, 400, "bad_filter", "YYYY-MM-DD"),
        ({**BODY, "filters": {"study_date_from": "2099-01-01"}}, 400, "no_cases", "20990101"),
        ({**BODY, "split": {"train": 0.9, "validation": 0.3, "test": 0.0}}, 400, "bad_split", "must be 1"),
        ({**BODY, "split": {"stratify_by": "comment"}}, 400, "bad_split", "nodule_present"),
    ],
)
def test_bad_requests_are_a_400_naming_the_problem_and_store_nothing(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    body: dict[str, Any],
    status: int,
    code: str,
    words: str,
) -> None:
    response = create(client_for(users["manager"]), adjudicated_cases[0][0].project.slug, body)
    assert response.status_code == status, response.content
    assert words in str(response.json())
    if code != "invalid":
        assert response.json()["code"] == code
    assert Export.objects.count() == 0 and Job.objects.count() == 0


def test_no_case_at_the_asked_level_is_a_400(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client]
) -> None:
    response = create(client_for(users["manager"]), reading_project.slug, BODY)
    assert response.status_code == 400
    assert response.json()["code"] == "no_cases" and "adjudicated" in response.json()["detail"]
    assert Export.objects.count() == 0


def test_cases_that_cannot_be_exported_are_left_out_with_the_reason(
    adjudicated_cases: list[tuple[Case, AnnotationRevision]],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
) -> None:
    manager = client_for(users["manager"])
    slug = adjudicated_cases[0][0].project.slug
    (flagged_case, _), (no_geometry_case, _), (good_case, _) = adjudicated_cases
    export_id = create(manager, slug, BODY).json()["id"]
    # After the request: a re-check fails one case's series, and another case's images lose their positions.
    Series.objects.filter(study_id=flagged_case.study_id).update(
        quality=Series.Quality.FAILED, quality_checks=[{"status": "failed", "message": "missing slice"}]
    )
    Instance.objects.filter(series__study_id=no_geometry_case.study_id).update(image_position=None)
    export = run_export(Export.objects.get(pk=export_id), expect=JobStatus.PARTIAL)
    reasons = {(row["case_id"], row["format"]): row["reason"] for row in export.left_out}
    assert job_of(export).result["left_out_cases"] == 2
    assert "data-quality" in reasons[(flagged_case.pk, "all")] and "missing slice" in reasons[(flagged_case.pk, "all")]
    for fmt in ("monai", "dicom_seg"):
        assert "no geometry" in reasons[(no_geometry_case.pk, fmt)]
    assert not [key for key in reasons if key[0] == good_case.pk]
    assert job_of(export).result["left_out"] == export.left_out
    assert sum(1 for name in export.manifest if name.startswith("labelsTr/")) == 1
    # The flagged case is not in the snapshot's case list; the one without geometry keeps its CSV row.
    assert job_of(export).result["cases_written"] == 2
    assert sum(export.split_counts.values()) == 2
    # Images whose pixels carry burned-in text are not exported as pixels (the SEG, which has none, still is).
    burned = Instance.objects.filter(series__study_id=good_case.study_id).order_by("pk").first()
    assert burned is not None
    Instance.objects.filter(pk=burned.pk).update(
        metadata={**burned.metadata, "00280301": {"vr": "CS", "Value": ["YES"]}}
    )
    Series.objects.filter(study_id=flagged_case.study_id).update(quality=Series.Quality.OK)
    second = run_export(Export.objects.get(pk=create(manager, slug, BODY).json()["id"]), expect=JobStatus.PARTIAL)
    reasons = {(row["case_id"], row["format"]): row["reason"] for row in second.left_out}
    assert "burned-in" in reasons[(good_case.pk, "monai")]
    assert (good_case.pk, "dicom_seg") not in reasons and (flagged_case.pk, "monai") not in reasons
    assert len(second.deid_report["burned_in_annotation"]) == 1
    # Every matching case flagged: refused at request time.
    Series.objects.update(quality=Series.Quality.FAILED)
    response = create(manager, slug, BODY)
    assert response.status_code == 400 and response.json()["code"] == "no_usable_cases"
