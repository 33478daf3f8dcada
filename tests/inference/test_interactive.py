"""AI-assisted segmentation through the API (issue 17): prompts on a hard synthetic study become a mask that
matches the truth, refinement improves it, a negative click removes a leak, the model-free engine answers when no
``interactive`` worker does (and says so, in the reader's language), a real worker answers when there is one,
only the case's readers may ask, and an accepted proposal's provenance is validated, stored and returned."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.labels import decode_mask, encode_mask_rle
from annotation.models import Annotation, AnnotationRevision, Assignment, Case, Project, Role
from annotation.services import assignment_create, cases_create, load_mask
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy, generate_ct_study
from inference.interactive import serving
from inference.interactive.base import Prompt
from inference.interactive.simulate import dice, next_click
from tests.annotation.conftest import case_series, post_revision
from tests.conftest import dataset_bytes
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, place_studies
from tests.inference.test_worker_kill import CELERY, ROOT, wait_for, worker_env

pytestmark = pytest.mark.django_db

HARD_SEED = 100
# The bar the model-free engine holds on the hard study (figures from bench_interactive at this size): every
# lesion at Dice >= 0.80 within five simulated prompts, and >= 0.85 on average.
DICE_BAR_EACH = 0.80
DICE_BAR_MEAN = 0.85


@functools.cache
def hard_study() -> SyntheticStudy:
    return generate_ct_study(seed=HARD_SEED, n_lesions=4, difficulty="hard")


def ingest_hard(project: Project) -> SyntheticStudy:
    study = hard_study()
    files = [IncomingFile(f"hard-{k:03d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]
    report = ingest_files(files)
    assert [f.status for f in report.files] == [STORED] * len(files)
    place_studies(project, [study.study_uid])
    return study


@pytest.fixture
def hard_case(reading_project: Project, users: dict[str, User]) -> tuple[Case, SyntheticStudy]:
    study = ingest_hard(reading_project)
    (case,) = cases_create(project=reading_project, study_uids=[study.study_uid])
    assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
    return case, study


@pytest.fixture(autouse=True)
def _short_timeout(settings: Any) -> None:
    # No worker consumes the interactive queue in these tests (except the one that starts one): wait briefly.
    settings.INTERACTIVE_TIMEOUT_SECONDS = 0.3
    serving.forget_contexts()


def ask(client: Client, case: Case, prompts: list[Prompt], previous: np.ndarray | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {
        "prompts": [{"kind": p.kind, "points": [list(v) for v in p.points], "positive": p.positive} for p in prompts],
        **extra,
    }
    if previous is not None:
        body["previous"] = encode_mask_rle(previous.astype(np.uint8))
    return client.post(f"/api/v1/cases/{case.pk}/interactive/", data=body, content_type="application/json")


def proposal_of(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.content
    return decode_mask(response.json()["mask"], "mask").astype(bool)


def spacing_of(study: SyntheticStudy) -> tuple[float, float, float]:
    return (study.slice_spacing, *study.pixel_spacing)


def simulate(client: Client, case: Case, study: SyntheticStudy, index: int, n: int) -> list[float]:
    """The protocol's simulated reader: n clicks, each at the centre of the largest error; Dice after each."""
    truth = study.mask == index
    prompts: list[Prompt] = []
    current: np.ndarray | None = None
    scores = []
    for _ in range(n):
        click = next_click(truth, current, spacing_of(study))
        assert click is not None
        prompts.append(click)
        current = proposal_of(ask(client, case, prompts, current))
        scores.append(dice(current, truth))
    return scores


