"""Every screen of the browser app in Chinese shows no English UI text (issue 16: "a browser test walks every
screen in Chinese and fails on English UI text that is not data").

The walk reads the client routes from ``ROUTES`` in frontend/src/App.tsx, so a new screen is walked as soon as it
is registered there; a route that ``WALK`` (the table below) does not know how to fill fails the walk with "add
this screen to the walk". One project is set up through the services (no UI): a case awaiting its first reading,
a case in the panel with one vote cast, an adjudicated case, a finished export, a training job in progress, an API
token and the audit trail all of that wrote. Each screen is opened by each role that sees it, in Chinese, with its
interactive parts opened too (the reader's hotkey dialog and tools, the panel's overlay mode, the details of a job
and an export, the schema's JSON view); on each page, every Latin word that is not data (names, slugs, keys the
test created, format and standard names) is English left in the Chinese UI. Visible text, placeholders, titles,
accessible names (``aria-label``) and the words charts draw (``data-chart-text``) are checked; field paths and
JSON (``<code>``, ``<pre>``, text areas) are data. Screenshots: $TEST_ARTIFACTS_DIR/zh-<screen>[-<step>].png.

To add a screen: one entry in ``WALK`` (route name -> the visits: which user, how to fill the route's
parameters and query, what shows that the page is ready, what to open on it)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Dialog, Page, expect

from accounts.models import ApiToken
from accounts.services import api_token_create
from annotation.models import Annotation, Assignment, Case, Project
from annotation.services import assignment_create
from datasets import services as dataset_services
from datasets.deid import DEIDENTIFICATION_METHOD
from imaging.models import Series, Study
from jobs import services as job_services
from review.models import PanelVote
from review.services import panel_vote
from tests.browser import panel_helpers
from tests.browser.test_panel_dashboard_jobs import disputed_case, trained_models

pytestmark = pytest.mark.django_db(transaction=True)

APP = Path(__file__).resolve().parents[2] / "frontend" / "src" / "App.tsx"
WORD = r"[A-Za-z][A-Za-z0-9_.\-]*[A-Za-z0-9]"
# Latin words that are never UI text: the product, the header's name of the English language, formats,
# standards, units and the names of things the app does not translate (architectures, metrics, tools' libraries).
NOT_UI_TEXT = {
    "MedLabel", "QA", "API", "English", "MONAI", "MSD", "NIfTI", "DICOM", "SEG", "COCO", "CSV", "JSON", "UID",
    "OHIF", "DICOMweb", "dicomweb-client", "Authorization", "Bearer", "Token", "PS3.15", "CT", "MR", "mm", "HU",
    "AI", "Dice", "HD95", "ASSD", "IoU", "kappa", "Kappa", "Cohen", "unet", "segresnet", "densenet121",
    "WW", "WL", "KB", "MB", "SHA-256", "csv", "json", "zip", "PACS", "MPR",
    # Keys of the keyboard, printed on it in Latin letters whatever the language.
    "Ctrl", "Shift", "Alt", "Enter", "Esc", "Escape", "Delete", "Backspace", "PageUp", "PageDown", "Home", "End",
    "Space", "Tab",
    "F1",  # the F1 score of lesion matching
}  # fmt: skip


def app_routes() -> dict[str, str]:
    """The client routes the app registers (name -> path pattern), read from App.tsx's ROUTES."""
    source = APP.read_text(encoding="utf-8")
    block = re.search(r"export const ROUTES = \{(.*?)\} as const", source, re.DOTALL)
    assert block, "ROUTES not found in App.tsx"
    routes = dict(re.findall(r'^\s*(\w+): "([^"]+)",?\s*$', block.group(1), re.MULTILINE))
    assert len(routes) >= 10, routes
    return routes


@dataclass
class World:
    """What the set-up made, for filling routes and knowing which words are data."""

    slug: str
    users: dict[str, User]
    awaiting: int  # a case waiting for its first reading, assigned to the annotator
    in_panel: int  # a case in the panel, one vote cast
    adjudicated: int  # a case the panel decided
    panel_expert: str  # sits on the in-panel case's panel and has not voted yet
    token_prefix: str
    data: set[str] = field(default_factory=set)


Step = Callable[[Page, World], None]


