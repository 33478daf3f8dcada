"""Gold-standard cases (issue 14 item 1), through the API: a manager marks a case gold with a reference label and
sets the gold rate; readers are served it like any case (no response tells it apart), their readings are scored
against the reference, the case never reaches the panel nor an export unless asked, managers see each reader's
running score with its confidence interval, and a reader sees their result only where the policy allows it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from annotation.models import Assignment, Case, CaseStatus, ReadingRole
from datasets.selectors import select_cases
from review.gold import mean_interval, wilson_interval
from review.models import CaseEvent, GoldCase, GoldScore
from tests.review.conftest import API, JSON, annotation_by_role, claim, ok, save, set_policy

pytestmark = pytest.mark.django_db(transaction=True)
SLUG = "nodules"


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively (list items merged): what a response reveals by its form."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            found = shape(item)
            if isinstance(found, dict):
                merged.update(found)
        return [merged] if merged else []
    return type(value).__name__ if value is not None else "null"


def mark_gold(manager: Client, case_id: int, **body: Any) -> dict[str, Any]:
    return dict(ok(manager.post(f"{API}/cases/{case_id}/gold/", data=body, content_type=JSON), 201))


def worklist_row(client: Client, case_id: int, role: str = "first_reader") -> dict[str, Any]:
    rows = ok(client.get(f"{API}/projects/{SLUG}/worklist/", {"role": role}))["assignments"]
    [row] = [r for r in rows if r["case"]["id"] == case_id]
    return dict(row)


def next_raw(client: Client, role: str) -> dict[str, Any]:
    return dict(ok(client.post(f"{API}/projects/{SLUG}/worklist/next/", data={"role": role}, content_type=JSON)))


def test_gold_case_is_served_like_any_case_scored_and_kept_from_the_panel(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    set_policy(manager, SLUG, gold_rate=0.5, gold_feedback=False)
    gold_case = reading_cases[2]
    reference = chest_values(gold_case, malignancy=3)
    marked = mark_gold(manager, gold_case.pk, values=reference)
    assert marked["source"] == "posted" and marked["case"] == gold_case.pk
    # A reader may neither mark nor look up gold cases.
    assert annotator.post(
        f"{API}/cases/{gold_case.pk}/gold/", data={"values": reference}, content_type=JSON
    ).status_code in (403, 404)

    # At a rate of 1/2 the first case served is a normal one, the second the gold one.
    first = next_raw(annotator, "first_reader")
    normal_id = int(first["case"]["id"])
    assert normal_id != gold_case.pk
    normal_case_body = ok(annotator.get(f"{API}/cases/{normal_id}/"))
    normal_saved = save(annotator, normal_id, chest_values(Case.objects.get(pk=normal_id)), role="first_reader")
    normal_row = worklist_row(annotator, normal_id)

    second = next_raw(annotator, "first_reader")
    assert int(second["case"]["id"]) == gold_case.pk
    gold_case_body = ok(annotator.get(f"{API}/cases/{gold_case.pk}/"))
    gold_saved = save(annotator, gold_case.pk, chest_values(gold_case, malignancy=5), role="first_reader")
    gold_row = worklist_row(annotator, gold_case.pk)

    # Nothing a reader sees tells the gold case apart: the same keys, the same shown status, no gold flag, no
    # reference, no extra annotation.
    for normal, gold in (
        (first, second),
        (normal_case_body, gold_case_body),
        (normal_saved, gold_saved),
        (normal_row, gold_row),
    ):
        assert shape(normal) == shape(gold)
        assert "gold" not in json.dumps(gold).lower() and "reference" not in json.dumps(gold).lower()
    assert normal_row["case"]["status"] == gold_row["case"]["status"] == "submitted"
    assert [a["role"] for a in ok(annotator.get(f"{API}/cases/{gold_case.pk}/annotations/"))] == ["first_reader"]
    assert shape(ok(annotator.get(f"{API}/cases/{normal_id}/annotations/"))) == shape(
        ok(annotator.get(f"{API}/cases/{gold_case.pk}/annotations/"))
    )
    # Feedback is off: the same empty answer for the gold and the normal case.
    for case_id in (normal_id, gold_case.pk):
        refused = annotator.get(f"{API}/cases/{case_id}/reading-feedback/")
        assert refused.status_code == 204 and refused.content == b""

    # Scored on submit against the reference: malignancy 5 against 3 disagrees, the rest agrees.
    score = GoldScore.objects.get(gold_case__case=gold_case, reader__username="annotator")
    by_key = {label["key"]: label for label in score.labels}
    assert by_key["malignancy"]["status"] == "disagreed"
    assert by_key["nodule_present"]["status"] == "agreed"
    assert by_key["nodule_present"]["value"] == by_key["nodule_present"]["reference_value"] == "yes"
    assert (score.lesions_tp, score.lesions_fp, score.lesions_fn) == (1, 0, 0)
    assert 0 < score.labels_agreed < score.labels_compared

    # A second reader who misses the nodule: scored too, and the case still does not move, nor go to the panel.
    assert claim(reviewer, SLUG, "second_reader") != gold_case.pk  # the reviewer's first case is a normal one
    reviewer_first = Assignment.objects.get(user__username="reviewer", role=ReadingRole.SECOND_READER).case_id
    save(reviewer, reviewer_first, chest_values(Case.objects.get(pk=reviewer_first)), role="second_reader")
    assert claim(reviewer, SLUG, "second_reader") == gold_case.pk
    save(reviewer, gold_case.pk, chest_values(gold_case, nodule_present="no", box=False), role="second_reader")
    missed = GoldScore.objects.get(gold_case__case=gold_case, reader__username="reviewer")
    assert (missed.lesions_tp, missed.lesions_fn) == (0, 1)
    gold_case.refresh_from_db()
    assert gold_case.status == CaseStatus.AWAITING_FIRST_READ
    assert not CaseEvent.objects.filter(case=gold_case).exists()
    assert not Assignment.objects.filter(case=gold_case, role=ReadingRole.PANEL_MEMBER).exists()
    # The normal case went on through the ordinary workflow.
    assert CaseEvent.objects.filter(case_id=normal_id, to_status=CaseStatus.AWAITING_CROSS_VERIFICATION).exists()

    # Managers see the running scores with their intervals; readers do not.
    assert annotator.get(f"{API}/projects/{SLUG}/gold-scores/").status_code == 403
    rows = {row["reader"]: row for row in ok(manager.get(f"{API}/projects/{SLUG}/gold-scores/"))}
    assert set(rows) == {"annotator", "reviewer"}
    exact = rows["annotator"]["exact_agreement"]
    assert exact["labels_agreed"] == score.labels_agreed and exact["labels_compared"] == score.labels_compared
    assert exact["ci_low"] < exact["value"] < exact["ci_high"]
    assert rows["annotator"]["lesions"]["f1"] == 1.0 and rows["reviewer"]["lesions"]["f1"] == 0.0
    assert [point["case"] for point in rows["annotator"]["trend"]] == [gold_case.pk]
    assert "nodule_present" in rows["annotator"]["kappa"]
    assert ok(manager.get(f"{API}/cases/{gold_case.pk}/gold/"))["readings_scored"] == 2

    # Not exported unless asked for.
    assert gold_case.pk not in [
        row.case_id
        for row in select_cases(
            project=gold_case.project, min_qa_level="single_read", modalities=[], study_date_from="", study_date_to=""
        )
    ]
    [included] = [
        row
        for row in select_cases(
            project=gold_case.project,
            min_qa_level="single_read",
            modalities=[],
            study_date_from="",
            study_date_to="",
            include_gold=True,
        )
        if row.case_id == gold_case.pk
    ]
    assert included.revision_id == GoldCase.objects.get(case=gold_case).reference_id and included.qa_level == "gold"


def test_feedback_only_where_the_policy_allows_it(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator = clients["manager"], clients["annotator"]
    set_policy(manager, SLUG, gold_rate=1.0, gold_feedback=True)
    gold_case = reading_cases[0]
    mark_gold(manager, gold_case.pk, values=chest_values(gold_case))
    assert claim(annotator, SLUG, "first_reader") == gold_case.pk  # rate 1: the gold case first
    # Before submitting, the answer is the one every case gets.
    assert annotator.get(f"{API}/cases/{gold_case.pk}/reading-feedback/").status_code == 204
    save(annotator, gold_case.pk, chest_values(gold_case), role="first_reader")
    feedback = ok(annotator.get(f"{API}/cases/{gold_case.pk}/reading-feedback/"))
    assert feedback["exact_agreement"] == 1.0 and feedback["lesion_f1"] == 1.0
    assert feedback["labels_agreed"] == feedback["labels_compared"] > 0
    # No gold case left: a normal case next, and no feedback on it.
    normal_id = claim(annotator, SLUG, "first_reader")
    assert normal_id != gold_case.pk
    save(annotator, normal_id, chest_values(Case.objects.get(pk=normal_id)), role="first_reader")
    assert annotator.get(f"{API}/cases/{normal_id}/reading-feedback/").status_code == 204
    # Feedback turned off: withheld again.
    set_policy(manager, SLUG, gold_feedback=False)
    assert annotator.get(f"{API}/cases/{gold_case.pk}/reading-feedback/").status_code == 204


def test_an_agreed_case_becomes_gold_with_its_consensus_label(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    case = reading_cases[0]
    case_id = claim(annotator, SLUG, "first_reader")
    assert claim(reviewer, SLUG, "second_reader") == case_id
    case = Case.objects.get(pk=case_id)
    save(annotator, case_id, chest_values(case), role="first_reader")
    save(reviewer, case_id, chest_values(case), role="second_reader")
    case.refresh_from_db()
    assert case.status == CaseStatus.AGREED
    consensus = annotation_by_role(manager, case_id, "consensus")
    first = annotation_by_role(manager, case_id, "first_reader")
    from annotation.models import AnnotationRevision

    consensus_revision = AnnotationRevision.objects.get(
        annotation_id=consensus["id"], number=consensus["current_revision"]
    )
    reading_revision = AnnotationRevision.objects.get(annotation_id=first["id"], number=first["current_revision"])
    # A reader's reading is no reference; nor is values and a revision at once.
    bad = manager.post(
        f"{API}/cases/{case_id}/gold/", data={"reference_revision": reading_revision.pk}, content_type=JSON
    )
    assert bad.status_code == 400 and "adjudicated or agreed" in bad.json()["detail"]
    both = manager.post(
        f"{API}/cases/{case_id}/gold/",
        data={"reference_revision": consensus_revision.pk, "values": chest_values(case)},
        content_type=JSON,
    )
    assert both.status_code == 400
    assert not GoldCase.objects.exists()
    marked = mark_gold(manager, case_id, reference_revision=consensus_revision.pk)
    assert marked["source"] == "consensus" and marked["reference_revision"] == consensus_revision.pk
    case.refresh_from_db()
    assert case.status == CaseStatus.AWAITING_FIRST_READ  # read again, by readers measured against the label
    reopened = CaseEvent.objects.filter(case=case).order_by("-pk").first()
    assert reopened is not None and reopened.to_status == CaseStatus.AWAITING_FIRST_READ and "gold" in reopened.reason
    # Marking twice is a conflict; a posted reference is refused once a case has readings.
    again = manager.post(
        f"{API}/cases/{case_id}/gold/", data={"reference_revision": consensus_revision.pk}, content_type=JSON
    )
    assert again.status_code == 409
    # Its consensus is no longer exported as a training label, unless gold cases are asked for.
    selected = select_cases(
        project=case.project, min_qa_level="agreed", modalities=[], study_date_from="", study_date_to=""
    )
    assert case_id not in [row.case_id for row in selected]


def test_invalid_reference_stores_nothing(reading_cases: list[Case], clients: dict[str, Client]) -> None:
    manager = clients["manager"]
    case = reading_cases[1]
    refused = manager.post(
        f"{API}/cases/{case.pk}/gold/",
        data={"values": {"items": [{"label": "nodule_present", "value": "perhaps"}]}},
        content_type=JSON,
    )
    assert refused.status_code == 400, refused.content
    assert not GoldCase.objects.exists()
    assert set_policy(manager, SLUG, gold_rate=0.2)["gold_rate"] == 0.2
    assert (
        manager.patch(f"{API}/projects/{SLUG}/review-policy/", data={"gold_rate": 1.5}, content_type=JSON).status_code
        == 400
    )


def test_confidence_intervals() -> None:
    low, high = wilson_interval(8, 10)
    assert low is not None and high is not None and 0.49 < low < 0.5 and 0.94 < high < 0.95  # Wilson 95 %: 0.490-0.943
    assert wilson_interval(0, 0) == (None, None)
    assert wilson_interval(10, 10)[1] == 1.0
    figure = mean_interval([0.8, 0.9, 0.7, 0.85])
    assert figure["ci_low"] < figure["value"] == 0.8125 < figure["ci_high"]


def test_second_readers_who_verify_are_never_served_a_gold_case(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """In verification mode (and under adaptive routing) a second reader only ever gets a case with a first reading:
    a gold case, which stays without one for them, would stand out, and would show them other readers' readings."""
    manager, annotator, reviewer = clients["manager"], clients["annotator"], clients["reviewer"]
    set_policy(manager, SLUG, mode="verification", gold_rate=1.0)
    gold_case = reading_cases[0]
    mark_gold(manager, gold_case.pk, values=chest_values(gold_case))
    assert claim(annotator, SLUG, "first_reader") == gold_case.pk
    save(annotator, gold_case.pk, chest_values(gold_case), role="first_reader")
    refused = reviewer.post(f"{API}/projects/{SLUG}/worklist/next/", data={"role": "second_reader"}, content_type=JSON)
    assert refused.status_code == 204
    assert not Assignment.objects.filter(case=gold_case, user__username="reviewer").exists()


