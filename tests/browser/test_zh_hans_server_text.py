"""The zh-Hans reader and panel show no English server text (issue 13, item 4), in Chromium.

A disputed case (masks that disagree, a lesion only the reviewer found) is in panel. A seated expert with
Chinese opens it: the agreement's reasons, the per-label table, the lesion lists and, after the panel decides,
the decision are all in Chinese, with the schema's display names; the reasons on the page are those the server
stored for the case. The annotator, in Chinese, submits an incomplete reading: what is missing is listed in
Chinese, by the labels' names, and nothing is submitted. The page text may hold data only: user names, UIDs,
numbers, units and metric names (tests/i18n.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.utils import translation
from playwright.sync_api import Page, expect

from annotation.models import Annotation, Assignment, Case, Project
from review.api.serializers import AgreementOutput
from review.models import AgreementResult
from tests.browser import panel_helpers
from tests.browser import test_panel_dashboard_jobs as panel_case
from tests.i18n import english_left
from tests.review.conftest import API, JSON, claim, ok

Browsers = panel_helpers.Browsers
save_screenshot = panel_helpers.save_screenshot


def data_of(case: Case, names: list[str]) -> list[str]:
    """What a page may show in Latin letters as data: user names, the study's descriptions and UIDs, the
    project's and the AI model's names."""
    study = case.study
    data = [*names, case.project.name, case.project.slug, study.study_instance_uid, "unet-test-1"]
    data += [study.study_description or "", study.patient_id or "", getattr(study, "patient_name", "") or ""]
    data += [s.series_description or "" for s in study.series.all()]
    return data


def english_on(page: Page, data: list[str]) -> list[str]:
    return english_left(page.locator("main").inner_text(), data)


def test_the_chinese_panel_and_reader_show_the_servers_words_in_chinese(
    live_server: Any,
    browsers: Browsers,
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    clients: dict[str, Client],
) -> None:
    slug = reading_project.slug
    case_id = panel_case.disputed_case(slug, clients)
    case = Case.objects.select_related("project", "study").get(pk=case_id)
    seated = sorted(
        Assignment.objects.filter(case_id=case_id, role="panel_member").values_list("user__username", flat=True)
    )
    by_name = {**users, **experts}
    data = data_of(case, list(by_name))

    # --- The panel, in Chinese ------------------------------------------------------------------------------
    expert = browsers.page_for(by_name[seated[0]], language="zh-hans")
    page = expert.goto(f"/cases/{case_id}/panel")
    reasons = page.get_by_test_id("reasons")
    expect(reasons).to_be_visible(timeout=30_000)
    page.wait_for_selector('[data-testid="panel-viewer-first_reader"][data-first-image="true"]', timeout=30_000)
    shown = [text.strip() for text in reasons.locator("li").all_inner_texts()]
    # The reasons on the page are the server's for this case, rendered in Chinese from what it stored.
    result = AgreementResult.objects.filter(case_id=case_id).latest("created_at")
    with translation.override("zh-hans"):
        stored = AgreementOutput(result).data["reasons"]
    assert shown == stored and len(shown) == len(result.reasons) >= 2
    assert any("结节分割，分割类别“结节”：Dice" in text for text in shown), shown
    assert any("结节包围框：病灶数量不同" in text for text in shown), shown
    for text in shown:
        assert not english_left(text, data), text
    expect(page.get_by_test_id("metric-row-nodule_box")).to_contain_text("不一致")
    # The status on one line, never one character per line beside long metrics.
    status_cell = page.get_by_test_id("metric-row-nodule_box").locator("td").nth(1)
    lines = status_cell.evaluate(
        "cell => { const r = document.createRange(); r.selectNodeContents(cell);"
        " return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; }"
    )
    assert lines == 1, f"the status {status_cell.inner_text()!r} wraps onto {lines} lines"
    expect(page.get_by_test_id("unmatched")).to_contain_text("结节包围框 2")
    # Every word of the page: the screen's own strings and the server's.
    left = english_on(page, data)
    save_screenshot(page.screenshot(full_page=True), "panel-zh-hans-server-text")
    assert left == [], f"English on the Chinese panel: {sorted(set(left))}"

    # The panel decides (two votes for the first reading, one for the second, through the API); the decision,
    # reloaded, is in Chinese too.
    first = Annotation.objects.get(case_id=case_id, role="first_reader")
    second = Annotation.objects.get(case_id=case_id, role="second_reader")
    for name, annotation in zip(seated, (first, first, second), strict=True):
        body = {"voted_for_annotation": annotation.pk, "rationale": "上叶结节的掩膜更贴合"}
        ok(clients[name].post(f"{API}/cases/{case_id}/votes/", body, JSON), 201)
    assert Case.objects.get(pk=case_id).status == "adjudicated"
    page.reload()
    expect(page.get_by_test_id("decision")).to_contain_text("初读结果 (annotator)", timeout=30_000)
    page.wait_for_selector('[data-testid="panel-viewer-first_reader"][data-first-image="true"]', timeout=30_000)
    left = english_on(page, data)
    save_screenshot(page.screenshot(full_page=True), "panel-zh-hans-decided")
    assert left == [], f"English on the decided Chinese panel: {sorted(set(left))}"
    expert.assert_no_console_errors()

    # --- The reader, in Chinese: the server's refusal of an incomplete reading --------------------------------
    other = claim(clients["annotator"], slug, "first_reader")
    annotator = browsers.page_for(users["annotator"], language="zh-hans")
    page = annotator.goto(f"/cases/{other}/read?role=first_reader&project={slug}")
    page.wait_for_function("() => window.__medlabel && window.__medlabel.firstImageMs > 0", timeout=60_000)
    page.get_by_role("button", name="提交阅片").click()
    # The reader checks the schema's rules before sending (issue 15, no lost work) and lists what is missing by the
    # schema's Chinese names; the server's own refusal in Chinese is tested through the API
    # (test_a_refused_reading_is_explained_in_the_readers_language_by_display_names).
    alert = page.get_by_test_id("pending")
    expect(alert).to_contain_text("是否存在结节", timeout=20_000)
    assert not english_left(alert.inner_text(), data), alert.inner_text()
    assert not Annotation.objects.filter(case_id=other, status="submitted").exists()
    # The keyboard's own names stay Latin: the reader lists its hotkeys (B, R, PageUp, Ctrl+Z ...).
    keys = [*"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "Ctrl", "Shift", "Alt", "Enter", "Esc", "Tab", "PageUp", "PageDown"]
    keys += ["HU", "MPR"]  # Hounsfield units and multi-planar reconstruction: names, as in any Chinese PACS
    left = english_on(page, data_of(Case.objects.get(pk=other), [*by_name, *keys]))
    save_screenshot(page.screenshot(full_page=True), "reader-zh-hans-server-text")
    assert left == [], f"English on the Chinese reader: {sorted(set(left))}"