@dataclass(frozen=True)
class Visit:
    """One page of the walk: ``user`` opens the route with ``params(world)`` filled in (``query`` appended),
    waits for ``ready``, is checked, then each of ``steps`` (name, action) opens something and is checked."""

    user: str
    params: Callable[[World], dict[str, Any]] = lambda w: {}
    query: Callable[[World], str] = lambda w: ""
    ready: Step = lambda page, w: None
    steps: tuple[tuple[str, Step], ...] = ()
    label: str = ""


def _reading_of(case_id: int, role: str) -> int:
    return int(Annotation.objects.get(case_id=case_id, role=role).pk)


def _visible(testid: str) -> Step:
    return lambda page, w: expect(page.get_by_test_id(testid).first).to_be_visible(timeout=60_000)


def _main_shown(page: Page, world: World) -> None:
    expect(page.locator("main")).not_to_be_empty()


def _first_image(page: Page, world: World) -> None:
    page.wait_for_function("() => window.__medlabel && window.__medlabel.firstImageMs > 0", timeout=60_000)


def _hotkeys(page: Page, world: World) -> None:
    page.keyboard.press("?")
    expect(page.get_by_test_id("hotkeys")).to_be_visible()


def _close_dialog(page: Page, world: World) -> None:
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("hotkeys")).to_have_count(0)


def _each_tool(page: Page, world: World) -> None:
    """Choose each drawing tool of the reader's toolbar in turn (a tool may show its own options)."""
    tools = page.locator("[role='toolbar'] button[aria-pressed]")
    for index in range(tools.count()):
        button = tools.nth(index)
        if button.is_enabled():
            button.click()


def _click(name_en_or_zh: str) -> Step:
    return lambda page, w: page.get_by_role("button", name=name_en_or_zh).first.click()


def _expand_first(page: Page, world: World) -> None:
    """Open the first row's details (a job's, an export's)."""
    button = page.locator("button[aria-expanded='false']").first
    button.click()
    expect(page.locator("button[aria-expanded='true']").first).to_be_visible()


def _pressed(index: int) -> Step:
    """Press the ``index``-th toggle of a group (aria-pressed) that is not pressed yet."""

    def step(page: Page, world: World) -> None:
        page.locator("button[aria-pressed='false']").nth(index).click()
        page.wait_for_timeout(500)

    return step


def _corrected_vote(page: Page, world: World) -> None:
    """The vote form's corrected-label choice (it shows where the correction starts from)."""
    page.locator("input[type=radio][name=vote][value=corrected]").check()


def _model_details(page: Page, world: World) -> None:
    page.get_by_test_id("model-2").get_by_role("button").first.click()
    expect(page.get_by_test_id("model-details")).to_be_visible()


def _revoke_asked(page: Page, world: World) -> None:
    """Revoke asks first (a confirm dialog, its text checked like the page's); the walk says no."""
    page.locator("[data-testid^='token-'] button").first.click()
    expect(page.locator("[data-testid^='token-']").first).to_be_visible()


slug_of: Callable[[World], dict[str, Any]] = lambda w: {"slug": w.slug}  # noqa: E731

