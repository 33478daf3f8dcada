"""The panel, dashboard and jobs screens in Chromium against a live server.

A case is read twice through the API (the masks disagree, the second reader marks one more lesion), so it
is disputed and goes to a panel of three experts. Each expert opens it from the panel worklist in the
browser, sees both readings and the AI proposal drawn in linked viewports with the disagreement (per-label
metrics, the unmatched lesion and the matched pair, as the server matched them), and votes: two for the first
reading, one with a corrected label; the case is then adjudicated, and the panel says who won, by what count
and rule, and whose reading each vote is for (in English and in Chinese), as the database records them. A
manager opens the dashboard and sees the case counted, and the Jobs screen shows a training job's progress
bar moving (polling), its per-epoch chart, a failed export's error, retry and cancel.
Readers see neither the dashboards nor the jobs. Screenshots go to $TEST_ARTIFACTS_DIR/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import expect

from annotation.models import Annotation, Assignment, Case, Project
from annotation.services import annotation_save_machine
from datasets.services import EXPORT_TASK
from inference import registry
from inference.models import CaseScore, ModelVersion
from jobs import services as job_services
from jobs.models import Job
from review.models import AgreementResult, CaseEvent, PanelVote
from tests.annotation.conftest import case_sops, chest_values
from tests.browser import panel_helpers
from tests.review.conftest import API, case_of, claim, save, series_mask, set_policy

# Fixtures shared with the review tests (pytest looks fixtures up by name in this module).

Browsers = panel_helpers.Browsers
save_screenshot = panel_helpers.save_screenshot


def disputed_case(slug: str, clients: dict[str, Client]) -> int:
    """The annotator and the reviewer read one case: masks with Dice < 0.8, diameters 6 and 9, and the
    reviewer marks a second nodule on slice 5 that the annotator did not."""
    set_policy(clients["manager"], slug, panel_size=3, quorum=3, mask_dice=0.8)
    case_id = claim(clients["annotator"], slug, "first_reader")
    assert claim(clients["reviewer"], slug, "second_reader") == case_id
    case = case_of(case_id)
    mask_a = series_mask(case, slice(2, 5), slice(20, 30), slice(22, 32))
    mask_b = series_mask(case, slice(2, 5), slice(26, 36), slice(22, 32))
    first = chest_values(case, mask=mask_a, diameter=6.0)
    second = chest_values(case, mask=mask_b, diameter=9.0)
    second["items"] += [
        {
            "label": "nodule_box",
            "id": "n2",
            "sop_instance_uid": case_sops(case)[5],
            "geometry": {"x": 40, "y": 40, "width": 8, "height": 8},
        },
        {"label": "nodule_type", "region": "n2", "value": "solid"},
        {"label": "diameter", "region": "n2", "value": 4.0},
    ]
    # The AI proposal the readers started from: a mask between the two, shown to the panel as a third reading.
    annotation_save_machine(
        case=case,
        model_version="unet-test-1",
        values=chest_values(case, mask=series_mask(case, slice(2, 5), slice(23, 33), slice(22, 32)), diameter=7.5),
    )
    save(clients["annotator"], case_id, first, role="first_reader")
    save(clients["reviewer"], case_id, second, role="second_reader")
    assert Case.objects.get(pk=case_id).status == "in_panel"
    return case_id


def trained_models(project: Project, manager: User) -> None:
    """Two segmentation versions that finished training (registry services; no weights needed to show them)
    and the case scores a scoring job writes at its end (rows as inference.services stores them)."""
    for number, (losses, dices) in enumerate(
        (([0.9, 0.6, 0.5], [0.3, 0.5, 0.55]), ([0.7, 0.4, 0.3], [0.5, 0.65, 0.7]))
    ):
        version = registry.model_version_create(
            project=project,
            task_type="segmentation",
            architecture="unet",
            architecture_params={},
            preprocessing={},
            label_map={"mask_label": "nodule_mask"},
            training_params={"epochs": 3},
            parent=None,
            created_by=manager,
        )
        history = [
            {"epoch": epoch, "loss": loss, "val_dice": dice}
            for epoch, (loss, dice) in enumerate(zip(losses, dices, strict=True), start=1)
        ]
        registry.model_version_finish_training(
            version=version,
            weights_file="",
            weights_sha256="",
            weights_bytes=0,
            snapshot={},
            metrics={"val_dice": dices[-1]},
            history=history,
            device="cpu",
        )
        assert version.number == number + 1
    latest = ModelVersion.objects.get(project=project, number=2)
    cases = list(Case.objects.filter(project=project).order_by("pk"))
    for rank, case in enumerate(cases, start=1):
        uncertainty = 0.9 - 0.3 * rank
        CaseScore.objects.create(
            case=case,
            model_version=latest,
            strategy="uncertainty_disagreement",
            score=uncertainty + 0.1,
            uncertainty=uncertainty,
            disagreement=0.1 * rank,
            rank=rank,
        )


def test_panel_votes_in_the_browser_then_the_dashboard_counts_the_case_and_jobs_show_progress(
    live_server: Any,
    browsers: Browsers,
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    clients: dict[str, Client],
) -> None:
    slug = reading_project.slug
    case_id = disputed_case(slug, clients)
    seated = sorted(
        Assignment.objects.filter(case_id=case_id, role="panel_member").values_list("user__username", flat=True)
    )
    assert len(seated) == 3
    by_name = {**users, **experts}
    timings: dict[str, list[float]] = {}
    pages: dict[str, Any] = {}

    # --- Panel: three experts vote in the browser ---------------------------------------------------------
    choices = ["First reading (annotator)", "First reading (annotator)", "corrected"]
    for number, (name, choice) in enumerate(zip(seated, choices, strict=True)):
        chinese = number == 1
        expert = browsers.page_for(by_name[name], language="zh-hans" if chinese else None)
        if number < 2:  # from the panel worklist
            page = expert.goto(f"/projects/{slug}/panel")
            link = page.get_by_role("link", name=(f"审阅病例 {case_id}" if chinese else f"Review case {case_id}"))
        else:  # from the project worklist in the panel role
            page = expert.goto(f"/projects/{slug}?role=panel_member")
            link = page.get_by_role("link", name=f"Open {case_id}")
        started = time.perf_counter()
        link.click()
        page.wait_for_url(re.compile(rf"/cases/{case_id}/panel"))
        for role in ("first_reader", "second_reader", "ai"):
            page.wait_for_selector(f'[data-testid="panel-viewer-{role}"][data-first-image="true"]', timeout=30_000)
        timings.setdefault("panel_three_viewports_drawn_s", []).append(round(time.perf_counter() - started, 3))
        # The disagreement: the mask and the lesion count disagree, the reviewer's extra nodule is unmatched.
        expect(page.get_by_test_id("metric-row-nodule_mask")).to_contain_text("Dice 0.")
        expect(page.get_by_test_id("metric-row-nodule_box")).to_contain_text("不一致" if chinese else "disagreed")
        expect(page.get_by_test_id("metric-row-nodule_box")).to_have_attribute("data-status", "disagreed")
        # The server's lesion matching: the reviewer's n2 unmatched (named by its ordinal, not its id), the two n1
        # boxes paired.
        expect(page.get_by_test_id("unmatched")).to_contain_text("结节包围框 2" if chinese else "Nodule bounding box 2")
        expect(page.get_by_test_id("matched")).to_contain_text("交并比 1.00" if chinese else "IoU 1.00")
        expect(page.get_by_test_id("reasons")).to_contain_text("Dice")
        expect(page.get_by_test_id("mask-difference")).to_be_visible()

        if number == 0:
            page.wait_for_timeout(300)  # the overlays are drawn on the frame after the images
            for role in ("first_reader", "second_reader", "ai"):
                save_screenshot(page.get_by_test_id(f"panel-viewer-{role}").screenshot(), f"panel-viewport-{role}")
            save_screenshot(page.screenshot(full_page=True), "panel-side-by-side")
            # Linked viewports: the next-slice button moves every viewport, and the counter follows.
            before = page.get_by_test_id("panel-slice").inner_text()
            page.get_by_role("button", name="Next slice").click()
            expect(page.get_by_test_id("panel-slice")).not_to_have_text(before)
            # The unmatched lesion: its button jumps to its slice (6 of 8).
            page.get_by_role("button", name="Show lesion Nodule bounding box 2 on slice 6").click()
            expect(page.get_by_test_id("panel-slice")).to_have_text("Slice 6 / 8")
            page.keyboard.press("ArrowUp")
            expect(page.get_by_test_id("panel-slice")).to_have_text("Slice 5 / 8")
            page.keyboard.press("ArrowDown")
            expect(page.get_by_test_id("panel-slice")).to_have_text("Slice 6 / 8")
            page.get_by_label("Window preset").select_option("mediastinum")
            page.get_by_role("button", name="Overlay").click()
            page.wait_for_selector('[data-testid="panel-viewer-overlay"][data-first-image="true"]', timeout=30_000)
            page.get_by_role("checkbox", name="Where the masks differ").check()
            page.wait_for_timeout(300)
            save_screenshot(page.get_by_test_id("panel-viewer-overlay").screenshot(), "panel-overlay-viewport")
            save_screenshot(page.screenshot(full_page=True), "panel-overlay")
            expect(page.get_by_role("radio", name="AI proposal")).to_be_visible()  # the panel may pick it too
            # Other votes stay hidden until one's own is cast.
            expect(page.get_by_test_id("votes")).to_have_count(0)

        cast = "投票" if chinese else "Cast vote"
        if choice == "corrected":
            page.get_by_role("radio", name="A corrected label").check()
            page.get_by_label("Start from").select_option(label="Second reading (reviewer)")
            page.get_by_role("button", name=cast).click()
            expect(page.get_by_role("alert")).to_contain_text("A vote needs a rationale.")
            page.get_by_label("Rationale").fill("one nodule only, the second mask is right")
        else:
            page.get_by_role("radio", name=("初读 (annotator)" if chinese else choice)).check()
            page.get_by_label("理由" if chinese else "Rationale").fill(f"{name}: the tighter mask")
        page.get_by_role("button", name=cast).click()
        expect(page.get_by_test_id("my-vote")).to_be_visible()
        expect(page.get_by_test_id("votes")).to_contain_text(name)
        # Each vote says whose reading it is for.
        if choice == "corrected":
            expect(page.get_by_test_id(f"vote-reading-{name}")).to_have_text(f"for the expert correction by {name}")
        else:
            expect(page.get_by_test_id(f"vote-reading-{name}")).to_have_text(
                "投给初读结果 (annotator)" if chinese else "for the first reading (annotator)"
            )
        pages[name] = (expert, page)
        if chinese:
            expect(page.locator("h1")).to_contain_text(f"病例 {case_id} 的专家组审阅")
            save_screenshot(page.screenshot(full_page=True), "panel-zh-hans-after-vote")
        expert.assert_no_console_errors()

    votes = list(PanelVote.objects.filter(case_id=case_id).select_related("expert"))
    assert sorted(v.expert.username for v in votes) == seated
    assert sorted(v.corrected_id is not None for v in votes) == [False, False, True]
    assert {v.rationale for v in votes} == {
        f"{seated[0]}: the tighter mask",
        f"{seated[1]}: the tighter mask",
        "one nodule only, the second mask is right",
    }
    assert Case.objects.get(pk=case_id).status == "adjudicated"

    # --- The decision in words, as the database records it -------------------------------------------------
    first = Annotation.objects.get(case_id=case_id, role="first_reader")
    correction = Annotation.objects.get(case_id=case_id, role="panel_member", reader__username=seated[2])
    by_expert = {v.expert.username: v for v in votes}
    assert by_expert[seated[0]].voted_for_id == by_expert[seated[1]].voted_for_id == first.current_revision_id
    assert by_expert[seated[2]].corrected_id == correction.current_revision_id
    decision = CaseEvent.objects.filter(case_id=case_id, to_status="adjudicated").latest("created_at")
    assert decision.metrics["winner"]["annotation"] == first.pk
    assert decision.metrics["winner"]["reader"] == "annotator"
    assert (decision.metrics["count"], decision.metrics["rule"]) == ("2-1", "majority")
    # The last expert's page says it (it reloaded after the deciding vote), and each vote's reading.
    _, page = pages[seated[2]]
    expect(page.get_by_test_id("decision")).to_have_text(
        "The panel decided for the first reading (annotator): 2-1, majority."
    )
    expect(page.get_by_test_id(f"vote-reading-{seated[0]}")).to_have_text("for the first reading (annotator)")
    expect(page.get_by_test_id(f"vote-reading-{seated[1]}")).to_have_text("for the first reading (annotator)")
    save_screenshot(page.screenshot(full_page=True), "panel-decided")
    # And in Chinese, for the expert who read the case in Chinese.
    expert, page = pages[seated[1]]
    page = expert.goto(f"/cases/{case_id}/panel?project={slug}")
    expect(page.get_by_test_id("decision")).to_have_text("专家组裁定采纳初读结果 (annotator)：2-1，多数票。")
    expect(page.get_by_test_id(f"vote-reading-{seated[2]}")).to_have_text(f"投给{seated[2]} 的专家修正标注")
    expert.assert_no_console_errors()
    # The server's matching is what the panel drew: the reviewer's n2 is the one unmatched lesion.
    agreement = AgreementResult.objects.filter(case_id=case_id).latest("created_at")
    [box_label] = [label for label in agreement.labels if label["key"] == "nodule_box"]
    assert box_label["status"] == "disagreed"
    assert box_label["matching"]["unmatched"] == {"annotator": [], "reviewer": ["n2"]}

    # Two trained model versions (their per-epoch history) and the latest active-learning scores of the cases.
    trained_models(reading_project, users["manager"])

    # --- Dashboard: the manager sees the case counted ------------------------------------------------------
    manager = browsers.page_for(users["manager"])
    started = time.perf_counter()
    page = manager.goto(f"/projects/{slug}/dashboard")
    expect(page.get_by_test_id("stat-adjudicated")).to_have_text("1")
    timings["dashboard_shown_s"] = [round(time.perf_counter() - started, 3)]
    expect(page.get_by_test_id("stat-disputed")).to_have_text("1")
    expect(page.get_by_test_id("stat-evaluated")).to_have_text("1")
    expect(page.get_by_test_id("stat-cases")).to_have_text("3")
    expect(page.get_by_test_id("stat-overturned")).to_have_text("0")  # the first reading won
    expect(page.get_by_test_id("stat-dispute-rate")).to_have_text("100.0 %")
    api = clients["manager"].get(f"{API}/projects/{slug}/dashboard/").json()
    assert (api["disputed"], api["adjudicated"], api["cases"]) == (1, 1, 3)
    for chart in (
        "chart-status",
        "chart-rates",
        "chart-agreement",
        "chart-kappa",
        "chart-dice-nodule_mask",
        "chart-quality",
        "chart-trend",
        "chart-training",
        "chart-learning",
        "chart-scatter",
    ):
        save_screenshot(page.get_by_test_id(chart).screenshot(), f"dashboard-{chart}", min_std=4.0)
    expect(page.locator("svg[data-testid^='confusion-']").first).to_be_visible()
    save_screenshot(
        page.locator("svg[data-testid^='confusion-']").first.screenshot(), "dashboard-confusion", min_std=4.0
    )
    expect(
        page.get_by_role("img", name="Latest active-learning scores (uncertainty_disagreement, 3 cases)")
    ).to_be_visible()
    save_screenshot(page.screenshot(full_page=True), "dashboard")

    # --- Jobs: live progress, the error of a failed job, retry and cancel ----------------------------------
    train = job_services.job_create(
        kind="train",
        task_name="inference.tasks.train",
        project=reading_project,
        created_by=users["manager"],
        enqueue=False,
    )
    assert job_services.job_claim(train.pk, worker="browser-test:1") is not None
    report = job_services.Progress(train.pk)
    for epoch in (1, 2, 3):
        loss, dice = round(1.0 / epoch, 3), round(0.2 * epoch, 3)
        report(
            done=epoch,
            total=8,
            epoch=epoch,
            loss=loss,
            metric=dice,
            history={"epoch": epoch, "loss": loss, "val_dice": dice},
        )
    export = job_services.job_create(
        kind="export",
        task_name=EXPORT_TASK,
        project=reading_project,
        created_by=users["manager"],
        enqueue=False,
    )
    claimed = job_services.job_claim(export.pk, worker="browser-test:1")
    assert claimed is not None
    job_services.job_fail(claimed, "Orthanc did not answer within 30 s", worker="browser-test:1")

    # An export that left cases out finishes "partial", never as a plain success (issue 18).
    partial = job_services.job_create(
        kind="export", task_name=EXPORT_TASK, project=reading_project, created_by=users["manager"], enqueue=False
    )
    claimed_partial = job_services.job_claim(partial.pk, worker="browser-test:1")
    assert claimed_partial is not None
    job_services.job_succeed(claimed_partial, {"left_out_cases": 2, "left_out": []}, worker="browser-test:1")
    assert Job.objects.get(pk=partial.pk).status == "partial"

    page = manager.goto(f"/jobs?project={slug}")
    expect(page.get_by_test_id(f"job-left-out-{partial.pk}")).to_contain_text("Succeeded with 2 case(s) left out")
    expect(page.get_by_test_id(f"job-{partial.pk}").locator(".badge.status-partial")).to_have_text(
        "Succeeded with items left out"
    )
    bar = page.get_by_role("progressbar", name=f"Progress of job {train.pk}")
    expect(bar).to_have_attribute("aria-valuenow", "37")  # 3 of 8
    expect(page.get_by_test_id(f"job-error-{export.pk}")).to_contain_text("Orthanc did not answer")
    # The worker goes on: the bar follows without a reload (polling).
    report(done=6, total=8, epoch=6, loss=0.2, metric=0.7, history={"epoch": 6, "loss": 0.2, "val_dice": 0.7})
    started = time.perf_counter()
    expect(bar).to_have_attribute("aria-valuenow", "75", timeout=10_000)
    timings["jobs_progress_followed_s"] = [round(time.perf_counter() - started, 3)]
    page.get_by_role("button", name=f"Details of job {train.pk}").click()
    history_chart = page.get_by_test_id(f"job-chart-{train.pk}")
    expect(history_chart).to_be_visible()
    save_screenshot(history_chart.screenshot(), "jobs-training-history", min_std=4.0)
    save_screenshot(bar.screenshot(), "jobs-progress-bar", min_std=4.0)
    save_screenshot(page.screenshot(full_page=True), "jobs")
    page.get_by_role("button", name=f"Retry job {export.pk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Job {export.pk} queued again.")
    assert Job.objects.get(pk=export.pk).status == "queued"
    page.get_by_role("button", name=f"Cancel job {train.pk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Job {train.pk} cancelled.")
    assert Job.objects.get(pk=train.pk).status == "cancelled"
    manager.assert_no_console_errors()
    manager.close()  # stop its polling before the server goes away

    # --- What the server forbids is hidden: a reader sees no jobs and no dashboard -------------------------
    reader = browsers.page_for(users["annotator"])
    page = reader.goto("/")
    expect(page.get_by_test_id("username")).to_have_text("annotator")
    expect(page.get_by_role("link", name="Jobs")).to_have_count(0)
    page = reader.goto("/jobs")
    expect(page.get_by_text("No job to show.")).to_be_visible()
    page = reader.goto(f"/projects/{slug}/dashboard")
    expect(page.get_by_role("alert")).to_contain_text("Only the project's managers see its dashboards.")
    assert clients["annotator"].get(f"{API}/projects/{slug}/dashboard/").status_code == 403
    assert clients["annotator"].get(f"{API}/jobs/?project={slug}").json()["results"] == []
    reader.assert_no_console_errors()
    path = panel_helpers.artifacts_dir().parent / "panel-dashboard-jobs-timings.json"
    path.write_text(json.dumps(timings, indent=2))
    print(f"timings: {timings}")
