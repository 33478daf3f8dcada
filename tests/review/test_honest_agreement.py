"""Agreement that never claims what it did not measure (issue 13, item 3), through the API.

Three cases of the chest CT schema, each read blind by the annotator and the reviewer:

* "different nodules": the annotator boxed a solid 12 mm nodule in the left upper lobe (malignancy 3), the
  reviewer a calcified 8 mm nodule in the right lower lobe (malignancy 1), far apart: no lesion matches, so
  every attribute of each lesion is disagreed ("lesion found by one reader only") and the case is disputed;
* "same nodule": overlapping boxes with equal attributes: matched, every attribute agreed;
* "no nodule": neither reader found a lesion: they agree on its absence; the lesion attributes had nothing
  to be compared on and are "not compared", which the dashboard counts apart, never as agreed.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import CaseStatus, Project
from annotation.services import cases_create, schema_create_version
from review.agreement import box_iou
from review.evaluation import NOTHING_COMPARED, Reading, SliceIndex, Thresholds, evaluate
from tests.annotation.conftest import chest_values
from tests.review.conftest import API, case_of, case_status, claim, events, ok, save, set_policy

ATTRIBUTES = ("nodule_type", "lobe", "diameter", "malignancy")
NAMES = {
    "nodule_type": "Nodule type",
    "lobe": "Lobe",
    "diameter": "Long-axis diameter",
    "malignancy": "Suspicion of malignancy",
}
BOX_A = {"x": 20, "y": 22, "width": 10, "height": 8}
BOX_A2 = {"x": 21, "y": 22, "width": 10, "height": 9}  # IoU 72 / 98 with BOX_A
FAR_AWAY = {"x": 44, "y": 44, "width": 8, "height": 8}  # the images are 64 x 64


def corners(geometry: dict[str, Any]) -> list[float]:
    return [geometry["x"], geometry["y"], geometry["x"] + geometry["width"], geometry["y"] + geometry["height"]]


def read_case(clients: dict[str, Client], slug: str, first: dict[str, Any], second: dict[str, Any]) -> int:
    """Both readers claim the next case and submit the readings that ``first`` and ``second`` describe
    (keyword arguments of chest_values)."""
    annotator, reviewer = clients["annotator"], clients["reviewer"]
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    case = case_of(case_id)
    save(annotator, case_id, chest_values(case, **first), role="first_reader")
    save(reviewer, case_id, chest_values(case, **second), role="second_reader")
    return case_id


@pytest.fixture
def three_cases(reading_project: Project, clients: dict[str, Client]) -> dict[str, Any]:
    slug = reading_project.slug
    set_policy(clients["manager"], slug, mode="blind_double", box_iou=0.5, panel_size=3, quorum=2)
    different = read_case(
        clients,
        slug,
        {"geometry": BOX_A, "nodule_type": "solid", "diameter": 12.0, "lobe": "left_upper", "malignancy": 3},
        {"geometry": FAR_AWAY, "nodule_type": "calcified", "diameter": 8.0, "lobe": "right_lower", "malignancy": 1},
    )
    same_attributes = {"nodule_type": "solid", "diameter": 12.0, "lobe": "left_upper", "malignancy": 3}
    same = read_case(clients, slug, {"geometry": BOX_A, **same_attributes}, {"geometry": BOX_A2, **same_attributes})
    nothing = read_case(clients, slug, {"nodule_present": "no", "box": False}, {"nodule_present": "no", "box": False})
    return {"slug": slug, "different": different, "same": same, "nothing": nothing}


def agreement_of(manager: Client, case_id: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    body = ok(manager.get(f"{API}/cases/{case_id}/agreement/"))
    return body, {label["key"]: label for label in body["labels"]}


def test_attributes_of_lesions_found_by_one_reader_only_are_not_agreed(
    three_cases: dict[str, Any], clients: dict[str, Client]
):
    manager = clients["manager"]
    case_id = three_cases["different"]
    body, labels = agreement_of(manager, case_id)

    assert (body["status"], body["agreed"]) == ("disagreed", False)
    for key in ATTRIBUTES:
        assert (labels[key]["status"], labels[key]["agreed"]) == ("disagreed", False), labels[key]
        # One reason per lesion, each naming the label and the lesion by the schema's display names.
        assert labels[key]["reasons"] == [
            f"{NAMES[key]} of Nodule bounding box 1: lesion found by one reader only (annotator)",
            f"{NAMES[key]} of Nodule bounding box 2: lesion found by one reader only (reviewer)",
        ]
        assert labels[key]["metrics"]["lesions_found_by_some_readers"] == 2
        assert set(labels[key]["reasons"]) <= set(body["reasons"])
    assert labels["nodule_box"]["status"] == "disagreed"
    assert labels["nodule_present"]["status"] == "agreed"  # both said "yes": that much they share

    # The matching, for the browser to draw: no pair, each reader's lesion unmatched.
    assert body["lesions"] == [
        {
            "key": "nodule_box",
            "method": "hungarian",
            "reference": "annotator",
            "score": "iou",
            "pairs": [],
            "unmatched": {"annotator": ["n1"], "reviewer": ["n1"]},
            # The numbers the reasons give the lesions: the annotator's first, the reviewer's (unmatched) second.
            "numbers": {"annotator": {"n1": 1}, "reviewer": {"n1": 2}},
        }
    ]

    # Disputed, and so to the panel, with the reasons in the event.
    assert case_status(manager, case_id) == CaseStatus.IN_PANEL
    [disputed] = [e for e in events(manager, case_id) if e["to_status"] == CaseStatus.DISPUTED]
    assert "lesion found by one reader only" in disputed["reason"]
    assert disputed["metrics"]["label_status"]["nodule_type"] == "disagreed"
    assert disputed["metrics"]["labels"]["nodule_type"] is False


def test_matched_lesions_with_equal_attributes_agree(three_cases: dict[str, Any], clients: dict[str, Client]):
    manager = clients["manager"]
    case_id = three_cases["same"]
    body, labels = agreement_of(manager, case_id)
    assert (body["status"], body["agreed"]) == ("agreed", True), body["reasons"]
    for key in ATTRIBUTES:
        assert (labels[key]["status"], labels[key]["agreed"]) == ("agreed", True)
        assert labels[key]["metrics"]["lesions_compared"] == 1
        assert labels[key]["reasons"] == []
    [matching] = body["lesions"]
    [pair] = matching["pairs"]
    assert pair["readers"] == ["annotator", "reviewer"] and pair["ids"] == ["n1", "n1"]
    assert pair["score"] == pytest.approx(box_iou(corners(BOX_A), corners(BOX_A2)), abs=1e-6)
    assert matching["unmatched"] == {"annotator": [], "reviewer": []}
    assert case_status(manager, case_id) == CaseStatus.AGREED
    # Free text and the unanswered "other findings" were not compared: not agreed, yet no dispute either.
    assert (labels["comment"]["status"], labels["comment"]["agreed"]) == ("not_compared", False)
    assert labels["findings"]["status"] == "not_compared"


def test_two_readers_who_found_no_lesion_agree_on_its_absence(three_cases: dict[str, Any], clients: dict[str, Client]):
    manager = clients["manager"]
    case_id = three_cases["nothing"]
    body, labels = agreement_of(manager, case_id)
    assert (body["status"], body["agreed"]) == ("agreed", True), body["reasons"]
    assert case_status(manager, case_id) == CaseStatus.AGREED
    assert labels["nodule_box"]["status"] == "agreed"  # agreement on "no lesion"
    assert labels["nodule_box"]["metrics"]["lesions_per_reader"] == {"annotator": 0, "reviewer": 0}
    assert body["lesions"][0]["pairs"] == [] and body["lesions"][0]["unmatched"] == {"annotator": [], "reviewer": []}
    for key in ATTRIBUTES:  # no lesion to describe: nothing compared, nothing claimed
        assert (labels[key]["status"], labels[key]["agreed"]) == ("not_compared", False)
        assert labels[key]["reasons"] == []


def test_the_dashboard_counts_unmatched_lesion_attributes_as_disagreement_and_not_compared_apart(
    three_cases: dict[str, Any], clients: dict[str, Client]
):
    body = ok(clients["manager"].get(f"{API}/projects/{three_cases['slug']}/dashboard/"))
    assert (body["evaluated"], body["disputed"]) == (3, 1)
    rows = {row["key"]: row for row in body["labels"]}
    for key in ATTRIBUTES:
        row = rows[key]
        # "different nodules" disagreed, "same nodule" agreed, "no nodule" not compared: 1 of 2, not 100 %.
        assert (row["n_cases"], row["n_compared"], row["n_agreed"], row["n_not_compared"]) == (3, 2, 1, 1), row
        assert row["percent_agreement"] == 0.5
    box = rows["nodule_box"]
    assert (box["n_compared"], box["n_agreed"], box["n_not_compared"]) == (3, 2, 0)
    assert box["percent_agreement"] == pytest.approx(2 / 3, abs=1e-6)
    comment = rows["comment"]
    assert (comment["n_compared"], comment["n_agreed"], comment["n_not_compared"]) == (0, 0, 3)
    assert comment["percent_agreement"] is None and comment["note"] == "not compared"


def test_the_dashboard_shows_the_first_disagreement_as_zero_not_a_hundred_percent(
    reading_project: Project, clients: dict[str, Client]
):
    slug = reading_project.slug
    read_case(
        clients,
        slug,
        {"geometry": BOX_A, "nodule_type": "solid", "diameter": 12.0, "lobe": "left_upper", "malignancy": 3},
        {"geometry": FAR_AWAY, "nodule_type": "calcified", "diameter": 8.0, "lobe": "right_lower", "malignancy": 1},
    )
    rows = {row["key"]: row for row in ok(clients["manager"].get(f"{API}/projects/{slug}/dashboard/"))["labels"]}
    for key in ("nodule_box", *ATTRIBUTES):
        assert (rows[key]["n_compared"], rows[key]["n_agreed"], rows[key]["percent_agreement"]) == (1, 0, 0.0)


def test_a_label_nobody_could_compare_is_not_compared_and_a_case_with_nothing_compared_is_not_agreed():
    schema = {
        "labels": [
            {"key": "grade", "name": {"en": "Grade"}, "level": "study", "kind": "ordinal", "scale": []},
            {"key": "note", "name": {"en": "Note"}, "level": "study", "kind": "text"},
        ]
    }
    empty = [Reading(name="annotator", items=[]), Reading(name="reviewer", items=[])]
    result = evaluate(schema, empty, Thresholds(), SliceIndex(z_of_sop={}, spacing_of_series={}))
    labels = {label.key: label.as_dict() for label in result.labels}
    assert {key: (entry["status"], entry["agreed"]) for key, entry in labels.items()} == {
        "grade": ("not_compared", False),
        "note": ("not_compared", False),
    }
    # Agreement was not shown: the case is not agreed (services send it to the panel), and says why.
    assert (result.status, result.agreed) == ("not_compared", False)
    assert result.reasons == [NOTHING_COMPARED]
    assert result.consensus_items == []


def test_a_case_where_nothing_could_be_compared_goes_to_the_panel_not_to_agreed(
    bare_project: Project, users: dict[str, User], clients: dict[str, Client], ingested_studies: list[Any]
):
    """A schema of optional labels, both readers submit empty readings: agreement was not shown, so the case
    is not agreed silently; the panel sees it with the reason."""
    optional = {
        "name": "optional only",
        "labels": [
            {"key": "grade", "level": "study", "kind": "ordinal", "scale": [{"value": v} for v in range(1, 4)]},
            {"key": "note", "level": "study", "kind": "text"},
        ],
    }
    schema_create_version(project=bare_project, definition=optional, created_by=users["manager"])
    cases_create(project=bare_project, study_uids=[ingested_studies[0].study_uid])
    slug = bare_project.slug
    annotator, reviewer, manager = clients["annotator"], clients["reviewer"], clients["manager"]
    set_policy(manager, slug, mode="blind_double", panel_size=3, quorum=2)
    case_id = claim(annotator, slug, "first_reader")
    assert claim(reviewer, slug, "second_reader") == case_id
    save(annotator, case_id, {"items": []}, role="first_reader")
    save(reviewer, case_id, {"items": []}, role="second_reader")

    body, labels = agreement_of(manager, case_id)
    assert (body["status"], body["agreed"]) == ("not_compared", False)
    assert {key: label["status"] for key, label in labels.items()} == {"grade": "not_compared", "note": "not_compared"}
    assert body["reasons"] == [NOTHING_COMPARED] and body["lesions"] == []
    assert case_status(manager, case_id) == CaseStatus.IN_PANEL
    [disputed] = [e for e in events(manager, case_id) if e["to_status"] == CaseStatus.DISPUTED]
    assert disputed["reason"] == NOTHING_COMPARED
    # Counted on the dashboard as not compared, never as agreed.
    rows = {row["key"]: row for row in ok(manager.get(f"{API}/projects/{slug}/dashboard/"))["labels"]}
    assert (rows["grade"]["n_not_compared"], rows["grade"]["n_agreed"], rows["grade"]["percent_agreement"]) == (
        1,
        0,
        None,
    )
