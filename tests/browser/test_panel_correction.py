"""An expert's corrected label in the full reader editor, in Chromium against a live server (issue 13, item 2).

A case is read twice through the API (the masks disagree, the reviewer marks a second nodule n2) and goes to a
panel of three. The first seated expert chooses "A corrected label" on the panel, starts from the first reading
and opens the reader editor: the first reading's nodule is there, marked as the annotator's; one click copies the
reviewer's n2 in; the expert draws a box of their own, describes it, fixes the diameter of the annotator's nodule
and submits with a rationale. The database then holds that corrected label as the expert's vote: its items, the
drawn box's geometry, and which part came from whom. The two other experts endorse it, and the panel says, in the
browser, whose reading each vote is for, that the corrected label won, and where each lesion of it came from.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import expect

from annotation.models import Annotation, AnnotationRevision, Assignment, Case, Project
from annotation.services import load_mask
from review.models import CaseEvent, Correction, PanelVote
from tests.annotation.conftest import case_series, case_sops
from tests.browser import panel_helpers
from tests.browser.test_panel_dashboard_jobs import disputed_case
from tests.review.conftest import API, JSON, ok

# Fixtures shared with the review tests (pytest looks fixtures up by name in this module).

Browsers = panel_helpers.Browsers
save_screenshot = panel_helpers.save_screenshot


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=8)
    page.mouse.up()


def test_an_expert_draws_a_corrected_label_in_the_reader_copies_a_lesion_and_the_panel_says_who_won(
    live_server: Any,
    browsers: Browsers,
    reading_project: Project,
    clients: dict[str, Client],
    users: dict[str, User],
    experts: dict[str, User],
):
    slug = reading_project.slug
    case_id = disputed_case(slug, clients)
    seated = sorted(
        Assignment.objects.filter(case_id=case_id, role="panel_member").values_list("user__username", flat=True)
    )
    assert len(seated) == 3
    name = seated[0]
    by_name = {**users, **experts}
    first = Annotation.objects.get(case_id=case_id, role="first_reader")
    second = Annotation.objects.get(case_id=case_id, role="second_reader")

    # --- On the panel: "A corrected label", from the first reading, in the reader --------------------------------
    expert = browsers.page_for(by_name[name])
    page = expert.goto(f"/cases/{case_id}/panel?project={slug}")
    page.get_by_role("radio", name="A corrected label").check()
    page.get_by_label("Start from").select_option(label="First reading (annotator)")
    page.get_by_role("button", name="Correct in the reader").click()
    page.wait_for_url(re.compile(rf"/cases/{case_id}/read\?role=panel_member"))
    page.wait_for_function("() => window.__medlabel && window.__medlabel.firstImageMs > 0", timeout=60_000)
    expect(page.get_by_role("heading", name=f"Corrected label of case {case_id}")).to_be_visible()
    correction = Correction.objects.get(case_id=case_id, expert__username=name)
    assert correction.seed_id == first.current_revision_id
    lesions = page.get_by_test_id("lesions").locator("li")
    expect(lesions).to_have_count(1)
    expect(page.get_by_test_id("origin-n1")).to_have_text("from the first reading (annotator)")

    # --- One click copies the reviewer's n2 in, with its attributes ---------------------------------------------
    sources = page.get_by_test_id("correction-sources")
    expect(sources).to_contain_text("Second reading (reviewer)")
    page.get_by_role("button", name="Copy lesion n2 of the second reading (reviewer)").click()
    expect(lesions).to_have_count(2)
    expect(page.get_by_test_id("origin-n2")).to_have_text("from the second reading (reviewer)")
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved")
    assert Annotation.objects.get(pk=correction.annotation_id).revision_count == 2

    # --- The expert draws a box of their own and describes it --------------------------------------------------
    page.get_by_role("button", name="Box (B)").click()
    overlay = page.get_by_test_id("overlay").bounding_box()
    assert overlay is not None
    cx, cy = overlay["x"] + overlay["width"] / 2, overlay["y"] + overlay["height"] / 2
    drag(page, (cx - 30, cy - 20), (cx + 30, cy + 20))
    expect(lesions).to_have_count(3)
    drawn_item = lesions.nth(2)  # drawn last, and selected: its attributes are open
    expect(drawn_item.get_by_test_id(re.compile(r"^origin-"))).to_have_text(f"drawn by {name}")
    drawn_item.get_by_label("Nodule type").select_option("part_solid")
    drawn_item.get_by_label("Long-axis diameter").fill("11")
    # ... and fixes the diameter of the annotator's nodule (the readers said 6 and 9).
    annotators = lesions.filter(has=page.get_by_test_id("origin-n1"))
    annotators.get_by_role("button", name=re.compile(r"^Select #")).click()
    expect(annotators.get_by_label("Long-axis diameter")).to_have_value("6")
    annotators.get_by_label("Long-axis diameter").fill("7")
    page.get_by_test_id("save-state").and_(page.locator('[data-state="saved"]')).wait_for(timeout=20_000)
    save_screenshot(page.screenshot(full_page=True), "panel-correction-editor")

    # --- Submitted as the expert's vote, with a rationale -------------------------------------------------------
    page.get_by_role("button", name="Submit as my vote").click()
    expect(page.get_by_role("alert")).to_contain_text("A vote needs a rationale.")
    page.get_by_label("Rationale").fill("n2 is real, and a part-solid nodule both readers missed")
    page.get_by_role("button", name="Submit as my vote").click()
    expect(page.get_by_text("Your corrected label is your vote.")).to_be_visible(timeout=20_000)
    expert.assert_no_console_errors()

    # --- What the database holds: the items, the drawn box's geometry, and whose each part is ------------------
    correction.refresh_from_db()
    assert correction.submitted_revision_id is not None
    label = AnnotationRevision.objects.get(pk=correction.submitted_revision_id)
    vote = PanelVote.objects.get(case_id=case_id, expert__username=name)
    assert (vote.corrected_id, vote.voted_for_id) == (label.pk, None)
    assert vote.rationale == "n2 is real, and a part-solid nodule both readers missed"
    boxes = {item["id"]: item for item in label.items if item["label"] == "nodule_box"}
    attributes = {(item["label"], item["region"]): item["value"] for item in label.items if "region" in item}
    [drawn] = [region for region in boxes if region not in ("n1", "n2")]
    assert set(boxes) == {"n1", "n2", drawn}
    assert boxes["n2"]["geometry"] == {"x": 40, "y": 40, "width": 8, "height": 8}
    assert attributes[("diameter", "n1")] == 7.0
    assert attributes[("diameter", "n2")] == 4.0
    assert (attributes[("nodule_type", drawn)], attributes[("diameter", drawn)]) == ("part_solid", 11.0)
    # The box was drawn around the viewport's centre, on a slice of the case.
    series = case_series(Case.objects.get(pk=case_id))
    assert series.rows and series.columns
    geometry = boxes[drawn]["geometry"]
    assert boxes[drawn]["sop_instance_uid"] in case_sops(Case.objects.get(pk=case_id))
    assert abs(geometry["x"] + geometry["width"] / 2 - series.columns / 2) < 4, geometry
    assert abs(geometry["y"] + geometry["height"] / 2 - series.rows / 2) < 4, geometry
    assert 2 < geometry["width"] < series.columns and 2 < geometry["height"] < series.rows
    assert abs(geometry["width"] / geometry["height"] - 60 / 40) < 0.2, geometry  # the 60 x 40 pixel drag
    # The mask is the first reader's, untouched: the same voxels (the browser re-sends it, run-length encoded,
    # so the stored file may be named differently from the reader's gzip one).
    [mine] = label.masks.all()
    [theirs] = first.current_revision.masks.all()  # type: ignore[union-attr]
    assert np.array_equal(load_mask(mine), load_mask(theirs))
    provenance = {lesion["id"]: lesion for lesion in correction.provenance["lesions"]}
    assert (provenance["n1"]["from"]["reader"], provenance["n1"]["modified"], provenance["n1"]["by"]) == (
        "annotator",
        True,
        name,
    )
    assert provenance["n1"]["from"]["annotation"] == first.pk
    assert (provenance["n2"]["from"]["reader"], provenance["n2"]["modified"], provenance["n2"]["by"]) == (
        "reviewer",
        False,
        "reviewer",
    )
    assert provenance["n2"]["from"]["annotation"] == second.pk
    assert (provenance[drawn]["from"], provenance[drawn]["by"]) == (None, name)
    items = {(i["label"], i.get("id") or i.get("region")): i for i in correction.provenance["items"]}
    assert (items[("diameter", "n1")]["by"], items[("nodule_type", "n1")]["by"]) == (name, "annotator")
    assert items[("nodule_mask", None)]["by"] == "annotator"

    # --- The other two endorse it; the panel says whose reading each vote is for, and who won ------------------
    for other in seated[1:]:
        ok(
            clients[other].post(
                f"{API}/cases/{case_id}/corrections/{correction.pk}/endorse/", {"rationale": "agreed"}, JSON
            ),
            201,
        )
    decision = CaseEvent.objects.filter(case_id=case_id, to_status="adjudicated").latest("created_at")
    assert (decision.metrics["winner_revision"], decision.metrics["count"]) == (label.pk, "3")
    assert decision.metrics["provenance"] == correction.provenance
    page = expert.goto(f"/cases/{case_id}/panel?project={slug}")
    expect(page.get_by_test_id("decision")).to_have_text(
        f"The panel decided for the expert correction by {name}: 3, majority."
    )
    for voter in seated:
        expect(page.get_by_test_id(f"vote-reading-{voter}")).to_have_text(f"for the expert correction by {name}")
    # ... and which lesion of the final label came from whom.
    final_lesions = page.get_by_test_id("final-provenance").locator("li")
    expect(final_lesions).to_have_count(3)
    assert sorted(final_lesions.all_inner_texts()) == sorted(
        [
            "n1: from the first reading (annotator), changed",
            "n2: from the second reading (reviewer)",
            f"{drawn}: drawn by {name}",
        ]
    )
    page.wait_for_selector('[data-testid="panel-viewer-first_reader"][data-first-image="true"]', timeout=30_000)
    save_screenshot(page.screenshot(full_page=True), "panel-correction-decided")
    expert.assert_no_console_errors()


def test_a_panel_that_must_correct_offers_no_vote_for_a_reading_as_drawn(
    live_server: Any,
    browsers: Browsers,
    reading_project: Project,
    clients: dict[str, Client],
    users: dict[str, User],
    experts: dict[str, User],
):
    """Under ReviewPolicy.adjudicator_corrects the server refuses a vote for a reading or the AI proposal as drawn
    (issue 14): the panel shows why, offers only a corrected label (and a colleague's correction to endorse), and
    the label the expert sends from a reading is stored as their corrected vote, made from that reading."""
    from review.services import policy_for

    slug = reading_project.slug
    case_id = disputed_case(slug, clients)
    policy = policy_for(reading_project)
    policy.adjudicator_corrects = True
    policy.save(update_fields=["adjudicator_corrects"])
    name = sorted(
        Assignment.objects.filter(case_id=case_id, role="panel_member").values_list("user__username", flat=True)
    )[0]
    first = Annotation.objects.get(case_id=case_id, role="first_reader")

    expert = browsers.page_for({**users, **experts}[name])
    page = expert.goto(f"/cases/{case_id}/panel?project={slug}")
    expect(page.get_by_test_id("correction-required")).to_contain_text("cannot be chosen as drawn")
    votes = page.get_by_test_id("vote").get_by_role("radio")
    expect(votes).to_have_count(1)  # no colleague has corrected yet: the corrected label is the only choice
    expect(page.get_by_role("radio", name="A corrected label")).to_be_checked()
    expect(page.get_by_test_id("vote").get_by_role("radio", name=re.compile("First reading"))).to_have_count(0)
    page.get_by_label("Start from").select_option(label="First reading (annotator)")
    page.get_by_label("Rationale").fill("the annotator's outline, checked slice by slice")
    save_screenshot(page.screenshot(full_page=True), "panel-must-correct")
    page.get_by_role("button", name="Cast vote").click()
    expect(page.get_by_test_id("my-vote")).to_be_visible(timeout=20_000)
    expert.assert_no_console_errors()

    vote = PanelVote.objects.get(case_id=case_id, expert__username=name)
    assert vote.voted_for_id is None and vote.corrected_id is not None
    assert vote.rationale == "the annotator's outline, checked slice by slice"
    assert Correction.objects.get(case_id=case_id, expert__username=name).seed_id == first.current_revision_id