# The walk: route name (App.tsx ROUTES) -> the visits of that screen, one per role that sees it.
WALK: dict[str, tuple[Visit, ...]] = {
    "projects": (
        Visit("manager", ready=lambda p, w: expect(p.get_by_test_id(f"project-{w.slug}")).to_be_visible()),
        Visit("annotator", ready=lambda p, w: expect(p.get_by_test_id(f"project-{w.slug}")).to_be_visible()),
    ),
    "worklist": (
        Visit("annotator", slug_of, ready=lambda p, w: expect(p.locator("h1")).to_contain_text(w.slug)),
        Visit("manager", slug_of, ready=_main_shown),
    ),
    "dashboard": (Visit("manager", slug_of, ready=_visible("stat-adjudicated")),),
    "reader": (
        Visit(
            "annotator",
            lambda w: {"caseId": w.awaiting},
            lambda w: f"?role=first_reader&project={w.slug}",
            ready=_first_image,
            steps=(("hotkeys", _hotkeys), ("closed", _close_dialog), ("tools", _each_tool)),
        ),
        # The second reader's submitted reading of the case now in the panel: read-only, first reading overlaid.
        Visit(
            "reviewer",
            lambda w: {"caseId": w.in_panel},
            lambda w: f"?role=second_reader&project={w.slug}",
            ready=_first_image,
            steps=(("hotkeys", _hotkeys),),
        ),
        # The manager's read-only view of the adjudicated label (the case page's link), with its banner.
        Visit(
            "manager",
            lambda w: {"caseId": w.adjudicated},
            lambda w: f"?reading={_reading_of(w.adjudicated, 'adjudicated')}&project={w.slug}",
            ready=_visible("read-only-banner"),
            steps=(("image", _first_image),),
            label="read-only",
        ),
    ),
    "panel": (
        Visit(
            "panel_expert",
            lambda w: {"caseId": w.in_panel},
            lambda w: f"?project={w.slug}",
            ready=_visible("metric-row-nodule_box"),
            steps=(("overlay", _pressed(0)), ("corrected", _corrected_vote)),
            label="voting",
        ),
        Visit(
            "panel_expert",
            lambda w: {"caseId": w.adjudicated},
            lambda w: f"?project={w.slug}",
            ready=_visible("decision"),
            label="decided",
        ),
    ),
    "panelWorklist": (Visit("panel_expert", slug_of, ready=lambda p, w: expect(p.locator("h1")).to_be_visible()),),
    "jobs": (
        Visit(
            "manager",
            query=lambda w: f"?project={w.slug}",
            ready=lambda p, w: expect(p.locator("[data-testid^='progress-']").first).to_be_visible(),
            steps=(("details", _expand_first),),
        ),
    ),
    "tokens": (
        Visit(
            "manager",
            ready=lambda p, w: expect(p.locator("[data-testid^='token-']").first).to_be_visible(),
            steps=(("revoke", _revoke_asked),),
        ),
    ),
    "audit": (Visit("manager", slug_of, ready=lambda p, w: expect(p.locator("table tbody tr").first).to_be_visible()),),
    "exports": (Visit("manager", slug_of, ready=_visible("export-1"), steps=(("details", _expand_first),)),),
    "schema": (Visit("manager", slug_of, ready=_visible("schema-preview"), steps=(("json", _pressed(0)),)),),
    "models": (Visit("manager", slug_of, ready=_visible("model-2"), steps=(("details", _model_details),)),),
    "cases": (
        Visit("manager", slug_of, ready=lambda p, w: expect(p.get_by_test_id("case-row").first).to_be_visible()),
    ),
    "case": (
        Visit(
            "manager",
            lambda w: {"caseId": w.adjudicated},
            lambda w: f"?project={w.slug}",
            ready=lambda p, w: expect(p.get_by_test_id("case-event").first).to_be_visible(),
            label="decided",
        ),
        Visit(
            "manager",
            lambda w: {"caseId": w.in_panel},
            lambda w: f"?project={w.slug}",
            ready=lambda p, w: expect(p.get_by_test_id("case-event").first).to_be_visible(),
            label="in-panel",
        ),
    ),
    "reviewPolicy": (
        Visit("manager", slug_of, ready=lambda p, w: expect(p.locator("form fieldset").first).to_be_visible()),
    ),
    "viewerSettings": (
        Visit(
            "manager",
            slug_of,
            ready=_visible("viewer-tools"),
            steps=(("preset", _click("添加预设")),),
        ),
    ),
    "members": (
        Visit(
            "manager", slug_of, ready=lambda p, w: expect(p.locator("[data-testid^='member-']").first).to_be_visible()
        ),
    ),
    "data": (Visit("manager", slug_of, ready=_visible("dropzone")),),
}


def test_every_route_of_the_app_is_in_the_walk() -> None:
    """Fails as soon as a screen is registered in App.tsx that the walk does not know how to fill."""
    missing = sorted(set(app_routes()) - set(WALK))
    assert missing == [], f"add this screen to the walk (WALK in {Path(__file__).name}): {missing}"
    stale = sorted(set(WALK) - set(app_routes()))
    assert stale == [], f"screens of the walk that App.tsx no longer has: {stale}"


def _fill(pattern: str, params: dict[str, Any]) -> str:
    names = re.findall(r":(\w+)", pattern)
    unknown = [name for name in names if name not in params]
    assert not unknown, f"add this screen to the walk: no value for {unknown} of {pattern}"
    return re.sub(r":(\w+)", lambda m: str(params[m.group(1)]), pattern)


