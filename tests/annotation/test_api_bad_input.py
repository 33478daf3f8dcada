"""Bad input to the annotation API: every refusal has the right status, a message naming the field and the
reason, and stores nothing (no annotation, revision or mask row, no file, no change of case or assignment)."""

from __future__ import annotations

import base64
import copy
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import encode_mask, encode_mask_rle, load_example_schema
from annotation.models import AnnotationRevision, Case, LabelSchema, Project, Role
from annotation.services import annotation_save, assignment_create, schema_create_version
from imaging.models import Series
from imaging.synthetic import SyntheticStudy
from tests.annotation.conftest import (
    case_sops,
    chest_values,
    db_state,
    ingest_study,
    mask_for,
    post_revision,
)
from tests.factories import MembershipFactory, ProjectFactory, place_studies
from tests.i18n import assert_chinese

API = "/api/v1"
JSON = "application/json"


@dataclass
class Reading:
    """Case A: the annotator is its first reader (nothing saved yet). Case B: the reviewer is its second reader."""

    case: Case
    other_case: Case
    annotator: Client
    reviewer: Client
    manager: Client
    storage: Path


@pytest.fixture
def reading(
    reading_project: Project,
    reading_cases: list[Case],
    users: dict[str, User],
    client_for: Callable[[User | None], Client],
    isolated_storage: Path,
) -> Reading:
    case_a, case_b, _ = reading_cases
    assignment_create(case=case_a, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
    assignment_create(case=case_b, user=users["reviewer"], role="second_reader", assigned_by=users["manager"])
    return Reading(
        case=case_a,
        other_case=case_b,
        annotator=client_for(users["annotator"]),
        reviewer=client_for(users["reviewer"]),
        manager=client_for(users["manager"]),
        storage=isolated_storage,
    )


def assert_refused(
    response: Any, status: int, *, field: str | None = None, contains: tuple[str, ...] = (), code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    if field is not None:
        assert body["field"] == field, body
        if field.startswith("items") or "missing" in body:
            # A reading's message is for the reader: display names and lesion ordinals, never the path.
            assert "items[" not in body["detail"], body
        else:
            assert body["detail"].startswith(f"{field}: "), body
    for text in contains:
        assert text in body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def index_of(values: dict[str, Any], label: str) -> int:
    return next(k for k, item in enumerate(values["items"]) if item["label"] == label)


# --- Label values that the schema or the study refuses --------------------------------------------------------

Values = dict[str, Any]


def _unknown_label(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"].append({"label": "nodule_size", "value": 3})
    return values, f"items[{len(values['items']) - 1}].label", "unknown label 'nodule_size'"


def _geometry_on_choice(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"][0]["geometry"] = {"x": 1, "y": 1, "width": 2, "height": 2}
    return (
        values,
        "items[0].geometry",
        "geometry is not allowed for Nodule present (a single_choice label at level study",
    )


def _mask_on_box(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"][1]["mask"] = encode_mask(mask_for(case))
    return values, "items[1].mask", "mask is not allowed for Nodule bounding box"


def _diameter_too_large(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, diameter=150)
    return (
        values,
        f"items[{index_of(values, 'diameter')}].value",
        "150 mm is above the maximum 100 mm of Long-axis diameter",
    )


def _diameter_not_a_number(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"][index_of(values, "diameter")]["value"] = "6 mm"
    return values, f"items[{index_of(values, 'diameter')}].value", "expected a finite number, got a string"


def _malignancy_off_scale(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, malignancy=7)
    return values, f"items[{index_of(values, 'malignancy')}].value", "7 is not on the scale of Suspicion of malignancy"


def _choice_not_in_list(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, nodule_present="maybe")
    return values, "items[0].value", "'maybe' is not a choice of Nodule present (Yes, No)"


def _parent_choice(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, nodule_type="subsolid")
    return values, f"items[{index_of(values, 'nodule_type')}].value", "'subsolid' is not selectable in Nodule type"


def _unknown_region(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"][index_of(values, "nodule_type")]["region"] = "n9"
    return values, f"items[{index_of(values, 'nodule_type')}].region", "no region with id 'n9'"


def _box_outside(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, geometry={"x": 60, "y": 10, "width": 10, "height": 5})
    return values, "items[1].geometry.x", "box outside the image (x + width = 70 > 64 columns)"


def _box_negative(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, geometry={"x": 5, "y": -1, "width": 10, "height": 5})
    return values, "items[1].geometry.y", "box outside the image (y = -1 < 0)"


def _unknown_sop(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"][1]["sop_instance_uid"] = "1.2.826.0.1.3680043.8.498.999"
    return values, "items[1].sop_instance_uid", "instance '1.2.826.0.1.3680043.8.498.999' is not in study"


def _sop_of_another_study(case: Case) -> tuple[Values, str, str]:
    other = Case.objects.exclude(pk=case.pk).filter(project=case.project).first()
    assert other is not None
    values = chest_values(case)
    values["items"][1]["sop_instance_uid"] = case_sops(other)[0]
    return values, "items[1].sop_instance_uid", f"is not in study {case.study.study_instance_uid}"


def _frame_beyond(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"][1]["frame"] = 2
    return values, "items[1].frame", "frame 2 does not exist"


def _mask_wrong_shape(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=np.zeros((8, 32, 32), dtype=np.uint8))
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.shape", "mask shape 8x32x32 does not match series"


def _mask_wrong_dtype(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    values["items"][index_of(values, "nodule_mask")]["mask"]["dtype"] = "float32"
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.dtype", "unsupported dtype 'float32'"


def _mask_dtype_disagrees_with_data(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)  # uint8 bytes declared as uint16: half the bytes a uint16 mask has
    values["items"][index_of(values, "nodule_mask")]["mask"]["dtype"] = "uint16"
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "expected 65536 for a 8x64x64 uint16 mask"


def _mask_not_base64(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    values["items"][index_of(values, "nodule_mask")]["mask"]["data"] = "not*base64!"
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "invalid base64"


def _mask_not_gzip(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    raw = mask_for(case).tobytes()
    values["items"][index_of(values, "nodule_mask")]["mask"]["data"] = base64.b64encode(raw).decode()
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "not valid gzip data"


def _mask_truncated(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    data = gzip.compress(mask_for(case).tobytes())[:-12]
    values["items"][index_of(values, "nodule_mask")]["mask"]["data"] = base64.b64encode(data).decode()
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "not valid gzip data"


def _mask_unknown_segment(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=mask_for(case, value=2))
    return (
        values,
        f"items[{index_of(values, 'nodule_mask')}].mask.data",
        "value(s) 2 are not segments of Nodule segmentation",
    )


def _mask_gzip_bomb(case: Case) -> tuple[Values, str, str]:
    """About 50 kB of gzip that would expand to 50 MB: stopped at the mask's own size, never expanded."""
    values = chest_values(case, mask=True)
    values["items"][index_of(values, "nodule_mask")]["mask"]["data"] = base64.b64encode(
        gzip.compress(bytes(50_000_000))
    ).decode()
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "more than the 32768 bytes"


def _mask_valid_gzip_then_garbage(case: Case) -> tuple[Values, str, str]:
    """A whole, valid mask stream with bytes after it: stored as sent, they would be kept, so refused."""
    values = chest_values(case, mask=True)
    data = gzip.compress(mask_for(case).tobytes()) + b"\x1f\x8b trailing"
    values["items"][index_of(values, "nodule_mask")]["mask"]["data"] = base64.b64encode(data).decode()
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "trailing bytes after the stream"


def _mask_one_voxel_too_many(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    data = gzip.compress(mask_for(case).tobytes() + b"\x00")
    values["items"][index_of(values, "nodule_mask")]["mask"]["data"] = base64.b64encode(data).decode()
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "more than the 32768 bytes"


def _mask_unknown_segment_in_the_last_voxel(case: Case) -> tuple[Values, str, str]:
    """A stray value where the check's eight-byte scan ends: the last voxel, past the last whole word."""
    array = mask_for(case)
    array.reshape(-1)[-1] = 5
    values = chest_values(case, mask=array)
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "value(s) 5 are not segments"


def _mask_rle_unknown_segment(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    values["items"][index_of(values, "nodule_mask")]["mask"] = encode_mask_rle(mask_for(case, value=3))
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "value(s) 3 are not segments"


def _mask_rle_short(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    payload = encode_mask_rle(mask_for(case)[:-1])
    payload["shape"] = list(mask_for(case).shape)
    values["items"][index_of(values, "nodule_mask")]["mask"] = payload
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.data", "runs cover 28672 values, expected 32768"


def _mask_rle_wrong_dtype(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case, mask=True)
    payload = encode_mask_rle(mask_for(case))
    payload["dtype"] = "int16"
    values["items"][index_of(values, "nodule_mask")]["mask"] = payload
    return values, f"items[{index_of(values, 'nodule_mask')}].mask.dtype", "unsupported dtype 'int16'"


def _values_not_an_object(case: Case) -> tuple[Any, str, str]:
    return [{"label": "nodule_present", "value": "yes"}], "values", "expected label values"


def _items_not_a_list(case: Case) -> tuple[Values, str, str]:
    return {"items": {"label": "nodule_present"}}, "items", "expected a list of items, got an object"


def _two_answers_to_one_question(case: Case) -> tuple[Values, str, str]:
    values = chest_values(case)
    values["items"].append({"label": "nodule_present", "value": "no"})
    return values, f"items[{len(values['items']) - 1}]", "Nodule present: a second answer on the same image or series"


# Answers that break the schema's rules: a draft keeps them, flagged; a submission is refused.
RULE_BREAKING_ANSWERS: list[Callable[[Case], tuple[Any, str, str]]] = [
    _diameter_too_large,
    _diameter_not_a_number,
    _malignancy_off_scale,
    _choice_not_in_list,
    _parent_choice,
]

# What makes a reading unreadable: refused as a draft and as a submission.
BAD_VALUES: list[Callable[[Case], tuple[Any, str, str]]] = [
    _unknown_label,
    _geometry_on_choice,
    _mask_on_box,
    _unknown_region,
    _box_outside,
    _box_negative,
    _unknown_sop,
    _sop_of_another_study,
    _frame_beyond,
    _mask_wrong_shape,
    _mask_wrong_dtype,
    _mask_dtype_disagrees_with_data,
    _mask_not_base64,
    _mask_not_gzip,
    _mask_truncated,
    _mask_unknown_segment,
    _mask_gzip_bomb,
    _mask_valid_gzip_then_garbage,
    _mask_one_voxel_too_many,
    _mask_unknown_segment_in_the_last_voxel,
    _mask_rle_unknown_segment,
    _mask_rle_short,
    _mask_rle_wrong_dtype,
    _values_not_an_object,
    _items_not_a_list,
    _two_answers_to_one_question,
]


@pytest.mark.parametrize("submit", [False, True], ids=["draft", "submit"])
@pytest.mark.parametrize("make", BAD_VALUES, ids=[f.__name__.lstrip("_") for f in BAD_VALUES])
def test_invalid_values_are_refused_naming_the_field_and_store_nothing(
    reading: Reading, make: Callable[[Case], tuple[Any, str, str]], submit: bool
) -> None:
    values, field, reason = make(reading.case)
    before = db_state(reading.storage)

    response = post_revision(reading.annotator, reading.case, values, base_revision=0, submit=submit)

    assert_refused(response, 400, field=field, contains=(reason,), code="invalid_labels")
    assert db_state(reading.storage) == before


@pytest.mark.parametrize("make", RULE_BREAKING_ANSWERS, ids=[f.__name__.lstrip("_") for f in RULE_BREAKING_ANSWERS])
def test_a_rule_breaking_answer_is_refused_on_submit_and_stores_nothing(
    reading: Reading, make: Callable[[Case], tuple[Any, str, str]]
) -> None:
    values, field, reason = make(reading.case)
    before = db_state(reading.storage)

    response = post_revision(reading.annotator, reading.case, values, base_revision=0, submit=True)

    assert_refused(response, 400, field=field, contains=(reason,), code="invalid_labels")
    assert db_state(reading.storage) == before


@pytest.mark.parametrize("make", RULE_BREAKING_ANSWERS, ids=[f.__name__.lstrip("_") for f in RULE_BREAKING_ANSWERS])
def test_a_draft_with_a_rule_breaking_answer_is_saved_as_typed_and_flagged(
    reading: Reading, make: Callable[[Case], tuple[Any, str, str]]
) -> None:
    """No lost work (issue 15 item 8): one bad answer does not throw away the rest of the draft."""
    values, field, reason = make(reading.case)
    index = int(field.split("[")[1].split("]")[0])
    typed = values["items"][index]

    response = post_revision(reading.annotator, reading.case, values, base_revision=0)

    assert response.status_code == 201, response.content
    body = response.json()
    assert len(body["problems"]) == 1
    problem = body["problems"][0]
    assert problem["field"] == field and reason in problem["reason"] and problem["label"] == typed["label"]
    assert problem["region"] == typed.get("region")
    revision = AnnotationRevision.objects.get(annotation_id=body["annotation"], number=1)
    assert not revision.is_submission and revision.problems == body["problems"]
    assert typed["value"] in [item.get("value") for item in revision.items if item["label"] == typed["label"]]
    assert {item["label"] for item in revision.items} == {item["label"] for item in values["items"]}
    # Submitting the same values is still refused, and stores nothing more.
    refused = post_revision(reading.annotator, reading.case, values, base_revision=1, submit=True)
    assert_refused(refused, 400, field=field, contains=(reason,), code="invalid_labels")
    assert AnnotationRevision.objects.filter(annotation_id=body["annotation"]).count() == 1
    # Repaired, the next draft carries no problem.
    repaired = post_revision(reading.annotator, reading.case, chest_values(reading.case, mask=True), base_revision=1)
    assert repaired.status_code == 201 and repaired.json()["problems"] == []


def test_every_bad_value_case_is_valid_once_repaired(reading: Reading) -> None:
    """The bad-values cases above differ from a valid reading only in the fault: the base is accepted."""
    response = post_revision(reading.annotator, reading.case, chest_values(reading.case, mask=True), base_revision=0)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("remove", "field", "reason"),
    [
        ("nodule_present", "nodule_present", "Nodule present: required label missing"),
        ("diameter", "diameter", "Long-axis diameter: required, missing for Nodule bounding box 1"),
        ("nodule_type", "nodule_type", "Nodule type: required, missing for Nodule bounding box 1"),
    ],
)
def test_submit_without_a_required_label_is_refused_and_stores_nothing(
    reading: Reading, remove: str, field: str, reason: str
) -> None:
    values = chest_values(reading.case, mask=True)
    values["items"] = [item for item in values["items"] if item["label"] != remove]
    before = db_state(reading.storage)

    response = post_revision(reading.annotator, reading.case, values, base_revision=0, submit=True)

    body = assert_refused(response, 400, field=field, contains=(reason,), code="invalid_labels")
    assert body["missing"] == [remove]
    assert db_state(reading.storage) == before
    # The same values are a valid draft: only submitting needs every required label.
    assert post_revision(reading.annotator, reading.case, values, base_revision=0).status_code == 201


def test_submit_reports_every_missing_required_label(reading: Reading) -> None:
    values = chest_values(reading.case)
    values["items"] = [item for item in values["items"] if item["label"] not in ("nodule_present", "diameter")]
    response = post_revision(reading.annotator, reading.case, values, base_revision=0, submit=True)
    body = assert_refused(response, 400, field="nodule_present")
    assert body["missing"] == ["nodule_present", "diameter"]
    assert "Long-axis diameter: required, missing for Nodule bounding box 1" in body["detail"]


# --- Polygons and points (fundus schema, in a second project on the same study) ----------------------------------


@pytest.fixture
def fundus_case(
    reading_cases: list[Case], users: dict[str, User], client_for: Callable[[User | None], Client]
) -> tuple[Case, Client]:
    project = cast(Project, ProjectFactory(slug="fundus", name="Fundus grading"))
    MembershipFactory(project=project, user=users["annotator"], role=Role.ANNOTATOR)
    schema_create_version(project=project, definition=load_example_schema("fundus_dr_grading"), created_by=None)
    study = reading_cases[0].study
    place_studies(project, [study.study_instance_uid])
    case = Case.objects.create(project=project, study=study)
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=None)
    return case, client_for(users["annotator"])


def _polygon(sop: str, points: list[list[float]]) -> dict[str, Any]:
    return {"label": "lesion_outline", "id": "l1", "sop_instance_uid": sop, "geometry": {"points": points}}


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        (
            lambda sop: _polygon(sop, [[1, 1], [70, 5], [10, 10]]),
            "items[0].geometry.points[1]",
            "point (70, 5) outside the image (64 columns x 64 rows)",
        ),
        (
            lambda sop: _polygon(sop, [[1, 1], [5, -0.5], [10, 10]]),
            "items[0].geometry.points[1]",
            "point (5, -0.5) outside the image",
        ),
        (lambda sop: _polygon(sop, [[1, 1], [5, 5]]), "items[0].geometry.points", "at least 3 points, got 2"),
        (
            lambda sop: {"label": "fovea", "id": "f1", "sop_instance_uid": sop, "geometry": {"x": 10, "y": 65}},
            "items[0].geometry.y",
            "point outside the image (y = 65 > 64 rows)",
        ),
        (
            lambda sop: {"label": "optic_disc", "id": "d1", "sop_instance_uid": sop, "geometry": {"x": -3, "y": 5}},
            "items[0].geometry.x",
            "point outside the image (x = -3 < 0)",
        ),
        (
            lambda sop: {
                "label": "fovea",
                "id": "f1",
                "sop_instance_uid": sop,
                "frame": 3,
                "geometry": {"x": 1, "y": 1},
            },
            "items[0].frame",
            "frame 3 does not exist",
        ),
    ],
    ids=[
        "polygon-beyond-columns",
        "polygon-negative",
        "polygon-two-points",
        "point-beyond-rows",
        "point-negative",
        "point-frame",
    ],
)
def test_polygon_and_point_outside_the_image_are_refused(
    fundus_case: tuple[Case, Client], isolated_storage: Path, item: Callable[[str], Any], field: str, reason: str
) -> None:
    case, client = fundus_case
    before = db_state(isolated_storage)
    response = post_revision(client, case, {"items": [item(case_sops(case)[0])]}, base_revision=0)
    assert_refused(response, 400, field=field, contains=(reason,), code="invalid_labels")
    assert db_state(isolated_storage) == before
    # Inside the image the same item is stored.
    inside = {"items": [_polygon(case_sops(case)[0], [[0, 0], [64, 0], [32, 64]])]}
    assert post_revision(client, case, inside, base_revision=0).status_code == 201


# --- Revisions: stale base, wrong reader, after submission, malformed requests ---------------------------------


def test_stale_base_revision_is_409_with_the_current_revision_and_stores_nothing(reading: Reading) -> None:
    first = post_revision(reading.annotator, reading.case, chest_values(reading.case, box=False), base_revision=0)
    assert first.status_code == 201
    before = db_state(reading.storage)

    # Based on nothing, with a new mask: the mask must not be stored either.
    stale = post_revision(reading.annotator, reading.case, chest_values(reading.case, mask=True), base_revision=0)
    body = assert_refused(
        stale, 409, contains=("you started from revision 0", "current one is 1"), code="stale_revision"
    )
    assert body["current_revision"] == 1
    assert body["annotation"] == first.json()["annotation"]
    assert db_state(reading.storage) == before

    ahead = post_revision(reading.annotator, reading.case, chest_values(reading.case), base_revision=5, submit=True)
    assert assert_refused(ahead, 409, code="stale_revision")["current_revision"] == 1
    assert db_state(reading.storage) == before

    # Starting again from the current revision works.
    again = post_revision(reading.annotator, reading.case, chest_values(reading.case, mask=True), base_revision=1)
    assert (again.status_code, again.json()["number"]) == (201, 2)


def test_stale_first_save_creates_no_annotation(reading: Reading) -> None:
    before = db_state(reading.storage)
    response = post_revision(reading.annotator, reading.case, chest_values(reading.case, mask=True), base_revision=1)
    assert assert_refused(response, 409, code="stale_revision")["current_revision"] == 0
    assert db_state(reading.storage) == before


def test_manager_who_is_not_a_reader_of_the_case_cannot_save_a_reading(reading: Reading) -> None:
    before = db_state(reading.storage)
    response = post_revision(reading.manager, reading.case, chest_values(reading.case, mask=True), base_revision=0)
    assert_refused(response, 403, contains=(f"Case {reading.case.pk} is not assigned to you as first_reader",))
    assert db_state(reading.storage) == before


def test_reader_cannot_save_in_a_reading_role_they_are_not_assigned(reading: Reading) -> None:
    before = db_state(reading.storage)
    response = post_revision(
        reading.annotator, reading.case, chest_values(reading.case), base_revision=0, role="second_reader"
    )
    assert_refused(response, 403, contains=("not assigned to you as second_reader",), code="permission_denied")
    response = post_revision(reading.reviewer, reading.other_case, chest_values(reading.other_case), base_revision=0)
    assert_refused(response, 403, contains=("not assigned to you as first_reader",), code="permission_denied")
    assert db_state(reading.storage) == before


def test_reader_cannot_save_on_a_case_of_someone_else(reading: Reading) -> None:
    """A reader does not see cases they are not assigned to: 404, the same as for a case that does not exist."""
    before = db_state(reading.storage)
    response = post_revision(reading.annotator, reading.other_case, chest_values(reading.other_case), base_revision=0)
    assert_refused(response, 404, contains=(f"No case {reading.other_case.pk} that you can see",))
    missing = post_revision(reading.annotator, 987654, chest_values(reading.case), base_revision=0)
    assert missing.status_code == 404
    assert db_state(reading.storage) == before


def test_saving_after_submission_is_409_and_stores_nothing(reading: Reading) -> None:
    submitted = post_revision(reading.annotator, reading.case, chest_values(reading.case), base_revision=0, submit=True)
    assert submitted.status_code == 201
    before = db_state(reading.storage)
    for base, submit in ((1, False), (1, True), (0, False)):
        response = post_revision(
            reading.annotator, reading.case, chest_values(reading.case, mask=True), base_revision=base, submit=submit
        )
        assert_refused(response, 409, contains=("already submitted",), code="invalid_state")
    assert db_state(reading.storage) == before


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"role": "first_reader", "values": {"items": []}}, "base_revision", "required"),
        (
            {"role": "first_reader", "base_revision": -1, "values": {"items": []}},
            "base_revision",
            "greater than or equal to 0",
        ),
        ({"role": "first_reader", "base_revision": "one", "values": {"items": []}}, "base_revision", "valid integer"),
        ({"role": "author", "base_revision": 0, "values": {"items": []}}, "role", "not a valid choice"),
        ({"role": "first_reader", "base_revision": 0}, "values", "required"),
        (
            {"role": "first_reader", "base_revision": 0, "values": {"items": []}, "submit": "maybe"},
            "submit",
            "valid boolean",
        ),
    ],
    ids=["no-base", "negative-base", "text-base", "unknown-role", "no-values", "bad-submit"],
)
def test_malformed_revision_request_is_400_naming_the_field(
    reading: Reading, body: dict[str, Any], field: str, reason: str
) -> None:
    before = db_state(reading.storage)
    response = reading.annotator.post(f"{API}/cases/{reading.case.pk}/revisions/", body, content_type=JSON)
    assert response.status_code == 400, response.content
    assert reason in " ".join(response.json()[field]), response.json()
    assert db_state(reading.storage) == before


def test_request_body_that_is_not_json_is_400(reading: Reading) -> None:
    before = db_state(reading.storage)
    response = reading.annotator.post(
        f"{API}/cases/{reading.case.pk}/revisions/", b'{"role": "first_reader", ', content_type=JSON
    )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert db_state(reading.storage) == before


def test_diff_and_revision_of_revisions_that_do_not_exist(reading: Reading) -> None:
    saved = post_revision(reading.annotator, reading.case, chest_values(reading.case), base_revision=0)
    annotation = saved.json()["annotation"]
    response = reading.annotator.get(f"{API}/annotations/{annotation}/diff/?from=1&to=4")
    assert_refused(response, 404, contains=(f"Annotation {annotation} has no revision 4",))
    response = reading.annotator.get(f"{API}/annotations/{annotation}/diff/?from=1&to=latest")
    assert_refused(response, 400, contains=("Give ?from=N&to=M",))
    response = reading.annotator.get(f"{API}/annotations/{annotation}/diff/?from=1")
    assert_refused(response, 400, contains=("Give ?from=N&to=M",))
    assert reading.annotator.get(f"{API}/annotations/{annotation}/revisions/2/").status_code == 404


# --- Worklists and claiming ---------------------------------------------------------------------------------


def test_claiming_as_second_reader_without_the_reviewer_role_is_403(reading: Reading) -> None:
    before = db_state(reading.storage)
    url = f"{API}/projects/nodules/worklist/next/"
    response = reading.annotator.post(url, {"role": "second_reader"}, content_type=JSON)
    assert_refused(response, 403, contains=("second_reader needs the reviewer role",), code="permission_denied")
    response = reading.reviewer.post(url, {"role": "panel_member"}, content_type=JSON)
    assert_refused(response, 403, contains=("panel_member needs the expert role",))
    response = reading.annotator.get(f"{API}/projects/nodules/worklist/?role=second_reader")
    assert_refused(response, 403, contains=("needs the reviewer role",))
    assert db_state(reading.storage) == before


@pytest.mark.parametrize(("body", "field"), [({}, "role"), ({"role": "reader"}, "role")])
def test_claiming_without_a_valid_reading_role_is_400(reading: Reading, body: dict[str, Any], field: str) -> None:
    before = db_state(reading.storage)
    response = reading.annotator.post(f"{API}/projects/nodules/worklist/next/", body, content_type=JSON)
    assert response.status_code == 400
    assert field in response.json()
    response = reading.annotator.get(f"{API}/projects/nodules/worklist/?role={body.get('role', '')}")
    assert response.status_code == 400
    assert field in response.json()
    assert db_state(reading.storage) == before


def test_manual_assignment_refusals(reading: Reading, users: dict[str, User]) -> None:
    before = db_state(reading.storage)
    url = f"{API}/cases/{reading.case.pk}/assignments/"
    # The annotator already reads the case: not again, in any role.
    response = reading.manager.post(url, {"username": "annotator", "role": "first_reader"}, content_type=JSON)
    assert_refused(response, 409, contains=("annotator already reads case",))
    # A reader without the needed project role.
    response = reading.manager.post(url, {"username": "expert", "role": "second_reader"}, content_type=JSON)
    assert_refused(response, 403, contains=("needs the reviewer role",))
    response = reading.manager.post(url, {"username": "nobody", "role": "second_reader"}, content_type=JSON)
    assert_refused(response, 404, contains=("No user 'nobody'",))
    assert db_state(reading.storage) == before


# --- Cases ---------------------------------------------------------------------------------------------------


def test_cases_for_studies_not_in_the_project_are_400_and_create_nothing(reading: Reading) -> None:
    foreign = ingest_study(104)  # in the index, but not linked to the project
    before = db_state(reading.storage)
    url = f"{API}/projects/nodules/cases/"
    uids = [reading.case.study.study_instance_uid, foreign.study_uid, "1.2.3.999"]
    response = reading.manager.post(url, {"study_instance_uids": uids}, content_type=JSON)
    assert_refused(response, 400, contains=("Not studies of project 'nodules'", foreign.study_uid, "1.2.3.999"))
    assert response.json()["code"] == "unknown_study"
    assert db_state(reading.storage) == before


def test_case_for_a_series_not_in_the_study_is_400(reading: Reading, ingested_studies: list[SyntheticStudy]) -> None:
    before = db_state(reading.storage)
    body = {
        "study_instance_uids": [ingested_studies[0].study_uid],
        "series_instance_uids": [ingested_studies[1].series_uid],
    }
    response = reading.manager.post(f"{API}/projects/nodules/cases/", body, content_type=JSON)
    assert_refused(response, 400, contains=("Series not in those studies", ingested_studies[1].series_uid))
    assert db_state(reading.storage) == before


@pytest.mark.parametrize("by_series", [False, True], ids=["study", "series"])
def test_case_for_a_series_that_failed_quality_checks_is_400_naming_the_series(
    reading: Reading, reading_project: Project, by_series: bool
) -> None:
    broken = ingest_study(105, drop_slice=4)
    assert Series.objects.get(series_instance_uid=broken.series_uid).quality == Series.Quality.FAILED
    place_studies(reading_project, [broken.study_uid])
    before = db_state(reading.storage)
    body: dict[str, Any] = {"study_instance_uids": [broken.study_uid]}
    if by_series:
        body["series_instance_uids"] = [broken.series_uid]

    response = reading.manager.post(f"{API}/projects/nodules/cases/", body, content_type=JSON)

    assert_refused(
        response,
        400,
        contains=("failed data-quality checks", broken.series_uid, "Missing slices"),
        code="series_flagged",
    )
    assert db_state(reading.storage) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "study_instance_uids"),
        ({"study_instance_uids": []}, "study_instance_uids"),
        ({"study_instance_uids": ["1.2"], "priority": "high"}, "priority"),
    ],
    ids=["missing", "empty", "bad-priority"],
)
def test_malformed_case_request_is_400_naming_the_field(reading: Reading, body: dict[str, Any], field: str) -> None:
    before = db_state(reading.storage)
    response = reading.manager.post(f"{API}/projects/nodules/cases/", body, content_type=JSON)
    assert response.status_code == 400
    assert field in response.json()
    assert db_state(reading.storage) == before


# --- Schemas -------------------------------------------------------------------------------------------------


def _schema_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    definition = copy.deepcopy(load_example_schema("chest_ct_nodules"))
    change(definition)
    return definition


@pytest.mark.parametrize(
    ("definition", "field", "reason"),
    [
        (_schema_with(lambda d: d["labels"][1].update(kind="boxx")), "labels[1].kind", "unknown kind 'boxx'"),
        (
            _schema_with(lambda d: d["labels"][3].update(applies_to=["nodule_circle"])),
            "labels[3].applies_to[0]",
            "unknown label 'nodule_circle'",
        ),
        (
            _schema_with(lambda d: d["labels"][5].update(min=10, max=1)),
            "labels[5].max",
            "max 1 < min 10",
        ),
        (_schema_with(lambda d: d["labels"].append(dict(d["labels"][0]))), "labels[9].key", "duplicate label key"),
        (_schema_with(lambda d: d.pop("labels")), "labels", "required"),
        ("not a schema", "schema", "expected a schema (an object), got a string"),
    ],
    ids=["unknown-kind", "applies-to-unknown", "min-above-max", "duplicate-key", "no-labels", "not-an-object"],
)
def test_invalid_schema_definition_is_400_naming_the_field(
    reading: Reading, definition: Any, field: str, reason: str
) -> None:
    versions = list(LabelSchema.objects.values_list("project_id", "version"))
    before = db_state(reading.storage)
    response = reading.manager.post(f"{API}/projects/nodules/schemas/", {"definition": definition}, content_type=JSON)
    assert_refused(response, 400, field=field, contains=(reason,), code="invalid_labels")
    assert list(LabelSchema.objects.values_list("project_id", "version")) == versions
    assert db_state(reading.storage) == before


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "non_field_errors", "Give exactly one of 'definition' or 'example'"),
        (
            {"example": "chest_ct_nodules", "definition": {"name": "x", "labels": []}},
            "non_field_errors",
            "Give exactly one of 'definition' or 'example'",
        ),
        ({"example": "knee_mri"}, "example", '"knee_mri" is not a valid choice.'),
    ],
    ids=["neither", "both", "unknown-example"],
)
def test_schema_request_needs_exactly_one_known_source(
    reading: Reading, body: dict[str, Any], field: str, reason: str
) -> None:
    versions = LabelSchema.objects.count()
    before = db_state(reading.storage)
    response = reading.manager.post(f"{API}/projects/nodules/schemas/", body, content_type=JSON)
    assert response.status_code == 400
    assert reason in response.json()[field], response.json()
    assert LabelSchema.objects.count() == versions
    assert db_state(reading.storage) == before


def test_saving_before_the_project_has_a_schema_is_400(
    bare_project: Project, users: dict[str, User], client_for: Callable[[User | None], Client], isolated_storage: Path
) -> None:
    study = bare_project.image_store.studies.first()
    assert study is not None
    [case] = Case.objects.bulk_create([Case(project=bare_project, study=study)])
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=None)
    before = db_state(isolated_storage)
    response = post_revision(client_for(users["annotator"]), case, {"items": []}, base_revision=0)
    assert_refused(response, 400, contains=("has no label schema yet",), code="no_schema")
    assert db_state(isolated_storage) == before


def test_reading_saved_under_an_old_schema_version_keeps_it(reading: Reading, users: dict[str, User]) -> None:
    """Not an error: a new schema version applies to new revisions only; old ones keep their version."""
    saved = annotation_save(
        case=reading.case,
        reader=users["annotator"],
        role="first_reader",
        base_revision=0,
        values=chest_values(reading.case),
    )
    assert saved.schema.version == 1
    response = reading.manager.post(
        f"{API}/projects/nodules/schemas/", {"example": "chest_ct_nodules"}, content_type=JSON
    )
    assert response.status_code == 201
    again = post_revision(reading.annotator, reading.case, chest_values(reading.case), base_revision=1)
    assert again.json()["schema_version"] == 2
    first = reading.annotator.get(f"{API}/annotations/{saved.annotation_id}/revisions/1/").json()
    assert first["schema_version"] == 1


def test_a_refused_reading_is_explained_in_the_readers_language_by_display_names(reading: Reading) -> None:
    """Issue 13, item 4: the reader sees what is wrong by the schema's names and the lesion's ordinal, in their
    language; the path of the field stays in ``field`` for programs."""
    reading.annotator.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    values = chest_values(reading.case)
    values["items"][index_of(values, "diameter")]["value"] = 150
    before = db_state(reading.storage)

    response = post_revision(reading.annotator, reading.case, values, base_revision=0, submit=True)

    body = assert_refused(response, 400, field=f"items[{index_of(values, 'diameter')}].value", code="invalid_labels")
    assert body["detail"] == "结节包围框 1的长径：150 mm 超过“长径”的最大值 100 mm"
    assert_chinese([body["detail"]])
    assert db_state(reading.storage) == before
    # A draft keeps the answer as typed (issue 15, no lost work); its problem is flagged in the reader's language.
    response = post_revision(reading.annotator, reading.case, values, base_revision=0)
    assert response.status_code == 201, response.content
    [problem] = response.json()["problems"]
    assert problem["field"] == f"items[{index_of(values, 'diameter')}].value"
    assert_chinese([problem["reason"]])

    values = chest_values(reading.case)
    values["items"] = [item for item in values["items"] if item["label"] not in ("diameter", "nodule_present")]
    response = post_revision(reading.annotator, reading.case, values, base_revision=0, submit=True)
    body = assert_refused(response, 400, code="invalid_labels")
    assert body["detail"] == "是否存在结节：缺少必填标签；长径：必填，结节包围框 1 尚未填写"
    assert_chinese([body["detail"]])
