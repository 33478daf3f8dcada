"""Agreement with three readers: every pair of readings is compared, not each reading against the first only.

The readers of a case: the annotator (reader 1) and two second readers (readers 2 and 3). Reader 3 disagrees
with reader 1 but not with reader 2: their boxes shift by 3 pixels per reader (IoU 0.54 between neighbours,
0.25 between readers 1 and 3) and their suspicion grades step by one (1, 2, 3; one grade apart is allowed). A
comparison against reader 1 only never measured readers 2~3; now each label says how each pair came out, a
label agrees only when every compared pair does, and the lesion matching holds the pairs of every two readers.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import load_example_schema
from annotation.models import CaseStatus, Project, ReadingRole, Role
from review.evaluation import FOUND_BY_ONE_READER, Reading, SliceIndex, Thresholds, evaluate
from tests.annotation.conftest import chest_values
from tests.factories import MembershipFactory, UserFactory
from tests.review.conftest import API, case_of, case_status, claim, ok, save, set_policy

SOP = "1.2.826.0.1.3680043.8.498.1.1"
INDEX = SliceIndex(z_of_sop={SOP: 0}, spacing_of_series={})
BOXES = [{"x": 20 + 3 * k, "y": 22, "width": 10, "height": 8} for k in range(3)]


def reading(name: str, lesions: list[tuple[str, dict[str, Any], int]]) -> Reading:
    """A reading of the chest CT schema: "yes", and per lesion (id, box, suspicion grade) a box, a solid type,
    a diameter and the grade."""
    items: list[dict[str, Any]] = [{"label": "nodule_present", "value": "yes" if lesions else "no"}]
    for rid, box, grade in lesions:
        items.append({"label": "nodule_box", "id": rid, "sop_instance_uid": SOP, "geometry": box})
        items.append({"label": "nodule_type", "region": rid, "value": "solid"})
        items.append({"label": "diameter", "region": rid, "value": 9.0})
        items.append({"label": "malignancy", "region": rid, "value": grade})
    return Reading(name=name, items=items)


def labels_of(readings: list[Reading]) -> dict[str, dict[str, Any]]:
    schema = load_example_schema("chest_ct_nodules")
    result = evaluate(schema, readings, Thresholds(box_iou=0.5, ordinal_distance=1), INDEX)
    return {label.key: label.as_dict() for label in result.labels}


def test_reader_three_disagrees_with_reader_one_but_not_two_and_every_pair_is_reported():
    readers = [reading(f"reader{k + 1}", [("n1", BOXES[k], k + 1)]) for k in range(3)]
    labels = labels_of(readers)

    box = labels["nodule_box"]
    assert box["reader_pairs"] == {
        "reader1~reader2": "agreed",
        "reader1~reader3": "disagreed",
        "reader2~reader3": "agreed",
    }
    assert (box["status"], box["agreed"]) == ("disagreed", False)  # agreed only when every pair agrees
    assert box["reasons"] == ["Nodule bounding box: 1 of 1 lesions do not match at IoU 0.5 between reader1 and reader3"]
    assert set(box["metrics"]) >= {"reader1~reader2", "reader1~reader3", "reader2~reader3"}
    assert box["metrics"]["reader2~reader3"]["matched"] == 1
    pairs = {tuple(pair["readers"]): pair for pair in box["matching"]["pairs"]}
    assert set(pairs) == {("reader1", "reader2"), ("reader2", "reader3")}  # 1~3 do not match at IoU 0.5
    assert pairs[("reader2", "reader3")]["ids"] == ["n1", "n1"]
    assert pairs[("reader2", "reader3")]["score"] == pytest.approx(56 / 104, abs=1e-6)
    # Every reader's lesion matched some other reader's: none is drawn as found by one reader only.
    assert box["matching"]["unmatched"] == {"reader1": [], "reader2": [], "reader3": []}

    # The three boxes are one lesion (through reader 2), so its grade is compared for every pair.
    grade = labels["malignancy"]
    assert grade["reader_pairs"] == {
        "reader1~reader2": "agreed",
        "reader1~reader3": "disagreed",
        "reader2~reader3": "agreed",
    }
    assert grade["status"] == "disagreed"
    assert grade["reasons"] == [
        "Suspicion of malignancy of Nodule bounding box 1: reader1 gave grade 1, reader3 grade 3 (distance 2 > 1)"
    ]
    assert labels["nodule_type"]["reader_pairs"] == dict.fromkeys(grade["reader_pairs"], "agreed")
    assert labels["nodule_type"]["status"] == "agreed"
    assert labels["nodule_present"]["reader_pairs"] == dict.fromkeys(grade["reader_pairs"], "agreed")


def test_a_lesion_two_of_three_readers_found_is_one_lesion_not_found_by_the_third():
    """Readers 2 and 3 found a second nodule that reader 1 missed: one lesion found by two readers (matched
    between them, and not listed as found by one reader only), whose attributes disagree for the pairs with
    reader 1 and agree between readers 2 and 3."""
    second = {"x": 40, "y": 40, "width": 8, "height": 8}
    readers = [
        reading("reader1", [("a", BOXES[0], 2)]),
        reading("reader2", [("b", BOXES[0], 2), ("c", second, 3)]),
        reading("reader3", [("d", BOXES[0], 2), ("e", second, 3)]),
    ]
    labels = labels_of(readers)
    box = labels["nodule_box"]
    assert box["reader_pairs"] == {
        "reader1~reader2": "disagreed",
        "reader1~reader3": "disagreed",
        "reader2~reader3": "agreed",
    }
    matched = [(pair["readers"], pair["ids"]) for pair in box["matching"]["pairs"]]
    assert (["reader2", "reader3"], ["c", "e"]) in matched  # the lesion reader 1 missed, matched 2~3
    assert box["matching"]["unmatched"] == {"reader1": [], "reader2": [], "reader3": []}

    grade = labels["malignancy"]
    assert grade["status"] == "disagreed"
    assert grade["metrics"]["lesions_found_by_some_readers"] == 1
    assert grade["reasons"] == ["Suspicion of malignancy of Nodule bounding box 2: lesion not found by reader1"]
    assert not any(FOUND_BY_ONE_READER in reason for reason in grade["reasons"])
    assert grade["reader_pairs"] == {
        "reader1~reader2": "disagreed",
        "reader1~reader3": "disagreed",
        "reader2~reader3": "agreed",
    }


def test_three_readers_who_all_agree_give_one_consensus_lesion():
    readers = [reading(f"reader{k + 1}", [("n1", BOXES[0], 2)]) for k in range(3)]
    schema = load_example_schema("chest_ct_nodules")
    result = evaluate(schema, readers, Thresholds(box_iou=0.5, ordinal_distance=1), INDEX)
    assert result.agreed, result.reasons
    boxes = [item for item in result.consensus_items if item["label"] == "nodule_box"]
    assert [item["id"] for item in boxes] == ["nodule_box-1"]
    assert {item["label"]: item["value"] for item in result.consensus_items if "region" in item}["malignancy"] == 2


def test_a_three_reader_case_through_the_api_reports_every_pair_and_goes_to_the_panel(
    reading_project: Project, clients: dict[str, Client], client_for: Any
):
    """Readers per case 3: the annotator and two second readers submit through the API; the agreement the
    panel and the managers read names every pair of readers."""
    reading_project.readers_per_case = 3
    reading_project.save(update_fields=["readers_per_case"])
    reviewer2 = cast(User, UserFactory(username="reviewer2"))
    MembershipFactory(project=reading_project, user=reviewer2, role=Role.REVIEWER)
    slug, manager = reading_project.slug, clients["manager"]
    set_policy(manager, slug, mode="blind_double", box_iou=0.5, ordinal_distance=1, panel_size=3, quorum=2)
    third = client_for(reviewer2)
    case_id = claim(clients["annotator"], slug, ReadingRole.FIRST_READER)
    assert claim(clients["reviewer"], slug, ReadingRole.SECOND_READER) == case_id
    assert claim(third, slug, ReadingRole.SECOND_READER) == case_id
    case = case_of(case_id)
    for k, (client, role) in enumerate(
        ((clients["annotator"], "first_reader"), (clients["reviewer"], "second_reader"), (third, "second_reader"))
    ):
        save(client, case_id, chest_values(case, geometry=BOXES[k], malignancy=k + 1), role=role)

    body = ok(manager.get(f"{API}/cases/{case_id}/agreement/"))
    labels = {label["key"]: label for label in body["labels"]}
    expected = {"annotator~reviewer": "agreed", "annotator~reviewer2": "disagreed", "reviewer~reviewer2": "agreed"}
    assert labels["nodule_box"]["reader_pairs"] == expected
    assert labels["malignancy"]["reader_pairs"] == expected
    assert (labels["malignancy"]["status"], labels["nodule_box"]["status"]) == ("disagreed", "disagreed")
    [matching] = body["lesions"]
    assert sorted(tuple(pair["readers"]) for pair in matching["pairs"]) == [
        ("annotator", "reviewer"),
        ("reviewer", "reviewer2"),
    ]
    assert case_status(manager, case_id) == CaseStatus.IN_PANEL
