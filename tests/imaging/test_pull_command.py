"""manage.py pull_study against the real Orthanc that scripts/test.sh starts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import cast

import pydicom
import pytest
import requests
from django.core.management import CommandError, call_command

from annotation.models import Project
from imaging.models import Instance, Study
from imaging.synthetic import generate_ct_study
from tests.conftest import require_env, stored_files
from tests.factories import DicomSourceFactory, ProjectFactory


def put_in_orthanc(seed: int) -> tuple[str, list[pydicom.Dataset]]:
    orthanc = require_env("ORTHANC_URL")
    study = generate_ct_study(seed=seed, rows=48, columns=48, slices=4, n_lesions=0)
    datasets: list[pydicom.Dataset] = list(study.datasets())
    for dataset in datasets:
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
        requests.post(f"{orthanc}/instances", data=buffer.getvalue(), timeout=30).raise_for_status()
    return study.study_uid, datasets


@pytest.mark.django_db
def test_pull_study_copies_every_instance_into_the_local_store_and_links_the_project(
    isolated_storage: Path,
) -> None:
    study_uid, datasets = put_in_orthanc(seed=7101)
    source = DicomSourceFactory(name="orthanc-pull")
    project = cast(Project, ProjectFactory(slug="pulled"))
    out = io.StringIO()
    call_command("pull_study", source.name, study_uid, project="pulled", stdout=out)
    assert "stored 4, duplicate 0, rejected 0" in out.getvalue()
    assert Instance.objects.filter(series__study__study_instance_uid=study_uid).count() == 4
    assert len(stored_files(isolated_storage)) == 4
    assert Study.objects.get(study_instance_uid=study_uid).store_id == project.image_store_id
    stored = Instance.objects.get(sop_instance_uid=datasets[0].SOPInstanceUID)
    local = pydicom.dcmread(isolated_storage / stored.file)
    assert (local.pixel_array == datasets[0].pixel_array).all()

    again = io.StringIO()
    call_command("pull_study", source.name, study_uid, project="pulled", stdout=again)
    assert "stored 0, duplicate 4" in again.getvalue()


@pytest.mark.django_db
def test_pull_study_index_only_keeps_pixels_in_the_pacs(isolated_storage: Path) -> None:
    study_uid, _ = put_in_orthanc(seed=7102)
    source = DicomSourceFactory(name="orthanc-index")
    call_command("pull_study", source.name, study_uid, index=True, stdout=io.StringIO())
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.source == source
    assert study.number_of_instances == 4
    assert stored_files(isolated_storage) == []


@pytest.mark.django_db
def test_pull_study_names_an_unknown_source_or_an_unreachable_pacs() -> None:
    with pytest.raises(CommandError, match="No upstream DICOMweb source named 'nope'"):
        call_command("pull_study", "nope", "1.2.3")
    DicomSourceFactory(name="down", base_url="http://127.0.0.1:9/dicom-web", timeout_seconds=2)
    with pytest.raises(CommandError, match="unreachable"):
        call_command("pull_study", "down", "1.2.3")
    assert Study.objects.count() == 0
