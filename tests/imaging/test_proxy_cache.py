"""The proxy cache (imaging.services.framecache): studies kept on an upstream PACS (the real Orthanc of the test
run) are fetched once when a case is claimed, and their frames are then served from disk by the fast path and
the normal view, byte for byte what the proxy served; the bound evicts whole studies, least recently prefetched
first, never a file another row reads; and the cache never lets one store's index read another store's pixels.

Requests go to two WSGI applications in this process, as in test_frame_fast_path: Django's own handler (the
normal view) and the fast path in front of a spy of it."""

from __future__ import annotations

import copy
import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.management import call_command
from pydicom.dataset import Dataset

from annotation import services
from annotation.labels import load_example_schema
from annotation.models import Assignment, Project, ReadingRole, Role
from config.celery import app as celery_app
from datasets.volumes import series_layout
from imaging.models import DicomSource, Instance, Series, Study
from imaging.services import framecache
from imaging.services.pull import study_index_upstream
from imaging.services.share import study_share
from imaging.tasks import prefetch_study
from tests.conftest import require_env, stored_files
from tests.factories import DicomSourceFactory, ProjectFactory
from tests.imaging import test_frame_fast_path as fast_path_tests
from tests.imaging.test_dicomweb_proxy import closed_port, fresh_series
from tests.imaging.test_frame_fast_path import (
    Answer,
    World,
    assert_refused_like_the_view,
    assert_served_like_the_view,
    call,
    token,
)

# The fast-path tests' fixtures: the two WSGI applications, and projects p1 (alice) and p2 (bob) with local studies.
apps = fast_path_tests.apps
world = fast_path_tests.world

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def fresh_queue_memory() -> Iterator[None]:
    """Each test starts with no study remembered as queued by this process."""
    framecache._queued.clear()
    yield
    framecache._queued.clear()


def upstream_series(size: int = 64, slices: int = 2) -> list[Dataset]:
    """A synthetic CT series with UIDs of its own (salted), so that nothing else in Orthanc has them."""
    return fresh_series(size=size, slices=slices)


def new_source(name: str) -> DicomSource:
    return cast(
        DicomSource, DicomSourceFactory(name=name, base_url=require_env("ORTHANC_DICOMWEB_URL"), timeout_seconds=10)
    )


def put_upstream(project: Project, series: list[Dataset]) -> Study:
    """Stored in Orthanc and indexed in the project's store (pixels stay in Orthanc)."""
    assert project.dicom_source is not None
    DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(series)
    return study_index_upstream(
        source=project.dicom_source, study_instance_uid=series[0].StudyInstanceUID, store=project.image_store
    )


def delete_from_orthanc(study_uid: str) -> None:
    orthanc = require_env("ORTHANC_URL")
    found = requests.post(f"{orthanc}/tools/lookup", data=study_uid, timeout=30)
    found.raise_for_status()
    for item in found.json():
        if item["Type"] == "Study":
            requests.delete(f"{orthanc}/studies/{item['ID']}", timeout=30).raise_for_status()


@pytest.fixture
def upstream_project(world: World) -> tuple[Project, list[Dataset], Study]:
    """p3, whose study stays in Orthanc (two slices); alice (of p1) is also its annotator."""
    p3 = cast(Project, ProjectFactory(slug="p3", dicom_source=new_source("orthanc")))
    p3.memberships.create(user=world.alice, role=Role.ANNOTATOR)
    series = upstream_series()
    return p3, series, put_upstream(p3, series)


def down() -> str:
    """A DICOMweb root on a loopback port that nothing listens on: a PACS that is down."""
    return f"http://127.0.0.1:{closed_port()}/dicom-web"


def repoint(project: Project, url: str) -> None:
    """The project's PACS moved to ``url``."""
    assert project.dicom_source is not None
    DicomSource.objects.filter(pk=project.dicom_source.pk).update(base_url=url)


def payload(answer: Answer) -> bytes:
    """The one part's bytes of a single-frame multipart/related answer."""
    assert answer.status == 200, answer.body[:300]
    boundary = re.search(r"boundary=([^;\s]+)", answer.headers["Content-Type"])
    assert boundary is not None
    start = answer.body.index(b"\r\n\r\n") + 4
    end = answer.body.index(f"\r\n--{boundary[1]}--".encode(), start)
    return answer.body[start:end]


