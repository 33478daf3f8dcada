"""The learned interactive engine (issue 17): trained by the training job on adjudicated masks with simulated
clicks, gated like every model, registered per version; automatic training when a case is decided; demo models.

All on the CPU with the tiny project of ``conftest`` (three 64 x 64 x 8 synthetic studies, one nodule each)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth.models import User

from annotation.models import AnnotationRevision, Case, Project
from config.errors import NotFoundError
from imaging.synthetic import SyntheticStudy, generate_ct_study
from inference import registry, services
from inference.interactive import learned
from inference.interactive.base import Prompt, PromptRequest, engine_named, engine_names
from inference.interactive.simulate import box_prompt
from inference.models import ModelStatus, ModelVersion, TaskType
from jobs.models import Job, JobStatus
from jobs.services import run_job
from tests.annotation.conftest import COLUMNS, ROWS, SLICES, STUDY_SEEDS
from tests.inference.conftest import agree, train

pytestmark = pytest.mark.django_db

# The stated bar: one click in the middle of an unseen nodule gives at least this Dice against its truth.
ONE_CLICK_DICE_BAR = 0.7


def test_interactive_training_on_adjudicated_masks_is_promoted_only_if_it_beats_the_active_one(
    agreed_cases: list[Case], users: dict[str, User]
) -> None:
    project = agreed_cases[0].project
    # v1 does not learn (learning rate 0): promoted only as the first interactive model.
    job1, v1 = train(project, users["manager"], task_type="interactive", training_params={"learning_rate": 0.0})
    assert job1.status == JobStatus.SUCCEEDED, job1.error
    assert v1.task_type == TaskType.INTERACTIVE and v1.status == ModelStatus.ACTIVE and job1.result["promoted"]
    # image + 2 guidance channels + the previous mask (DeepEdit)
    assert v1.architecture == "unet" and v1.architecture_params["in_channels"] == 4
    assert v1.metrics["metric"] == "dice" and v1.metrics["clicks"] == 3 and v1.metrics["cases"] >= 1
    roles = set(
        AnnotationRevision.objects.filter(pk__in=v1.training_snapshot["revisions"]).values_list(
            "annotation__role", flat=True
        )
    )
    assert roles == {"consensus"}  # adjudicated labels only, never a reader's reading

    # v2 learns: on the same held-out cases it beats v1 and replaces it.
    started = time.perf_counter()
    job2, v2 = train(project, users["manager"], task_type="interactive")
    seconds = time.perf_counter() - started
    v1.refresh_from_db()
    assert job2.status == JobStatus.SUCCEEDED, job2.error
    comparison = job2.result["comparison"]
    assert comparison["candidate"] > comparison["active"], comparison
    assert (v2.status, v1.status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)
    assert v2.training_snapshot["validation"] == v1.training_snapshot["validation"]  # same seed, same split
    print(f"interactive training: {seconds:.1f} s on CPU, held-out {v2.metrics}")

    # v3 does not learn: it loses to v2 on the same cases and stays a candidate.
    job3, v3 = train(
        project, users["manager"], task_type="interactive", training_params={"learning_rate": 0.0}, transfer=False
    )
    v2.refresh_from_db()
    assert job3.status == JobStatus.SUCCEEDED and job3.result["promoted"] is False
    assert job3.result["comparison"]["candidate"] < job3.result["comparison"]["active"]
    assert "not better" in job3.result["comparison"]["reason"]
    assert (v3.status, v2.status) == (ModelStatus.CANDIDATE, ModelStatus.ACTIVE)

    # One engine per trained version, for the serving workers.
    names = learned.register_versions(project.pk)
    assert sorted(names) == sorted(f"learned:{project.slug}/v{v.number}" for v in (v1, v2, v3))
    assert set(names) <= set(engine_names())
    # An interactive model needs prompts: it never pre-labels or scores a whole study.
    assert registry.active_version(project) is None
    with pytest.raises(NotFoundError):
        services.prelabel_start(project=project, actor=None)


def _one_click(version: ModelVersion, study: SyntheticStudy) -> tuple[float, dict[str, Any]]:
    engine = engine_named(learned.register_version(version))
    lesion = study.lesions[0]
    click = tuple(int(round(c)) for c in lesion.center_voxel)
    request = PromptRequest(
        volume=study.hu.astype(np.float32),
        spacing=(study.slice_spacing, *study.pixel_spacing),
        prompts=[Prompt(kind="point", points=(click,))],  # type: ignore[arg-type]
    )
    proposal = engine.propose(request)
    assert proposal.engine == f"learned:{version.project.slug}/v{version.number}"
    assert proposal.model_version == version.label and proposal.mask.shape == study.hu.shape
    truth = study.mask == lesion.index
    return learned.dice(proposal.mask, truth), proposal.details


def test_the_learned_engine_outlines_an_unseen_nodule_from_one_click(
    agreed_cases: list[Case], users: dict[str, User]
) -> None:
    job, version = train(agreed_cases[0].project, users["manager"], task_type="interactive")
    assert job.status == JobStatus.SUCCEEDED, job.error
    scores = []
    for seed in (301, 302, 303):  # studies no model has seen
        study = generate_ct_study(seed=seed, rows=ROWS, columns=COLUMNS, slices=SLICES, n_lesions=1)
        score, details = _one_click(version, study)
        scores.append(score)
        # The network ran on a crop around the click, not on the whole volume.
        region = details["region"]
        assert [b - a for a, b in region] != list(study.hu.shape) and details["voxels"] > 0
    print(f"one-click Dice on unseen studies: {[round(s, 3) for s in scores]}")
    assert float(np.mean(scores)) >= ONE_CLICK_DICE_BAR, scores

    # A box drawn on the nodule's largest slice outlines it through the slices, not on that one slice only.
    engine = engine_named(learned.register_version(version))
    boxed = []
    for seed in (301, 302, 303):
        study = generate_ct_study(seed=seed, rows=ROWS, columns=COLUMNS, slices=SLICES, n_lesions=1)
        truth = study.mask == study.lesions[0].index
        spacing = (study.slice_spacing, *study.pixel_spacing)
        request = PromptRequest(volume=study.hu.astype(np.float32), spacing=spacing, prompts=[box_prompt(truth)])
        mask = engine.propose(request).mask
        assert int(mask.any(axis=(1, 2)).sum()) > 1 and int(truth.any(axis=(1, 2)).sum()) > 1
        boxed.append(learned.dice(mask, truth))
    print(f"box-start Dice on unseen studies: {[round(s, 3) for s in boxed]}")
    assert float(np.mean(boxed)) >= ONE_CLICK_DICE_BAR, boxed


def test_an_adjudicated_mask_is_learnt_one_lesion_at_a_time() -> None:
    # Two nodules in one mask are two lesions: a click on one teaches that one's outline only.
    target = np.zeros((8, 32, 32), dtype=np.uint8)
    target[2:5, 4:9, 4:9] = 1
    target[3:6, 20:26, 20:26] = 1
    lesions = learned.lesions_of(target)
    assert [int(lesion.sum()) for lesion in lesions] == [75, 108]
    image, label = learned._patch_around(target.astype(np.float32), lesions[0], [8, 16, 16], np.random.default_rng(0))
    assert image.shape == label.shape == (1, 8, 16, 16)
    assert int(label.sum()) == 75  # the whole first lesion and nothing of the second


def test_a_negative_click_alone_or_no_prompt_proposes_nothing_new(
    agreed_cases: list[Case], users: dict[str, User]
) -> None:
    _, version = train(
        agreed_cases[0].project, users["manager"], task_type="interactive", training_params={"epochs": 1}
    )
    engine = engine_named(learned.register_version(version))
    volume = np.full((SLICES, ROWS, COLUMNS), -800.0, dtype=np.float32)
    empty = engine.propose(PromptRequest(volume=volume, spacing=(1.0, 1.0, 1.0), prompts=[]))
    assert not empty.mask.any() and empty.details["prompts"] == 0


# --- Automatic retraining when a case is decided --------------------------------------------------------------


def _queued_checks(callbacks: list[Callable[[], Any]]) -> list[Callable[[], Any]]:
    return [c for c in callbacks if c.__qualname__ == "on_case_labelled.<locals>.send"]


def test_a_case_becoming_adjudicated_queues_the_training_check_and_training_starts_once(
    tiny_project: Project,
    reading_cases: list[Case],
    ingested_studies: list[SyntheticStudy],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    import redis

    from inference import tasks

    services.inference_settings_update(project=tiny_project, auto_train_every=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        agree(reading_cases[0], ingested_studies[0])
        agree(reading_cases[1], ingested_studies[1], role="adjudicated")
        agree(reading_cases[2], ingested_studies[2])
    checks = _queued_checks(callbacks)
    assert len(checks) == 3  # one per decided case, queued after the commit only

    # The queued callback sends the Celery task to the real broker.
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = broker.llen("default")
    checks[0]()
    assert broker.llen("default") == before + 1
    message = json.loads(broker.lindex("default", 0))  # type: ignore[arg-type]
    assert message["headers"]["task"] == "inference.tasks.autotrain_check"
    assert message["headers"]["argsrepr"] == f"({tiny_project.pk},)"

    # Each queued check runs the task; the first starts training, every other one (and a rerun) starts nothing.
    results = [tasks.autotrain_check(tiny_project.pk) for _ in range(len(checks) + 1)]
    assert results[0] is not None and results[1:] == [None] * len(checks)
    jobs = Job.objects.filter(kind="train", project=tiny_project)
    assert jobs.count() == 1 and jobs.get().pk == results[0] and jobs.get().queue == "gpu"


def test_a_decided_case_queues_nothing_where_automatic_training_is_off(
    tiny_project: Project,
    reading_cases: list[Case],
    ingested_studies: list[SyntheticStudy],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        agree(reading_cases[0], ingested_studies[0])
    assert _queued_checks(callbacks) == []


# --- Demo models ----------------------------------------------------------------------------------------------------


def test_demo_models_learn_from_synthetic_truth_and_give_way_to_models_of_adjudicated_labels(
    tiny_project: Project,
    reading_cases: list[Case],
    ingested_studies: list[SyntheticStudy],
    users: dict[str, User],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    studies = [dict(seed=s, rows=ROWS, columns=COLUMNS, slices=SLICES, n_lesions=1) for s in STUDY_SEEDS]
    with django_capture_on_commit_callbacks(execute=False):
        jobs = services.demo_models_start(project=tiny_project, studies=studies)
    assert [j.queue for j in jobs] == ["gpu", "gpu"]  # background jobs: the caller does not wait
    assert services.demo_models_start(project=tiny_project, studies=studies) == []  # a second start adds nothing
    for job in jobs:
        assert run_job(job.pk, services.train_handler) == JobStatus.SUCCEEDED
    demos = {v.task_type: v for v in ModelVersion.objects.filter(project=tiny_project)}
    assert set(demos) == {"segmentation", "interactive"}
    for version in demos.values():
        assert version.demo and version.status == ModelStatus.ACTIVE
        assert version.training_snapshot["source"] == "synthetic known truth (demo)"
        assert version.training_snapshot["revisions"] == []  # no reader's label was used
    # The demo segmentation model pre-labels the demo cases.
    prelabel = Job.objects.get(kind="prelabel", project=tiny_project)
    assert prelabel.params["model_version"] == demos["segmentation"].pk

    # The first model of adjudicated labels replaces the demo model, even one that learnt nothing...
    for case, study in zip(reading_cases, ingested_studies, strict=True):
        agree(case, study)
    job, real = train(tiny_project, users["manager"], training_params={"learning_rate": 0.0, "epochs": 1})
    demos["segmentation"].refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and not real.demo and real.parent is None  # no demo weights
    assert (real.status, demos["segmentation"].status) == (ModelStatus.ACTIVE, ModelStatus.RETIRED)
    assert "replaces demo model" in job.result["comparison"]["reason"]

    # ...and a demo model is never promoted over it, however good.
    demo_job = services.training_start(project=tiny_project, actor=None, transfer=False, demo_truth=studies)
    run_job(demo_job.pk, services.train_handler)
    demo_job.refresh_from_db()
    late = ModelVersion.objects.get(training_job=demo_job)
    assert late.demo and late.status == ModelStatus.CANDIDATE
    assert "never promoted over" in demo_job.result["comparison"]["reason"]


def test_a_version_from_before_the_previous_mask_channel_still_serves_prompts() -> None:
    """Versions trained with three input channels (image + guidance, before DeepEdit's previous-mask channel) keep
    loading and answering: the input is built from the network's own channel count and the previous mask is not
    fed to a network that never learnt it; a network of any other width is refused by name."""
    from inference import engine as numeric

    study = generate_ct_study(seed=301, rows=ROWS, columns=COLUMNS, slices=SLICES, n_lesions=1)
    click = tuple(int(round(c)) for c in study.lesions[0].center_voxel)
    previous = study.mask > 0
    for channels, sees_previous in ((3, False), (4, True)):
        network = numeric.build_network("unet", {**learned.DEFAULT_ARCHITECTURE_PARAMS, "in_channels": channels})
        served = learned.LearnedEngine(
            name="learned:old/v1", version="v1", model=network, preprocessing={}, patch=[8, 32, 32]
        )
        proposal = served.propose(
            PromptRequest(
                volume=study.hu.astype(np.float32),
                spacing=(study.slice_spacing, *study.pixel_spacing),
                prompts=[Prompt(kind="point", points=(click,))],  # type: ignore[arg-type]
                previous=previous,
            )
        )
        assert proposal.mask.shape == study.hu.shape
        assert proposal.details["previous_mask_channel"] is sees_previous
    with pytest.raises(ValueError, match="3 or 4 channels, not 2"):
        learned.network_input(np.zeros((1, 4, 4, 4), dtype=np.float32), learned._guidance([(1, 1, 1)], []), channels=2)
