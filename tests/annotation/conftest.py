"""Shared fixtures and helpers for the annotation tests.

Fixtures (function scope, need the database):

- ``ingested_studies``: three small synthetic CT studies (64 x 64, 8 slices, one nodule each) ingested
  into the local store, as their ``SyntheticStudy`` objects (``.study_uid``, ``.series_uid``, ``.mask``).
- ``users``: role name -> User for ``annotator``, ``reviewer``, ``expert``, ``manager`` and ``outsider``
  (a user with no membership anywhere). ``admin`` is a separate fixture (a superuser, no membership).
- ``bare_project``: project "nodules" with one member per role and the studies linked; no schema, no cases.
- ``reading_project``: ``bare_project`` plus the ``chest_ct_nodules`` schema (v1, by the manager) and one
  study-level case per ingested study.
- ``reading_cases``: the cases of ``reading_project`` in the order of ``ingested_studies``.
- ``client_for``: ``client_for(user)`` is a Django test client logged in as ``user``; ``client_for(None)``
  an anonymous one.
- ``chest_values``: the ``chest_values`` function below, for tests that prefer a fixture to an import.

Helpers (import them: ``from tests.annotation.conftest import chest_values, post_revision, ...``):
``chest_values``, ``case_sops``, ``case_series``, ``mask_for``, ``post_revision``, ``db_state``,
``ingest_study``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import encode_mask, load_example_schema
from annotation.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Case,
    MaskFile,
    Project,
    Role,
)
from annotation.services import cases_create, schema_create_version
from imaging.models import Instance, Series
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy, generate_ct_study
from review.models import CaseEvent
from tests.conftest import dataset_bytes, stored_files
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, place_studies

ROWS = COLUMNS = 64
SLICES = 8
STUDY_SEEDS = (101, 102, 103)
ROLE_USERS = ("annotator", "reviewer", "expert", "manager")
PROJECT_SLUG = "nodules"


# --- Synthetic studies (generated once per session, ingested per test) ------------------------------------


@functools.cache
def synthetic_study(seed: int) -> SyntheticStudy:
    return generate_ct_study(seed=seed, rows=ROWS, columns=COLUMNS, slices=SLICES, n_lesions=1)


@functools.cache
def _study_files(seed: int) -> tuple[bytes, ...]:
    return tuple(dataset_bytes(ds) for ds in synthetic_study(seed).datasets())


def ingest_study(seed: int, *, drop_slice: int | None = None) -> SyntheticStudy:
    """Ingest the synthetic study of ``seed`` (optionally without one slice: a series that fails its
    quality checks for a missing slice) and return it."""
    files = list(_study_files(seed))
    if drop_slice is not None:
        del files[drop_slice]
    report = ingest_files([IncomingFile(f"{seed}-{k:02d}.dcm", data) for k, data in enumerate(files)])
    assert [f.status for f in report.files] == [STORED] * len(files), [f.reason for f in report.files]
    return synthetic_study(seed)


@pytest.fixture
def ingested_studies(db: None) -> list[SyntheticStudy]:
    return [ingest_study(seed) for seed in STUDY_SEEDS]


# --- Users, projects, cases ---------------------------------------------------------------------------------


@pytest.fixture
def users(db: None) -> dict[str, User]:
    return {name: cast(User, UserFactory(username=name)) for name in (*ROLE_USERS, "outsider")}


@pytest.fixture
def admin(db: None) -> User:
    """A superuser who is a member of no project."""
    user = cast(User, UserFactory(username="admin"))
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


@pytest.fixture
def bare_project(users: dict[str, User], ingested_studies: list[SyntheticStudy]) -> Project:
    project = cast(Project, ProjectFactory(slug=PROJECT_SLUG, name="Nodule reading", readers_per_case=2))
    for role in ROLE_USERS:
        MembershipFactory(project=project, user=users[role], role=Role(role))
    place_studies(project, [s.study_uid for s in ingested_studies])
    return project


@pytest.fixture
def reading_project(bare_project: Project, users: dict[str, User], ingested_studies: list[SyntheticStudy]) -> Project:
    schema_create_version(
        project=bare_project, definition=load_example_schema("chest_ct_nodules"), created_by=users["manager"]
    )
    cases_create(project=bare_project, study_uids=[s.study_uid for s in ingested_studies])
    return bare_project


@pytest.fixture
def reading_cases(reading_project: Project, ingested_studies: list[SyntheticStudy]) -> list[Case]:
    return [
        Case.objects.select_related("project", "study").get(
            project=reading_project, study__study_instance_uid=s.study_uid
        )
        for s in ingested_studies
    ]


@pytest.fixture
def client_for(db: None) -> Callable[[User | None], Client]:
    def make(user: User | None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


# --- Label values -------------------------------------------------------------------------------------------


def case_series(case: Case) -> Series:
    """The series a case is read on: its own series, else the (first) series of its study."""
    if case.series_id is not None:
        return Series.objects.get(pk=case.series_id)
    return Series.objects.filter(study_id=case.study_id).order_by("series_number", "series_instance_uid").first()  # type: ignore[return-value]


def case_sops(case: Case) -> list[str]:
    """SOP Instance UIDs of the case's series, in slice (instance number) order."""
    return list(
        Instance.objects.filter(series=case_series(case), has_pixel_data=True)
        .order_by("instance_number", "sop_instance_uid")
        .values_list("sop_instance_uid", flat=True)
    )