def served(apps: Any, path: str, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """(the fast path's frame, the normal view's frame), each as served."""
    django_app, fast, _spy = apps
    return payload(call(fast, path, headers=headers)), payload(call(django_app, path, headers=headers))


def on_disk(storage: Path) -> list[Path]:
    """The cache's files in the test's storage (the local studies of p1 and p2 are beside them)."""
    return stored_files(storage / "proxy-cache") if (storage / "proxy-cache").exists() else []


def cached_files(study: Study) -> list[str]:
    return sorted(Instance.objects.filter(series__study=study).exclude(file="").values_list("file", flat=True))


# --- Prefetch and serving ----------------------------------------------------------------------------------


def test_prefetch_fills_the_cache_and_frames_are_served_from_it_as_the_proxy_served_them(
    world: World, apps: Any, upstream_project: tuple[Project, list[Dataset], Study], isolated_storage: Path
):
    p3, series, study = upstream_project
    headers = token(world.alice)
    before = {ds.SOPInstanceUID: served(apps, world.frame_path(ds, scope="p3"), headers) for ds in series}
    assert on_disk(isolated_storage) == []

    assert prefetch_study(study.pk) == len(series)

    rows = {row.sop_instance_uid: row for row in Instance.objects.filter(series__study=study)}
    for ds in series:
        row = rows[ds.SOPInstanceUID]
        assert row.file.startswith(f"proxy-cache/{p3.image_store.pk}/{ds.StudyInstanceUID}/")
        assert default_storage.exists(row.file)
        assert row.file_size == default_storage.size(row.file)
        assert row.transfer_syntax_uid == "1.2.840.10008.1.2.1" and not row.is_encapsulated
        assert row.pixel_data_length == len(ds.PixelData)
        assert row.sha256 == ""  # ingest never dedups a local file onto the cache's
    assert Study.objects.get(pk=study.pk).cache_prefetched_at is not None
    # What is built from the local store (dataset exports) does not depend on the cache: still upstream.
    assert not series_layout(Series.objects.get(study=study)).has_local_files()
    assert len(on_disk(isolated_storage)) == len(series)

    for ds in series:
        for scope in (None, "p3"):
            path = world.frame_path(ds, scope=scope)
            quick = assert_served_like_the_view(apps, path, headers)  # by the fast path itself, from the file
            decoded = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()
            fast_frame, view_frame = payload(quick), served(apps, path, headers)[1]
            assert fast_frame == view_frame == decoded == before[ds.SOPInstanceUID][0] == before[ds.SOPInstanceUID][1]
            assert np.array_equal(np.frombuffer(fast_frame, dtype="<i2").reshape(ds.Rows, ds.Columns), ds.pixel_array)


def test_cached_frames_are_served_while_the_pacs_is_unreachable(
    world: World, apps: Any, upstream_project: tuple[Project, list[Dataset], Study], isolated_storage: Path
):
    p3, series, study = upstream_project
    assert prefetch_study(study.pk) == len(series)
    repoint(p3, down())
    django_app, fast, spy = apps
    for ds in series:
        path = world.frame_path(ds, scope="p3")
        assert_served_like_the_view(apps, path, token(world.alice))
        fast_frame, view_frame = served(apps, path, token(world.alice))
        assert fast_frame == view_frame == ds.PixelData
    # Bulk data of a cached instance comes from the file too.
    bulk = call(
        django_app,
        world.frame_path(series[0], scope="p3").rsplit("/frames/", 1)[0] + "/bulk/7FE00010",
        headers=token(world.alice),
    )
    assert payload(bulk) == series[0].PixelData
    # Evicted, the study is proxied again: the PACS being down is the proxy's 502, as before the cache.
    assert framecache.study_evict(study.pk) == len(series)
    assert on_disk(isolated_storage) == []
    answer = call(fast, world.frame_path(series[0], scope="p3"), headers=token(world.alice))
    assert answer.status == 502 and "unreachable" in answer.json()["detail"]


def test_a_pacs_that_is_down_caches_nothing_and_frames_stay_proxied(
    world: World,
    apps: Any,
    upstream_project: tuple[Project, list[Dataset], Study],
    isolated_storage: Path,
    caplog: pytest.LogCaptureFixture,
):
    p3, series, study = upstream_project
    right = require_env("ORTHANC_DICOMWEB_URL")
    repoint(p3, down())
    with caplog.at_level(logging.WARNING, logger="imaging.services.framecache"):
        assert prefetch_study(study.pk) == 0
    assert "unreachable" in caplog.text
    assert cached_files(study) == [] and on_disk(isolated_storage) == []
    assert Study.objects.get(pk=study.pk).cache_prefetched_at is None
    repoint(p3, right)
    fast_frame, view_frame = served(apps, world.frame_path(series[0], scope="p3"), token(world.alice))
    assert fast_frame == view_frame == series[0].PixelData  # proxied, as before


def test_prefetch_run_twice_leaves_the_same_state(
    upstream_project: tuple[Project, list[Dataset], Study], isolated_storage: Path
):
    _p3, series, study = upstream_project
    assert prefetch_study(study.pk) == len(series)
    rows = list(Instance.objects.filter(series__study=study).order_by("pk").values())
    files = on_disk(isolated_storage)
    assert prefetch_study(study.pk) == 0
    again = list(Instance.objects.filter(series__study=study).order_by("pk").values())
    assert again == rows and on_disk(isolated_storage) == files


def test_a_file_that_is_not_the_indexed_instance_is_not_cached(
    upstream_project: tuple[Project, list[Dataset], Study], isolated_storage: Path, caplog: pytest.LogCaptureFixture
):
    _p3, series, study = upstream_project
    # The index says 32 rows for the first instance; the PACS's file has 64: not the instance the row describes.
    Instance.objects.filter(sop_instance_uid=series[0].SOPInstanceUID).update(rows=32)
    with caplog.at_level(logging.WARNING, logger="imaging.services.framecache"):
        assert prefetch_study(study.pk) == len(series) - 1
    assert "not the one indexed" in caplog.text
    assert Instance.objects.get(sop_instance_uid=series[0].SOPInstanceUID).file == ""
    assert len(on_disk(isolated_storage)) == len(series) - 1


def test_cache_off_caches_nothing_and_serves_nothing_from_disk(
    world: World,
    apps: Any,
    upstream_project: tuple[Project, list[Dataset], Study],
    isolated_storage: Path,
    settings: Any,
):
    p3, series, study = upstream_project
    assert prefetch_study(study.pk) == len(series)
    settings.PROXY_CACHE_MB = 0
    # Files cached before the cache was turned off are not read: the PACS is asked (here: it is down, a 502).
    repoint(p3, down())
    answer = call(apps[1], world.frame_path(series[0], scope="p3"), headers=token(world.alice))
    assert answer.status == 502
    # Trimmed to the bound of 0, every cached copy goes.
    out = io.StringIO()
    call_command("proxy_cache_trim", stdout=out)
    assert "0.0 MiB now" in out.getvalue()
    assert cached_files(study) == [] and on_disk(isolated_storage) == []
    assert Study.objects.get(pk=study.pk).cache_prefetched_at is None
    assert prefetch_study(study.pk) == 0
    assert cached_files(study) == [] and on_disk(isolated_storage) == []


# --- The bound ---------------------------------------------------------------------------------------------


def test_the_bound_evicts_the_least_recently_prefetched_study(
    world: World, apps: Any, isolated_storage: Path, settings: Any
):
    # Three studies of three 256x256 slices, about 0.39 MiB each: two fit in 1 MiB, three do not.
    settings.PROXY_CACHE_MB = 1
    p3 = cast(Project, ProjectFactory(slug="p3", dicom_source=new_source("orthanc")))
    p3.memberships.create(user=world.alice, role=Role.ANNOTATOR)
    sent = [upstream_series(size=256, slices=3) for _ in range(3)]
    studies = [put_upstream(p3, series) for series in sent]
    first, second, third = studies
    assert prefetch_study(first.pk) == 3
    assert prefetch_study(second.pk) == 3
    assert framecache.cache_used_bytes() <= 1024 * 1024
    assert prefetch_study(third.pk) == 3

    assert cached_files(first) == []
    assert len(cached_files(second)) == len(cached_files(third)) == 3
    assert Study.objects.get(pk=first.pk).cache_prefetched_at is None
    assert len(on_disk(isolated_storage)) == 6  # the first study's files are gone from disk
    assert framecache.cache_used_bytes() <= 1024 * 1024
    # The evicted study is proxied again, the others are read from disk; all serve the same pixels.
    for series in sent:
        fast_frame, view_frame = served(apps, world.frame_path(series[1], scope="p3"), token(world.alice))
        assert fast_frame == view_frame == series[1].PixelData
    # Prefetched again, the first study is the most recent: the second (now the oldest) makes room.
    assert prefetch_study(first.pk) == 3
    assert cached_files(second) == [] and len(cached_files(first)) == len(cached_files(third)) == 3


def test_eviction_never_deletes_a_file_another_row_still_reads(
    world: World, apps: Any, upstream_project: tuple[Project, list[Dataset], Study], isolated_storage: Path
):
    p3, series, study = upstream_project
    assert prefetch_study(study.pk) == len(series)
    files = cached_files(study)
    # Shared into p1: the copy's rows reference the same cached files.
    share = study_share(study=study, to_store=world.p1.image_store, shared_by=None)
    assert share.copy is not None
    shared = Study.objects.get(pk=share.copy.pk)
    assert cached_files(shared) == files

    assert framecache.study_evict(study.pk) == len(series)
    assert cached_files(study) == []
    assert on_disk(isolated_storage) == sorted(isolated_storage / name for name in files)
    # The copy still serves its frames from those files, by the fast path.
    quick = assert_served_like_the_view(apps, world.frame_path(series[0], scope="p1"), token(world.alice))
    assert payload(quick) == series[0].PixelData

    assert framecache.study_evict(shared.pk) == len(series)
    assert not any(default_storage.exists(name) for name in files)
    assert on_disk(isolated_storage) == []


# --- Isolation ---------------------------------------------------------------------------------------------


def test_borrowed_uids_never_read_another_stores_cached_pixels(
    world: World, apps: Any, make_member: Callable[..., User], isolated_storage: Path
):
    """A and B index the same UIDs, each from its own source; A's study is cached, then what B's source holds
    under those UIDs changes. B's reader always gets what B's source holds, A's cache is never read through B's
    rows (not even while B's are uncached), and those outside a project get the refusal they got before."""
    pa = cast(Project, ProjectFactory(slug="pa", dicom_source=new_source("pacs-a")))
    pb = cast(Project, ProjectFactory(slug="pb", dicom_source=new_source("pacs-b")))
    ann = make_member(pa, Role.ANNOTATOR, "ann")
    bea = make_member(pb, Role.ANNOTATOR, "bea")
    series_a = upstream_series()
    study_a = put_upstream(pa, series_a)
    assert pb.dicom_source is not None
    # B's index has the same UIDs, and is there before A's prefetch (a cache keyed by UID would fill it too).
    study_b = study_index_upstream(
        source=pb.dicom_source, study_instance_uid=series_a[0].StudyInstanceUID, store=pb.image_store
    )
    assert study_b.pk != study_a.pk and study_b.study_instance_uid == study_a.study_instance_uid

    # Before A's study is cached: the refusals an outsider gets.
    def refusals() -> list[dict[str, Any]]:
        out = []
        for who, scope in ((world.bob, None), (world.bob, "pa"), (world.bob, "pb"), (bea, "pa"), (ann, "pb")):
            out.append(assert_refused_like_the_view(apps, world.frame_path(series_a[0], scope=scope), token(who), 404))
        return out

    refused_before = refusals()
    assert prefetch_study(study_a.pk) == len(series_a)

    # The PACS now holds other pixels under the same UIDs (a PACS whose study was replaced; to B, its own).
    delete_from_orthanc(series_a[0].StudyInstanceUID)
    series_b = []
    for ds in series_a:
        other = copy.deepcopy(ds)
        other.PixelData = (np.asarray(ds.pixel_array) + 1000).astype(ds.pixel_array.dtype).tobytes()
        series_b.append(other)
    assert all(b.PixelData != a.PixelData for a, b in zip(series_a, series_b, strict=True))
    DICOMwebClient(url=require_env("ORTHANC_DICOMWEB_URL")).store_instances(series_b)
    assert cached_files(study_b) == []

    def frames(user: User, scope: str | None) -> list[tuple[bytes, bytes]]:
        return [served(apps, world.frame_path(ds, scope=scope), token(user)) for ds in series_a]

    # B's rows are not cached: B's reader gets B's pixels from B's source, never A's cached ones.
    for scope in (None, "pb"):
        assert frames(bea, scope) == [(b.PixelData, b.PixelData) for b in series_b]
    for scope in (None, "pa"):
        assert frames(ann, scope) == [(a.PixelData, a.PixelData) for a in series_a]  # A's cache

    # B's own prefetch caches B's pixels from B's source, in B's store's folder; A's cache is untouched.
    assert prefetch_study(study_b.pk) == len(series_b)
    assert all(name.startswith(f"proxy-cache/{pb.image_store.pk}/") for name in cached_files(study_b))
    assert all(name.startswith(f"proxy-cache/{pa.image_store.pk}/") for name in cached_files(study_a))
    DicomSource.objects.filter(name__in=["pacs-a", "pacs-b"]).update(base_url=down())
    for scope in (None, "pb"):
        assert frames(bea, scope) == [(b.PixelData, b.PixelData) for b in series_b]
    for scope in (None, "pa"):
        assert frames(ann, scope) == [(a.PixelData, a.PixelData) for a in series_a]
    # Those outside a project get the same refusal as before anything was cached.
    assert refusals() == refused_before


# --- Claims ------------------------------------------------------------------------------------------------


def test_claiming_a_case_of_an_upstream_study_queues_its_prefetch_once(
    world: World,
    upstream_project: tuple[Project, list[Dataset], Study],
    make_member: Callable[..., User],
    django_capture_on_commit_callbacks: Any,
    isolated_storage: Path,
):
    p3, series, study = upstream_project
    p3.readers_per_case = 2
    p3.save(update_fields=["readers_per_case"])
    services.schema_create_version(project=p3, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    [case] = services.cases_create(project=p3, study_uids=[study.study_instance_uid])
    carl = make_member(p3, Role.REVIEWER, "carl")  # the second reader (blind double reading: at once)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        claimed = services.assignment_claim_next(project=p3, user=world.alice, role=ReadingRole.FIRST_READER)
    assert claimed is not None and claimed.case_id == case.pk
    assert len(queued) == 1
    # The second reader of the same study a moment later: not queued again by this process.
    with django_capture_on_commit_callbacks(execute=False) as again:
        second = services.assignment_claim_next(project=p3, user=carl, role=ReadingRole.SECOND_READER)
    assert second is not None and second.case_id == case.pk
    assert again == []
    assert Assignment.objects.filter(case=case).count() == 2

    # What was queued is this study's prefetch: run (eagerly, by Celery itself), it fills the cache.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        queued[0]()
    finally:
        celery_app.conf.task_always_eager = eager
    assert len(cached_files(study)) == len(series)
    # And run again by the worker (a redelivery): the same state.
    assert prefetch_study(study.pk) == 0
    assert len(cached_files(study)) == len(series)


def test_claiming_a_case_of_a_local_study_or_with_the_cache_off_queues_nothing(
    world: World,
    upstream_project: tuple[Project, list[Dataset], Study],
    django_capture_on_commit_callbacks: Any,
    settings: Any,
):
    p3, _series, study = upstream_project
    services.schema_create_version(project=p3, definition=load_example_schema("chest_ct_nodules"), created_by=None)
    services.schema_create_version(
        project=world.p1, definition=load_example_schema("chest_ct_nodules"), created_by=None
    )
    services.cases_create(project=p3, study_uids=[study.study_instance_uid])
    services.cases_create(project=world.p1, study_uids=[world.s1[0].StudyInstanceUID])
    with django_capture_on_commit_callbacks(execute=False) as local:
        assert services.assignment_claim_next(project=world.p1, user=world.alice, role=ReadingRole.FIRST_READER)
    assert local == []
    settings.PROXY_CACHE_MB = 0
    with django_capture_on_commit_callbacks(execute=False) as off:
        assert services.assignment_claim_next(project=p3, user=world.alice, role=ReadingRole.FIRST_READER)
    assert off == []
