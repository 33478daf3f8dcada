"""Expert corrections in the full reader (issue 13, item 2), end to end through the HTTP API with real services.

Two readers disagree; expert1 starts a corrected label from the first reading, copies the second reader's extra
lesion into it, fixes the diameter of the first reader's lesion and submits it as their vote; expert2 endorses
it; the panel decides for it, and the final label is exactly that label, with which part came from whom. Also:
who may not correct or endorse, and what is refused.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Annotation, AnnotationRevision, CaseStatus, Project
from review.models import CaseEvent, Correction, PanelVote
from tests.annotation.conftest import case_sops, chest_values
from tests.review.conftest import (
    API,
    JSON,
    case_of,
    case_status,
    claim,
    events,
    ok,
    revision_items,
    save,
    series_mask,
    set_policy,
)
from tests.review.test_workflow_e2e import seat_holders

S = CaseStatus


def readers_disagree(slug: str, clients: dict[str, Client]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The annotator and the reviewer read one case: their masks differ (Dice < 0.8), they give the shared
    nodule n1 diameters 6 and 9, and the reviewer marks a second nodule n2 on slice 5 that the annotator did
    not. Three experts sit on the panel (expert, expert1, expert2; expert3 is not seated), quorum two, no chair."""
    set_policy(clients["manager"], slug, panel_size=3, quorum=2, chair_username=None, mask_dice=0.8)
    case_id = claim(clients["annotator"], slug, "first_reader")
    assert claim(clients["reviewer"], slug, "second_reader") == case_id
    case = case_of(case_id)
    first = chest_values(case, mask=series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32)), diameter=6.0)
    second = chest_values(case, mask=series_mask(case, slice(2, 5), slice(26, 36), slice(22, 32)), diameter=9.0)
    second["items"] += [
        {
            "label": "nodule_box",
            "id": "n2",
            "sop_instance_uid": case_sops(case)[5],
            "geometry": {"x": 40, "y": 40, "width": 8, "height": 8},
        },
        {"label": "nodule_type", "region": "n2", "value": "ground_glass"},
        {"label": "diameter", "region": "n2", "value": 4.0},
    ]
    saved_first = save(clients["annotator"], case_id, first, role="first_reader")
    saved_second = save(clients["reviewer"], case_id, second, role="second_reader")
    assert case_status(clients["manager"], case_id) == S.IN_PANEL
    return case_id, saved_first, saved_second


def corrections(client: Client, case_id: int) -> list[dict[str, Any]]:
    return list(ok(client.get(f"{API}/cases/{case_id}/corrections/")))


def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """(label, region or id) -> value or geometry, for the region items and their attributes."""
    found: dict[tuple[str, str], Any] = {}
    for item in items:
        if "id" in item:
            found[(item["label"], item["id"])] = item.get("geometry")
        elif "region" in item:
            found[(item["label"], item["region"])] = item["value"]
    return found