def mask_for(case: Case, *, value: int = 1, dtype: str = "uint8") -> np.ndarray:
    """A brush mask of the series' shape (slices x rows x columns) with a small painted block."""
    series = case_series(case)
    assert series.rows and series.columns
    array = np.zeros((series.number_of_slices, series.rows, series.columns), dtype=np.dtype(dtype))
    array[2:4, 20:28, 22:30] = value
    return array


def chest_values(
    case: Case,
    *,
    nodule_present: str = "yes",
    box: bool = True,
    mask: bool | np.ndarray = False,
    slice_index: int = 3,
    geometry: dict[str, Any] | None = None,
    nodule_type: str = "solid",
    diameter: float = 6.5,
    lobe: str | None = "right_upper",
    malignancy: int | None = 3,
    findings: list[str] | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Valid ``{"items": [...]}`` for a case of the chest_ct_nodules schema, complete enough to submit.

    ``box``: one nodule box (id "n1") on slice ``slice_index`` (a real SOP of the case) with its required
    type and diameter; ``mask``: True for ``mask_for(case)``, or an array to encode as the series mask."""
    items: list[dict[str, Any]] = [{"label": "nodule_present", "value": nodule_present}]
    if box:
        items.append(
            {
                "label": "nodule_box",
                "id": "n1",
                "sop_instance_uid": case_sops(case)[slice_index],
                "geometry": geometry or {"x": 20, "y": 22, "width": 10, "height": 8},
            }
        )
        items.append({"label": "nodule_type", "region": "n1", "value": nodule_type})
        items.append({"label": "diameter", "region": "n1", "value": diameter})
        if lobe is not None:
            items.append({"label": "lobe", "region": "n1", "value": lobe})
        if malignancy is not None:
            items.append({"label": "malignancy", "region": "n1", "value": malignancy})
    if mask is not False:
        array = mask_for(case) if mask is True else mask
        assert isinstance(array, np.ndarray)
        items.append(
            {
                "label": "nodule_mask",
                "series_instance_uid": case_series(case).series_instance_uid,
                "mask": encode_mask(array),
            }
        )
    if findings is not None:
        items.append({"label": "findings", "value": findings})
    if comment is not None:
        items.append({"label": "comment", "value": comment})
    return {"items": items}


@pytest.fixture(name="chest_values")
def _chest_values_fixture() -> Callable[..., dict[str, Any]]:
    return chest_values


# --- API and state helpers ----------------------------------------------------------------------------------


def post_revision(
    client: Client,
    case: Case | int,
    values: Any,
    *,
    base_revision: int,
    submit: bool = False,
    role: str = "first_reader",
) -> Any:
    """POST a revision of the case's reading; returns the test client's response (``.json()`` works)."""
    case_id = case if isinstance(case, int) else case.pk
    body = {"role": role, "base_revision": base_revision, "values": values, "submit": submit}
    return client.post(f"/api/v1/cases/{case_id}/revisions/", data=body, content_type="application/json")


def db_state(storage: Path) -> dict[str, Any]:
    """What a rejected request must leave as it was: rows of the annotation models, files on disk, and
    the status of every case and assignment."""
    return {
        "annotations": Annotation.objects.count(),
        "revisions": AnnotationRevision.objects.count(),
        "masks": MaskFile.objects.count(),
        "case_events": CaseEvent.objects.count(),
        "files": stored_files(storage),
        "case_status": dict(Case.objects.values_list("pk", "status")),
        "assignments": sorted(Assignment.objects.values_list("pk", "case_id", "user_id", "role", "status")),
    }
