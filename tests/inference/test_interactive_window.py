"""The HU window of AI-assisted segmentation comes from the project's viewer settings (issue 17: "an HU window from
the schema's viewer settings"): ``viewer.ai_window`` of the current label schema reaches the model-free engine, so
the same click on the same study grows a different region under a different window; a request's own window still
wins; and a bad window is refused when the manager saves it, in the manager's words, with nothing stored."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import load_example_schema
from annotation.models import Case, LabelSchema, Project
from annotation.services import schema_create_version
from imaging.synthetic import SyntheticStudy
from inference.interactive.simulate import dice, next_click
from tests.i18n import assert_chinese
from tests.inference.test_interactive import ask, hard_case, proposal_of, spacing_of  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

# A window that keeps the solid nodule (20-60 HU) and the soft tissue it touches but not the lung around it, and
# one that keeps nothing of it (bone only).
SOFT = {"lower": -400.0, "upper": 400.0}
BONE = {"lower": 300.0, "upper": 2000.0}
# The bar for one click on the solid nodule inside the soft-tissue window (the engine gives 0.985 there).
DICE_BAR = 0.90


def set_window(project: Project, manager: User, window: dict[str, float] | None) -> None:
    definition = copy.deepcopy(LabelSchema.objects.filter(project=project).order_by("-version").first().definition)  # type: ignore[union-attr]
    viewer = definition.setdefault("viewer", {})
    viewer.pop("ai_window", None)
    if window is not None:
        viewer["ai_window"] = window
    schema_create_version(project=project, definition=definition, created_by=manager)


def test_the_projects_ai_window_reaches_the_engine_and_changes_the_proposal(
    hard_case: tuple[Case, SyntheticStudy],  # noqa: F811
    users: dict[str, User],
    client_for: Callable[[User], Client],
) -> None:
    case, study = hard_case
    client = client_for(users["annotator"])
    solid = next(lesion.index for lesion in study.lesions if lesion.kind == "solid")
    truth = study.mask == solid
    click = next_click(truth, None, spacing_of(study))
    assert click is not None

    estimated = ask(client, case, [click])
    assert estimated.json()["window"] is None  # no window in the settings: estimated around the click, as before

    set_window(case.project, users["manager"], SOFT)
    soft = ask(client, case, [click])
    assert soft.json()["window"] == [SOFT["lower"], SOFT["upper"]]
    soft_mask = proposal_of(soft)
    assert dice(soft_mask, truth) >= DICE_BAR, dice(soft_mask, truth)

    set_window(case.project, users["manager"], BONE)
    bone = ask(client, case, [click])
    assert bone.json()["window"] == [BONE["lower"], BONE["upper"]]
    bone_mask = proposal_of(bone)
    # The nodule is below the window: nothing of it grows (the engine kept to the project's window).
    assert (bone_mask & truth).sum() < 0.05 * truth.sum(), int((bone_mask & truth).sum())
    assert not np.array_equal(bone_mask, soft_mask)

    # The request's own window wins over the project's.
    own = ask(client, case, [click], window=[SOFT["lower"], SOFT["upper"]])
    assert own.json()["window"] == [SOFT["lower"], SOFT["upper"]]
    assert np.array_equal(proposal_of(own), soft_mask)


def _post(client: Client, project: Project, window: Any, language: str = "en") -> Any:
    definition = load_example_schema("chest_ct_nodules")
    definition["viewer"] = {"ai_window": window}
    return client.post(
        f"/api/v1/projects/{project.slug}/schemas/",
        {"definition": definition},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE=language,
    )


@pytest.mark.parametrize(
    ("window", "field", "words"),
    [
        ({"lower": 400, "upper": -400}, "viewer.ai_window.upper", "must be above the lower end"),
        ({"lower": 40, "upper": 40}, "viewer.ai_window.upper", "must be above the lower end"),
        ({"lower": -400}, "viewer.ai_window.upper", "required"),
        ({"lower": "soft", "upper": 400}, "viewer.ai_window.lower", "expected a finite number"),
        ({"lower": -400, "upper": 90000}, "viewer.ai_window.upper", "outside -2000 to 5000 HU"),
        ({"lower": -400, "upper": 400, "level": 0}, "viewer.ai_window.level", "unknown field"),
        ([-400, 400], "viewer.ai_window", "expected the AI assistance window"),
    ],
)
def test_a_bad_ai_window_is_refused_in_the_managers_words_and_nothing_is_stored(
    reading_project: Project,
    users: dict[str, User],
    client_for: Callable[[User], Client],
    window: Any,
    field: str,
    words: str,
) -> None:
    client = client_for(users["manager"])
    before = LabelSchema.objects.filter(project=reading_project).count()
    response = _post(client, reading_project, window)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"] == field, body
    assert words in str(body), body
    assert LabelSchema.objects.filter(project=reading_project).count() == before


def test_a_bad_ai_window_is_refused_in_chinese_and_a_good_one_is_stored(
    reading_project: Project, users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    client = client_for(users["manager"])
    reasons = []
    for window in ({"lower": 400, "upper": -400}, {"lower": -400, "upper": 90000}):
        response = _post(client, reading_project, window, language="zh-hans")
        assert response.status_code == 400
        body = response.json()
        reasons.append(body["detail"].removeprefix(f"{body['field']}: "))
    assert_chinese(reasons, data=["HU"])
    good = _post(client, reading_project, {"lower": -400, "upper": 400})
    assert good.status_code == 201, good.content
    assert good.json()["definition"]["viewer"]["ai_window"] == {"lower": -400, "upper": 400}