_TEXT = """() => {
  // What a user reads or hears: visible text, placeholders, titles, accessible names. Field paths, JSON and
  // editable text (<code>, <pre>, text areas) are data.
  const body = document.body.cloneNode(true);
  body.querySelectorAll('code, pre, textarea').forEach((e) => e.remove());
  document.documentElement.appendChild(body);
  const text = body.innerText;
  body.remove();
  // Charts draw their words on a canvas; the canvas carries them in data-chart-text.
  const names = ['placeholder', 'title', 'aria-label', 'data-chart-text'];
  const attributes = [...document.querySelectorAll(names.map((a) => `[${a}]`).join(', '))].flatMap((e) =>
    names.map((a) => e.getAttribute(a) || ''));
  return text + '\\n' + attributes.join('\\n');
}"""


def english_left(page: Page, data: set[str], dialogs: list[str]) -> list[str]:
    text = page.evaluate(_TEXT) + "\n" + "\n".join(dialogs)
    dialogs.clear()
    return sorted(set(re.findall(WORD, text)) - NOT_UI_TEXT - data)


ASKING = re.compile(r"/api/v1/cases/\d+/(reading-feedback|gold|agreement)/$")


def _note_not_found(seen: list[str], response: Any) -> None:
    if response.status == 404:
        seen.append(response.url)


def _say_no(seen: list[str], dialog: Dialog) -> None:
    seen.append(dialog.message)
    dialog.dismiss()


def _screenshot(page: Page, name: str) -> None:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or Path(__file__).resolve().parents[2] / "test-artifacts")
    root.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(full_page=True)
    (root / f"zh-{name}.png").write_bytes(png)
    assert panel_helpers.pixel_std(png) > 2, f"zh-{name}.png looks blank"


def _world(project: Project, users: dict[str, User], experts: dict[str, User], clients: dict[str, Client]) -> World:
    """The project in every state the screens show, made through the services and the API (not the UI)."""
    slug = project.slug
    adjudicated = disputed_case(slug, clients)
    in_panel = disputed_case(slug, clients)
    everyone = {**users, **experts}
    first = Annotation.objects.get(case_id=adjudicated, role="first_reader")
    for seat in Assignment.objects.filter(case_id=adjudicated, role="panel_member").select_related("user"):
        panel_vote(
            case=Case.objects.get(pk=adjudicated),
            expert=seat.user,
            rationale="边界更贴合",
            voted_for=first.current_revision,
        )
    assert Case.objects.get(pk=adjudicated).status == "adjudicated"
    seats = list(
        Assignment.objects.filter(case_id=in_panel, role="panel_member")
        .order_by("user__username")
        .select_related("user")
    )
    first_in_panel = Annotation.objects.get(case_id=in_panel, role="first_reader")
    panel_vote(
        case=Case.objects.get(pk=in_panel),
        expert=seats[0].user,
        rationale="同意",
        voted_for=first_in_panel.current_revision,
    )
    assert Case.objects.get(pk=in_panel).status == "in_panel"
    assert PanelVote.objects.filter(case_id=in_panel).count() == 1
    panel_expert = seats[1].user.username
    [awaiting] = Case.objects.filter(project=project).exclude(pk__in=(adjudicated, in_panel))
    assignment_create(case=awaiting, user=users["annotator"], role="first_reader", assigned_by=None)

    # An export built to the end (inline), a training job in progress, two trained models, an API token.
    export = dataset_services.export_create(
        project=project,
        created_by=users["manager"],
        formats=["csv", "json"],
        filters={"min_qa_level": "adjudicated"},
        enqueue=False,
    )
    assert export.job_id is not None
    assert job_services.run_job(export.job_id, dataset_services.export_build) == "succeeded"
    trained_models(project, users["manager"])
    train = job_services.job_create(
        kind="train", task_name="inference.tasks.train", project=project, created_by=users["manager"], enqueue=False
    )
    assert job_services.job_claim(train.pk, worker="walk:1") is not None
    job_services.Progress(train.pk)(done=2, total=8, epoch=2, loss=0.5, metric=0.4, history={"epoch": 2, "loss": 0.5})
    token, _ = api_token_create(user=users["manager"], name="脚本", expires_in_days=30)

    data = {slug, token.prefix, *everyone, *re.findall(WORD, project.name)}
    for study in Study.objects.filter(cases__project=project).distinct():
        for value in (study.patient_name, study.patient_id, study.study_description, study.accession_number):
            data.update(re.findall(WORD, value))
    for series in Series.objects.filter(study__cases__project=project).distinct():
        data.update(re.findall(WORD, series.series_description))
        data.update(re.findall(WORD, series.body_part_examined))
    schema = project.schemas.order_by("-version").first()
    assert schema is not None
    for label in schema.definition["labels"]:
        data.add(label["key"])
        data.update(choice["key"] for choice in label.get("choices", ()))
        data.update(segment["key"] for segment in label.get("segments", ()))
    for version in project.model_versions.all():
        data.update(re.findall(WORD, version.label))
    # The model that made the AI proposal, the strategy of the active-learning scores, the job's worker and the
    # de-identification method written into the exported files (the standard's own words) are data too.
    data.update(
        {"unet-test-1", "v1", "v2", "uncertainty_disagreement", "walk", *re.findall(WORD, DEIDENTIFICATION_METHOD)}
    )
    return World(
        slug=slug,
        users=everyone | {"panel_expert": everyone[panel_expert]},
        awaiting=awaiting.pk,
        in_panel=in_panel,
        adjudicated=adjudicated,
        panel_expert=panel_expert,
        token_prefix=token.prefix,
        data=data,
    )


