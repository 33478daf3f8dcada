"""manage.py ingest, generate_synthetic and seed_demo."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Membership, Project
from imaging.models import ImageStore, Instance, Series, Study
from imaging.synthetic import SyntheticStudy, generate_ct_study
from tests.conftest import stored_files


@pytest.fixture(scope="module")
def tiny_study() -> SyntheticStudy:
    return generate_ct_study(seed=31, rows=32, columns=32, slices=6, n_lesions=0)


def run(*args: Any, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


# --- ingest ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ingest_command_stores_a_folder_and_reports_junk(
    tmp_path: Path,
    tiny_study: SyntheticStudy,
    project: Project,
    isolated_storage: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "incoming"
    written = tiny_study.write(folder)
    junk = folder / "notes.txt"
    junk.write_text("not an image")

    output = run("ingest", str(folder), project=project.slug)

    assert "stored 6, duplicate 0, rejected 1 in 1 study" in output
    # Rejected files are listed (through the progress bar, on stdout) with the reason.
    listed = capsys.readouterr().out
    assert f"rejected {junk}: Not a DICOM Part 10 file" in listed
    assert Instance.objects.count() == 6
    assert len(stored_files(isolated_storage)) == 6
    series = Series.objects.get(series_instance_uid=tiny_study.series_uid)
    assert series.number_of_slices == 6
    assert series.quality == Series.Quality.OK
    study = Study.objects.get(study_instance_uid=tiny_study.study_uid)
    assert study.store_id == project.image_store_id
    stored_bytes = sorted(p.read_bytes() for p in stored_files(isolated_storage))
    assert stored_bytes == sorted(p.read_bytes() for p in written)


@pytest.mark.django_db
def test_ingest_command_twice_reports_duplicates(tmp_path: Path, tiny_study: SyntheticStudy) -> None:
    folder = tmp_path / "incoming"  # not tmp_path itself: the store is in tmp_path / "storage"
    tiny_study.write(folder)
    run("ingest", str(folder))

    output = run("ingest", str(folder))

    assert "stored 0, duplicate 6, rejected 0 in 1 study" in output
    assert Instance.objects.count() == 6


@pytest.mark.django_db
def test_ingest_command_reads_zips(tmp_path: Path, tiny_study: SyntheticStudy) -> None:
    paths = tiny_study.write(tmp_path / "series")
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in paths:
            handle.write(path, arcname=f"s/{path.name}")

    output = run("ingest", str(archive))

    assert "stored 6, duplicate 0, rejected 0 in 1 study" in output


@pytest.mark.django_db
def test_ingest_command_refuses_an_unsafe_zip_and_stores_nothing(
    tmp_path: Path, tiny_study: SyntheticStudy, isolated_storage: Path
) -> None:
    paths = tiny_study.write(tmp_path / "series")
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(paths[0], arcname="../escape.dcm")
    # The good files sort before the zip: they must not be stored either.
    with pytest.raises(CommandError, match="Unsafe path in zip"):
        run("ingest", str(tmp_path / "series"), str(archive))

    assert Instance.objects.count() == 0
    assert stored_files(isolated_storage) == []


@pytest.mark.django_db
def test_ingest_command_errors_on_missing_path_and_unknown_project(tmp_path: Path, project: Project) -> None:
    with pytest.raises(CommandError, match="No such file or folder"):
        run("ingest", str(tmp_path / "nowhere"))
    with pytest.raises(CommandError, match="No project 'nope'"):
        run("ingest", str(tmp_path), project="nope")


# --- generate_synthetic ------------------------------------------------------------------------------------


def test_generate_synthetic_writes_dicom_mask_and_ground_truth(tmp_path: Path) -> None:
    # A 32x32x4 volume is too small for lesions of the default 4-10 mm radius: none are asked for.
    output = run("generate_synthetic", str(tmp_path / "out"), count=1, rows=32, slices=4, lesions=0)

    [folder] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert f"{folder}: 4 slices, 0 lesions" in output
    truth = json.loads((folder / "ground_truth.json").read_text())
    assert folder.name == truth["study_uid"]
    assert truth["lesions"] == []
    dicom_files = sorted((folder / truth["series_uid"]).glob("*.dcm"))
    assert [p.name for p in dicom_files] == ["0000.dcm", "0001.dcm", "0002.dcm", "0003.dcm"]
    for number, path in enumerate(dicom_files, start=1):
        ds = pydicom.dcmread(path)
        assert (ds.Rows, ds.Columns) == (32, 32)
        assert ds.StudyInstanceUID == truth["study_uid"]
        assert ds.SeriesInstanceUID == truth["series_uid"]
        assert ds.InstanceNumber == number
        assert ds.pixel_array.shape == (32, 32)
    mask = np.load(folder / "mask.npy")
    assert mask.shape == (4, 32, 32)
    assert not mask.any()


def test_generate_synthetic_ground_truth_matches_the_mask(tmp_path: Path) -> None:
    run("generate_synthetic", str(tmp_path / "out"), count=2, seed=5, rows=64, slices=16, lesions=1)

    folders = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        truth = json.loads((folder / "ground_truth.json").read_text())
        mask = np.load(folder / "mask.npy")
        assert mask.shape == (16, 64, 64)
        [lesion] = truth["lesions"]
        z0, y0, x0, z1, y1, x1 = lesion["bbox_voxel"]
        nz, ny, nx = np.nonzero(mask == lesion["index"])
        assert (nz.min(), ny.min(), nx.min(), nz.max() + 1, ny.max() + 1, nx.max() + 1) == (z0, y0, x0, z1, y1, x1)
        assert len(list((folder / truth["series_uid"]).glob("*.dcm"))) == 16
    # Different seeds, different studies.
    assert folders[0].name != folders[1].name


def test_generate_synthetic_with_lesions_that_do_not_fit_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="could not place lesion"):
        run("generate_synthetic", str(tmp_path / "out"), count=1, rows=32, slices=4)
    assert [p for p in (tmp_path / "out").iterdir() if p.is_dir()] == []


# --- seed_demo ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_is_idempotent(isolated_storage: Path) -> None:
    first = run("seed_demo", studies=1)
    counts = (
        User.objects.count(),
        Membership.objects.count(),
        Project.objects.count(),
        Study.objects.count(),
        Instance.objects.count(),
        ImageStore.objects.count(),
        len(stored_files(isolated_storage)),
    )
    assert "synthetic stored 32, already there 0" in first
    assert counts[4] >= 32 + 1  # the synthetic series and at least one of pydicom's real files

    second = run("seed_demo", studies=1)

    assert "synthetic stored 0, already there 32" in second
    # The demo models train in background jobs queued by the first run only (issue 17).
    from inference.models import ModelVersion

    assert "2 demo model(s) training in the background" in first and "demo model" not in second
    demos = ModelVersion.objects.filter(demo=True, project__slug="demo-chest-ct")
    assert sorted(demos.values_list("task_type", flat=True)) == ["interactive", "segmentation"]
    assert all(v.training_job is not None and v.training_job.queue == "gpu" for v in demos)
    assert (
        User.objects.count(),
        Membership.objects.count(),
        Project.objects.count(),
        Study.objects.count(),
        Instance.objects.count(),
        ImageStore.objects.count(),
        len(stored_files(isolated_storage)),
    ) == counts
    demo = Project.objects.get(slug="demo-chest-ct")
    assert Study.objects.filter(store=demo.image_store).count() == Study.objects.count()
    assert User.objects.get(username="admin").is_superuser