def test_a_prompt_sequence_on_a_hard_study_reaches_the_dice_bar_for_every_kind_of_nodule(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    case, study = hard_case
    client = client_for(users["annotator"])
    best = {}
    for lesion in study.lesions:
        scores = simulate(client, case, study, lesion.index, 5)
        best[lesion.kind] = max(scores)
    assert set(best) == {"juxtavascular", "juxtapleural", "ground_glass", "solid"}
    assert min(best.values()) >= DICE_BAR_EACH, best
    assert float(np.mean(list(best.values()))) >= DICE_BAR_MEAN, best


def _juxtapleural(study: SyntheticStudy) -> int:
    return next(lesion.index for lesion in study.lesions if lesion.kind == "juxtapleural")


def test_a_refinement_click_improves_the_proposal_and_a_negative_click_removes_a_leak(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    case, study = hard_case
    client = client_for(users["annotator"])
    truth = study.mask == _juxtapleural(study)
    spacing = spacing_of(study)
    first = next_click(truth, None, spacing)
    assert first is not None
    one = ask(client, case, [first])
    proposal = proposal_of(one)
    assert one.json()["prompts"] == 1
    leak = proposal & ~truth
    # A nodule against the chest wall: the first click floods into the wall (same density), the leak is real.
    assert leak.sum() > 0.3 * truth.sum(), "precondition: the first proposal leaks into the chest wall"

    negative = next_click(truth, proposal, spacing)
    assert negative is not None and not negative.positive, "the largest error is the leak"
    two = ask(client, case, [first, negative], proposal)
    refined = proposal_of(two)
    assert two.json()["prompts"] == 2
    assert (refined & ~truth).sum() < 0.5 * leak.sum(), "the negative click removed most of the leak"
    assert not refined[negative.points[0]]
    assert dice(refined, truth) > dice(proposal, truth) + 0.1


def test_with_no_worker_the_model_free_engine_answers_and_says_so_in_the_readers_language(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    case, study = hard_case
    client = client_for(users["annotator"])
    click = next_click(study.mask == 1, None, spacing_of(study))
    assert click is not None
    answer = ask(client, case, [click]).json()
    assert answer["fallback"] is True
    assert answer["engine"] == "region-growing"
    assert answer["model_version"] is None
    assert "No interactive worker answered within 0.3 s" in answer["message"]
    assert "model-free engine answered instead" in answer["message"]
    assert answer["mask"]["encoding"] == "rle-base64"
    assert answer["mask"]["shape"] == list(study.shape)
    assert answer["voxels"] > 0 and answer["seconds"] > 0
    assert answer["warm"] is False
    chinese = client.post(
        f"/api/v1/cases/{case.pk}/interactive/",
        data={"prompts": [{"kind": "point", "points": [list(click.points[0])]}]},
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    ).json()
    assert chinese["fallback"] is True
    assert chinese["warm"] is True  # the web process kept the volume of this reader's series too
    assert "无模型引擎" in chinese["message"], chinese["message"]


def test_bad_prompts_are_refused_with_the_field_named(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    case, study = hard_case
    client = client_for(users["annotator"])
    url = f"/api/v1/cases/{case.pk}/interactive/"
    outside = {"prompts": [{"kind": "point", "points": [[study.shape[0], 1, 1]]}]}
    response = client.post(url, data=outside, content_type="application/json")
    assert response.status_code == 400
    assert "outside the series" in str(response.json())
    box = {"prompts": [{"kind": "box", "points": [[1, 1, 1]]}]}
    assert client.post(url, data=box, content_type="application/json").status_code == 400
    engine = {"engine": "nope", "prompts": [{"kind": "point", "points": [[1, 1, 1]]}]}
    response = client.post(url, data=engine, content_type="application/json")
    assert response.status_code == 400 and "unknown engine" in str(response.json())
    wrong = {
        "prompts": [{"kind": "point", "points": [[1, 1, 1]]}],
        "previous": encode_mask_rle(np.zeros((2, 2, 2), dtype=np.uint8)),
    }
    response = client.post(url, data=wrong, content_type="application/json")
    assert response.status_code == 400 and "previous" in str(response.json())


def test_only_the_cases_readers_may_ask_a_user_of_another_project_is_told_nothing(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    case, _ = hard_case
    body = {"prompts": [{"kind": "point", "points": [[5, 60, 60]]}]}
    url = f"/api/v1/cases/{case.pk}/interactive/"
    stranger = cast(User, UserFactory(username="elsewhere"))
    other = ProjectFactory(slug="other-project")
    MembershipFactory(project=other, user=stranger, role=Role.ANNOTATOR)
    response = client_for(stranger).post(url, data=body, content_type="application/json")
    assert response.status_code == 404
    assert "mask" not in response.json()
    # The project's manager sees the case but does not read it: refused, with the reason.
    response = client_for(users["manager"]).post(url, data=body, content_type="application/json")
    assert response.status_code == 403
    assert "assigned" in str(response.json())
    assert client_for(users["annotator"]).post(url, data=body, content_type="application/json").status_code == 200


def test_an_accepted_proposal_is_saved_with_its_provenance_and_bad_provenance_is_refused(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    case, study = hard_case
    client = client_for(users["annotator"])
    click = next_click(study.mask == 1, None, spacing_of(study))
    assert click is not None
    answer = ask(client, case, [click]).json()
    series_uid = case_series(case).series_instance_uid
    item = {
        "label": "nodule_mask",
        "series_instance_uid": series_uid,
        "mask": answer["mask"],
        "assisted": [{"segment": 1, "engine": answer["engine"], "model_version": None, "prompts": answer["prompts"]}],
    }
    bad = {**item, "assisted": [{"segment": 7, "engine": "region-growing", "prompts": 1}]}
    response = post_revision(client, case, {"items": [bad]}, base_revision=0)
    assert response.status_code == 400
    assert "assisted[0].segment" in str(response.json())
    assert not AnnotationRevision.objects.filter(annotation__case=case).exists()
    response = post_revision(
        client, case, {"items": [{**item, "assisted": [{"segment": 1, "engine": "x", "prompts": 0}]}]}, base_revision=0
    )
    assert response.status_code == 400 and "prompts" in str(response.json())

    response = post_revision(client, case, {"items": [item]}, base_revision=0)
    assert response.status_code == 201, response.content
    revision = Annotation.objects.get(case=case, reader=users["annotator"]).current_revision
    assert revision is not None
    (stored,) = [i for i in revision.items if i["label"] == "nodule_mask"]
    assert stored["assisted"] == [{"segment": 1, "engine": "region-growing", "model_version": None, "prompts": 1}]
    assert np.array_equal(load_mask(revision.masks.get()).astype(bool), decode_mask(answer["mask"], "m").astype(bool))
    shown = client.get(f"/api/v1/annotations/{revision.annotation_id}/revisions/{revision.number}/").json()
    (returned,) = [i for i in shown["items"] if i["label"] == "nodule_mask"]
    assert returned["assisted"] == stored["assisted"]


@contextmanager
def interactive_worker(storage: Path, log: Path) -> Iterator[None]:
    """A real Celery worker on the ``interactive`` queue (solo pool, as the compose service), ready when entered,
    stopped with its process group when left."""
    worker = subprocess.Popen(
        [CELERY, "-A", "config", "worker", "-Q", "interactive", "--pool=solo", "--without-gossip", "--without-mingle",
         "-l", "info"],
        cwd=ROOT, env=worker_env(storage), stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: "ready" in log.read_text(), 60, "the interactive worker to start", log)
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_running_interactive_worker_answers_and_keeps_the_volume_warm(
    hard_case: tuple[Case, SyntheticStudy],
    users: dict[str, User],
    client_for: Callable[[User], Client],
    isolated_storage: Path,
    tmp_path: Path,
    settings: Any,
) -> None:
    case, study = hard_case
    settings.INTERACTIVE_TIMEOUT_SECONDS = 20.0
    with interactive_worker(isolated_storage, tmp_path / "worker.log"):
        client = client_for(users["annotator"])
        click = next_click(study.mask == 1, None, spacing_of(study))
        assert click is not None
        first = ask(client, case, [click]).json()
        assert first["fallback"] is False and first["message"] is None
        assert first["warm"] is False  # the worker loaded the volume for this reader and series
        assert first["engine"] == "region-growing"
        truth = study.mask == 1
        assert dice(decode_mask(first["mask"], "m").astype(bool), truth) > 0.8
        second = ask(client, case, [click]).json()
        assert second["fallback"] is False
        assert second["warm"] is True  # the next prompt found it in the worker's prompt context
    assert Assignment.objects.filter(case=case).count() == 1


def test_a_prompt_may_name_only_its_own_projects_learned_model_and_defaults_to_the_active_one(
    hard_case: tuple[Case, SyntheticStudy], users: dict[str, User], client_for: Callable[[User], Client]
) -> None:
    """Another project's learned model was trained on labels this reader may not see: its name is refused like an
    unknown one. The project's own active interactive model is the default (here no worker runs, so the answer
    falls back to the model-free engine)."""
    from inference.interactive.names import engine_name
    from inference.models import ModelStatus, ModelVersion, TaskType

    case, study = hard_case
    other = cast(Project, ProjectFactory(slug="other-lab"))
    theirs = ModelVersion.objects.create(
        project=other, number=1, task_type=TaskType.INTERACTIVE, architecture="unet", status=ModelStatus.ACTIVE
    )
    ours = ModelVersion.objects.create(
        project=case.project, number=1, task_type=TaskType.INTERACTIVE, architecture="unet", status=ModelStatus.ACTIVE
    )
    client = client_for(users["annotator"])
    click = next_click(study.mask == 1, None, spacing_of(study))
    assert click is not None
    body = {"prompts": [{"kind": "point", "points": [list(click.points[0])]}]}
    url = f"/api/v1/cases/{case.pk}/interactive/"
    refused = client.post(url, data={**body, "engine": engine_name(theirs)}, content_type="application/json")
    assert refused.status_code == 400 and "unknown engine" in str(refused.json())
    assert engine_name(theirs) not in str(refused.json()).split("known:")[-1]
    assert engine_name(ours) in str(refused.json())
    answer = client.post(url, data=body, content_type="application/json").json()
    assert answer["fallback"] is True and answer["engine"] == "region-growing"