def test_where_a_single_reading_can_be_final_a_submitted_gold_case_shows_closed_like_the_others(
    reading_cases: list[Case], clients: dict[str, Client], chest_values: Any
) -> None:
    """Every case read once is closed to its reader on submission; the gold case (still open to other gold
    readers) must not stay "submitted" and stand out in the worklist, the case list or the case."""
    manager, annotator = clients["manager"], clients["annotator"]
    set_policy(manager, SLUG, second_read_share=0.0, gold_rate=0.5)
    gold_case = reading_cases[2]
    mark_gold(manager, gold_case.pk, values=chest_values(gold_case))
    normal_id = claim(annotator, SLUG, "first_reader")
    save(annotator, normal_id, chest_values(Case.objects.get(pk=normal_id)), role="first_reader")
    assert claim(annotator, SLUG, "first_reader") == gold_case.pk
    save(annotator, gold_case.pk, chest_values(gold_case), role="first_reader")
    assert Case.objects.get(pk=normal_id).status == CaseStatus.SINGLE_READ
    assert Case.objects.get(pk=gold_case.pk).status == CaseStatus.AWAITING_FIRST_READ
    for case_id in (normal_id, gold_case.pk):
        assert worklist_row(annotator, case_id)["case"]["status"] == "closed"
        assert ok(annotator.get(f"{API}/cases/{case_id}/"))["status"] == "closed"
    listed = ok(annotator.get(f"{API}/projects/{SLUG}/cases/"))
    rows = listed["results"] if isinstance(listed, dict) else listed
    shown = {row["id"]: row["status"] for row in rows}
    assert shown[normal_id] == shown[gold_case.pk] == "closed"
    # The manager sees the workflow status: the gold case is still open for reading.
    assert ok(manager.get(f"{API}/cases/{gold_case.pk}/"))["status"] == CaseStatus.AWAITING_FIRST_READ