def test_every_screen_in_chinese_shows_no_english_ui_text(
    browsers: panel_helpers.Browsers,
    reading_project: Project,
    users: dict[str, User],
    experts: dict[str, User],
    clients: dict[str, Client],
) -> None:
    routes = app_routes()
    missing = sorted(set(routes) - set(WALK))
    assert missing == [], f"add this screen to the walk (WALK in {Path(__file__).name}): {missing}"
    world = _world(reading_project, users, experts, clients)
    pages: dict[str, panel_helpers.UserPage] = {}
    found: dict[str, list[str]] = {}
    walked = []
    dialogs: list[str] = []
    asked: list[str] = []
    not_found: dict[str, list[str]] = {name: [] for name in world.users}
    for name, pattern in routes.items():
        for visit in WALK[name]:
            user = world.users[visit.user]
            if visit.user not in pages:
                pages[visit.user] = browsers.page_for(user, language="zh-hans")
                pages[visit.user].page.set_default_navigation_timeout(60_000)
                # A confirm or alert the screen opens: its text is checked with the page's, and the walk says no.
                pages[visit.user].page.on("dialog", partial(_say_no, dialogs))
                pages[visit.user].page.on("response", partial(_note_not_found, not_found[visit.user]))
            user_page = pages[visit.user]
            path = _fill(pattern, visit.params(world)) + visit.query(world)
            page = user_page.goto(path)
            visit.ready(page, world)
            page.wait_for_load_state("networkidle")
            shot = "-".join(part for part in (name, visit.user if len(WALK[name]) > 1 else "", visit.label) if part)
            for step, action in (("", None), *visit.steps):
                if action is not None:
                    action(page, world)
                    page.wait_for_timeout(200)
                where = f"{shot}-{step}" if step else shot
                asked.extend(dialogs)
                left = english_left(page, world.data, dialogs)
                if left:
                    found[f"{where} ({path})"] = left
                _screenshot(page, where)
                walked.append(where)
    for username, user_page in pages.items():
        # A screen asking whether there is something to show (the reader's gold feedback, a case's gold reference
        # or agreement) is answered 404 when there is none, the same for every case: the browser logs each as a
        # failed load. Those, and only those, are not errors; any other 404 is.
        unexpected = [url for url in not_found[username] if not ASKING.search(url)]
        assert unexpected == [], f"{username}: 404 from {unexpected}"
        asking = len(not_found[username])
        user_page.errors = [
            e for e in user_page.errors if not (e.startswith("Failed to load resource") and "404" in e and asking)
        ]
        user_page.assert_no_console_errors()
        user_page.close()
    assert found == {}, "English UI text in the Chinese app:\n" + "\n".join(f"{k}: {v}" for k, v in found.items())
    # The walk saw every screen, and what it set up is what the database holds.
    assert {w.split("-")[0] for w in walked} == set(routes)
    assert Case.objects.get(pk=world.awaiting).status == "awaiting_first_read"
    assert PanelVote.objects.filter(case_id=world.in_panel).count() == 1  # the walk cast no vote
    # Revoking asked first, in Chinese, and the walk's "no" left the token as it was.
    assert len(asked) == 1 and re.search(r"[\u4e00-\u9fff]", asked[0]), asked
    assert ApiToken.objects.get(prefix=world.token_prefix).revoked_at is None
    assert cast(Any, users["manager"]).profile.language == "zh-hans"