def test_an_expert_correction_that_takes_one_lesion_from_each_reading_and_fixes_an_attribute(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager, expert1, expert2 = clients["manager"], clients["expert1"], clients["expert2"]
    case_id, first, second = readers_disagree(reading_project.slug, clients)
    assert seat_holders(manager, case_id) == {"expert", "expert1", "expert2"}

    # expert1 starts from the first reading: revision 1 of their own reading is a copy of it, mask included.
    started = ok(
        expert1.post(f"{API}/cases/{case_id}/corrections/", {"seed_annotation": first["annotation"]}, JSON), 201
    )
    assert (started["expert"], started["status"], started["revision"]) == ("expert1", "draft", 1)
    assert (started["seed"]["role"], started["seed"]["reader"]) == ("first_reader", "annotator")
    mine = started["annotation"]
    assert revision_items(expert1, mine) == revision_items(expert1, first["annotation"])
    # Nobody else sees a draft; a reader sees no corrections at all.
    assert corrections(expert2, case_id) == []
    assert clients["annotator"].get(f"{API}/cases/{case_id}/corrections/").status_code == 403

    # One click: the reviewer's n2 (not in the first reading) is copied in, with its attributes.
    copied = ok(
        expert1.post(
            f"{API}/cases/{case_id}/corrections/mine/copy/",
            {"from_annotation": second["annotation"], "lesion": "n2", "base_revision": 1},
            JSON,
        ),
        201,
    )
    assert copied["revision"] == 2
    assert copied["origins"]["n2"]["id"] == "n2"
    items = revision_items(expert1, mine)
    assert by_key(items)[("nodule_type", "n2")] == "ground_glass"
    # Copying it again is refused; a stale base is refused; nothing is stored either time.
    again = expert1.post(
        f"{API}/cases/{case_id}/corrections/mine/copy/",
        {"from_annotation": second["annotation"], "lesion": "n2", "base_revision": 2},
        JSON,
    )
    assert again.status_code == 409 and "already in your label" in again.json()["detail"]
    stale = expert1.post(
        f"{API}/cases/{case_id}/corrections/mine/copy/",
        {"from_annotation": second["annotation"], "lesion": "n1", "base_revision": 1},
        JSON,
    )
    assert stale.status_code == 409
    assert Annotation.objects.get(pk=mine).revision_count == 2

    # The diameter of n1 is fixed (7 mm: the readers said 6 and 9); a draft first, then submitted as the vote.
    fixed = [
        {**item, "value": 7.0} if (item["label"], item.get("region")) == ("diameter", "n1") else item for item in items
    ]
    draft = ok(
        expert1.post(
            f"{API}/cases/{case_id}/corrections/mine/revisions/",
            {"base_revision": 2, "values": {"items": fixed}},
            JSON,
        ),
        201,
    )
    assert (draft["status"], draft["revision"]) == ("draft", 3)
    no_reason = expert1.post(
        f"{API}/cases/{case_id}/corrections/mine/revisions/",
        {"base_revision": 3, "values": {"items": fixed}, "submit": True},
        JSON,
    )
    assert no_reason.status_code == 400 and "rationale" in no_reason.json()["detail"]
    submitted = ok(
        expert1.post(
            f"{API}/cases/{case_id}/corrections/mine/revisions/",
            {"base_revision": 3, "values": {"items": fixed}, "submit": True, "rationale": "n2 is real; n1 is 7 mm"},
            JSON,
        ),
        201,
    )
    assert (submitted["status"], submitted["revision"]) == ("submitted", 4)
    assert case_status(manager, case_id) == S.IN_PANEL  # one vote, quorum two

    # expert2 sees it and endorses it: their vote is for expert1's corrected label, and it decides (2 of 2 cast).
    [shown] = corrections(expert2, case_id)
    assert shown["id"] == submitted["id"]
    vote = ok(
        expert2.post(
            f"{API}/cases/{case_id}/corrections/{shown['id']}/endorse/", {"rationale": "agree with expert1"}, JSON
        ),
        201,
    )
    correction = Correction.objects.get(pk=submitted["id"])
    assert vote["voted_for"] == correction.submitted_revision_id
    assert vote["reading"]["description"] == "expert correction by expert1"
    assert case_status(manager, case_id) == S.ADJUDICATED

    # The final label is the corrected label: n1 with the fixed diameter and n2 from the reviewer, nothing else.
    adjudicated = Annotation.objects.get(case_id=case_id, role="adjudicated")
    final = AnnotationRevision.objects.get(pk=int(adjudicated.current_revision_id or 0))
    assert final.items == AnnotationRevision.objects.get(pk=int(correction.submitted_revision_id or 0)).items
    values = by_key(final.items)
    assert sorted(key[1] for key in values if key[0] == "nodule_box") == ["n1", "n2"]
    assert values[("diameter", "n1")] == 7.0
    assert values[("nodule_type", "n1")] == "solid"
    assert (values[("nodule_type", "n2")], values[("diameter", "n2")]) == ("ground_glass", 4.0)
    assert values[("nodule_box", "n2")] == {"x": 40, "y": 40, "width": 8, "height": 8}
    # The mask is the first reader's (the same stored file).
    assert {m.sha256 for m in final.masks.all()} == {
        m.sha256 for m in AnnotationRevision.objects.get(annotation_id=first["annotation"]).masks.all()
    }

    # Who gave what: in the decision event (the case history) and on the corrected label.
    decision = [e for e in events(manager, case_id) if e["to_status"] == S.ADJUDICATED][-1]
    assert (decision["metrics"]["rule"], decision["metrics"]["count"]) == ("majority", "2")
    assert decision["metrics"]["correction"] == correction.pk
    provenance = decision["metrics"]["provenance"]
    assert provenance == CaseEvent.objects.get(pk=decision["id"]).metrics["provenance"] == correction.provenance
    assert provenance["seed"]["reader"] == "annotator"
    lesions = {lesion["id"]: lesion for lesion in provenance["lesions"]}
    assert set(lesions) == {"n1", "n2"}
    assert (lesions["n1"]["from"]["role"], lesions["n1"]["from"]["reader"]) == ("first_reader", "annotator")
    assert (lesions["n1"]["modified"], lesions["n1"]["by"]) == (True, "expert1")
    assert (lesions["n2"]["from"]["role"], lesions["n2"]["from"]["reader"]) == ("second_reader", "reviewer")
    assert (lesions["n2"]["modified"], lesions["n2"]["by"]) == (False, "reviewer")
    per_item = {(i["label"], i.get("id") or i.get("region")): i for i in provenance["items"]}
    assert (per_item[("diameter", "n1")]["modified"], per_item[("diameter", "n1")]["by"]) == (True, "expert1")
    assert per_item[("diameter", "n1")]["from"]["reader"] == "annotator"
    assert (per_item[("nodule_box", "n1")]["modified"], per_item[("nodule_box", "n1")]["by"]) == (False, "annotator")
    assert (per_item[("nodule_type", "n1")]["modified"], per_item[("nodule_type", "n1")]["by"]) == (False, "annotator")
    assert per_item[("diameter", "n2")]["by"] == "reviewer"
    assert (per_item[("nodule_mask", None)]["by"], per_item[("nodule_mask", None)]["modified"]) == ("annotator", False)
    assert (per_item[("nodule_present", None)]["by"], per_item[("nodule_present", None)]["from"]["role"]) == (
        "annotator",
        "first_reader",
    )
    listed = {c["id"]: c for c in corrections(manager, case_id)}
    assert listed[correction.pk]["provenance"] == provenance
    assert listed[correction.pk]["endorsed_by"] == ["expert2"]


def test_who_may_not_correct_or_endorse_and_what_is_refused(
    reading_project: Project, clients: dict[str, Client], experts: dict[str, User]
):
    manager, expert1, expert2 = clients["manager"], clients["expert1"], clients["expert2"]
    case_id, first, second = readers_disagree(reading_project.slug, clients)
    # An expert of the project who is not seated on this case's panel (it has three seats, all taken).
    assert "expert3" not in seat_holders(manager, case_id)
    outsiders = {
        "reviewer": clients["reviewer"],  # reads the case, is no expert
        "outsider": clients["outsider"],  # no member of the project
        "expert3": clients["expert3"],
    }
    for name, client in outsiders.items():
        response = client.post(f"{API}/cases/{case_id}/corrections/", {"seed_annotation": first["annotation"]}, JSON)
        assert response.status_code in (403, 404), (name, response.content)
    assert not Correction.objects.filter(case_id=case_id).exists()
    assert not Annotation.objects.filter(case_id=case_id, role="panel_member").exists()

    # A reading that is not the case's, and a lesion that is in no reading of the case: 400, nothing stored.
    response = expert1.post(f"{API}/cases/{case_id}/corrections/", {"seed_annotation": 999_999}, JSON)
    assert response.status_code == 400 and "no reading 999999" in response.json()["detail"]
    ok(expert1.post(f"{API}/cases/{case_id}/corrections/", {"seed_annotation": first["annotation"]}, JSON), 201)
    again = expert1.post(f"{API}/cases/{case_id}/corrections/", {"seed_annotation": second["annotation"]}, JSON)
    assert again.status_code == 409
    response = expert1.post(
        f"{API}/cases/{case_id}/corrections/mine/copy/",
        {"from_annotation": second["annotation"], "lesion": "n9", "base_revision": 1},
        JSON,
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The second reading has no lesion 'n9'"
    # An invalid corrected label is refused with the schema's message, like any reading.
    mine = Correction.objects.get(case_id=case_id, expert__username="expert1").annotation_id
    bad = [*revision_items(expert1, mine), {"label": "diameter", "region": "n1", "value": "big"}]
    response = expert1.post(
        f"{API}/cases/{case_id}/corrections/mine/revisions/", {"base_revision": 1, "values": {"items": bad}}, JSON
    )
    detail = response.json()["detail"]
    assert response.status_code == 400 and "Long-axis diameter" in detail and "items[" not in detail
    assert Annotation.objects.get(pk=mine).revision_count == 1
    # Submitted as a bare reading (no rationale, no vote) it is refused, and the save is rolled back.
    response = expert1.post(
        f"{API}/cases/{case_id}/revisions/",
        {
            "role": "panel_member",
            "base_revision": 1,
            "values": {"items": revision_items(expert1, mine)},
            "submit": True,
        },
        JSON,
    )
    assert response.status_code == 400 and "as your vote, with a rationale" in response.json()["detail"]
    assert Annotation.objects.get(pk=mine).revision_count == 1
    assert Annotation.objects.get(pk=mine).status == "draft"

    ok(
        expert1.post(
            f"{API}/cases/{case_id}/corrections/mine/revisions/",
            {
                "base_revision": 1,
                "values": {"items": revision_items(expert1, mine)},
                "submit": True,
                "rationale": "the first reading, as it is",
            },
            JSON,
        ),
        201,
    )
    correction = Correction.objects.get(case_id=case_id, expert__username="expert1")
    endorse = f"{API}/cases/{case_id}/corrections/{correction.pk}/endorse/"
    # Endorsing one's own correction does not count twice.
    response = expert1.post(endorse, {"rationale": "me again"}, JSON)
    assert response.status_code == 409 and "count it twice" in response.json()["detail"]
    # Nor can those off the panel endorse it.
    for name, client in outsiders.items():
        response = client.post(endorse, {"rationale": "me too"}, JSON)
        assert response.status_code in (403, 404), (name, response.content)
    assert list(PanelVote.objects.filter(case_id=case_id).values_list("expert__username", flat=True)) == ["expert1"]
    assert case_status(manager, case_id) == S.IN_PANEL
    # Once an expert has voted for a reading, they can no longer start a correction.
    ok(
        expert2.post(
            f"{API}/cases/{case_id}/votes/", {"voted_for_annotation": second["annotation"], "rationale": "n2"}, JSON
        ),
        201,
    )
    assert case_status(manager, case_id) == S.IN_PANEL  # 1-1 with "expert" still to vote: waits
    response = expert2.post(f"{API}/cases/{case_id}/corrections/", {"seed_annotation": first["annotation"]}, JSON)
    assert response.status_code == 409
