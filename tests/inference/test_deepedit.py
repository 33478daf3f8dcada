"""The learned engine refines its own proposal (issue 17, DeepEdit-style): the network sees the previous mask as a
fourth input channel, so a corrective click through the API improves the proposal it was sent.

The learned engine is trained by the real training job on adjudicated hard synthetic studies, served by a real
``interactive`` worker, and asked through POST /api/v1/cases/<id>/interactive/ as the reader's browser asks: the
first click at the centre of the nodule, the second at the centre of the largest remaining error, with the first
proposal as ``previous``. Before the fourth channel (image + guidance only) the second click redrew the nodule from
two clicks and Dice did not improve on this study."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from annotation.models import Case, Project
from annotation.services import assignment_create, cases_create
from imaging.services.ingest import STORED, IncomingFile, ingest_files
from imaging.synthetic import SyntheticStudy, generate_ct_study
from inference.interactive import learned
from inference.interactive.names import engine_name
from inference.interactive.simulate import dice, next_click
from inference.models import InferenceSettings, ModelStatus
from jobs.models import JobStatus
from tests.conftest import dataset_bytes
from tests.factories import place_studies
from tests.inference.conftest import agree, train
from tests.inference.test_interactive import ask, interactive_worker, proposal_of, spacing_of

TRAINING_SEEDS = (500, 501, 502, 503)  # small hard studies to adjudicate and train on
HELD_OUT_SEEDS = (700, 701, 702)  # small hard studies no model has seen, two nodules each
# A CPU-sized training with a fixed number of epochs (no time budget: the same network whatever the load): a tiny
# UNet on four small hard studies, in about a minute of a quiet core.
NETWORK = {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0, "dropout": 0.1}
TRAINING = {
    "epochs": 8,
    "learning_rate": 0.01,
    "patch_size": [8, 32, 32],
    "validation_fraction": 0.25,
    "samples_per_case": 4,
}


def small_hard_study(seed: int) -> SyntheticStudy:
    return generate_ct_study(seed=seed, rows=64, columns=64, slices=16, n_lesions=2, difficulty="hard")


def ingest_case(project: Project, study: SyntheticStudy) -> Case:
    files = [IncomingFile(f"{study.study_uid}-{k:03d}.dcm", dataset_bytes(ds)) for k, ds in enumerate(study.datasets())]
    assert [f.status for f in ingest_files(files).files] == [STORED] * len(files)
    place_studies(project, [study.study_uid])
    (case,) = cases_create(project=project, study_uids=[study.study_uid])
    return case


@pytest.mark.django_db(transaction=True)
def test_a_refinement_click_improves_the_learned_engines_proposal(
    reading_project: Project,
    users: dict[str, User],
    client_for: Callable[[User], Client],
    isolated_storage: Path,
    tmp_path: Path,
    settings: Any,
) -> None:
    project = reading_project
    InferenceSettings.objects.create(project=project, seed=7)
    for seed in TRAINING_SEEDS:
        study = small_hard_study(seed)
        agree(ingest_case(project, study), study, role="adjudicated")
    held_out = []
    for seed in HELD_OUT_SEEDS:
        study = small_hard_study(seed)
        case = ingest_case(project, study)
        assignment_create(case=case, user=users["annotator"], role="first_reader", assigned_by=users["manager"])
        held_out.append((case, study))
    job, version = train(
        project, users["manager"], task_type="interactive", architecture_params=NETWORK, training_params=TRAINING
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert version.status == ModelStatus.ACTIVE
    assert version.architecture_params["in_channels"] == learned.IN_CHANNELS == 4  # image, +/- guidance, previous
    name = engine_name(version)

    settings.INTERACTIVE_TIMEOUT_SECONDS = 60.0  # the worker loads torch and the network on its first prompt
    first_scores, second_scores, unchanged = [], [], []
    with interactive_worker(isolated_storage, tmp_path / "worker.log"):
        client = client_for(users["annotator"])
        for case, study in held_out:
            spacing = spacing_of(study)
            for lesion in study.lesions:
                truth = study.mask == lesion.index
                first = next_click(truth, None, spacing)
                assert first is not None
                one = ask(client, case, [first], engine=name)
                assert one.json()["engine"] == name and one.json()["fallback"] is False, one.json()
                proposal = proposal_of(one)
                second = next_click(truth, proposal, spacing)
                assert second is not None
                two = ask(client, case, [first, second], proposal, engine=name)
                assert two.json()["engine"] == name and two.json()["prompts"] == 2
                refined = proposal_of(two)
                first_scores.append(dice(proposal, truth))
                second_scores.append(dice(refined, truth))
                # The same two clicks without the proposal they refine: the network draws from the clicks alone.
                unchanged.append(bool((proposal_of(ask(client, case, [first, second], engine=name)) == refined).all()))
    print(f"learned engine, Dice after click 1: {np.round(first_scores, 3)}, click 2: {np.round(second_scores, 3)}")
    assert float(np.mean(first_scores)) > 0.5, first_scores  # a trained network: the first click outlines
    # The corrective click improves the proposal, on average over the six held-out nodules (juxtavascular,
    # juxtapleural, ground-glass and solid ones).
    assert float(np.mean(second_scores)) > float(np.mean(first_scores)), (first_scores, second_scores)
    # ... because the network refines the proposal it was sent (its fourth channel): without it, the answer differs.
    assert not all(unchanged)
