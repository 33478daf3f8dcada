"""Fixtures for the inference tests: a tiny UNet, cases with adjudicated labels, trained versions.

Everything runs on the CPU with a network of channels (4, 8, 16) on the 64 x 64 x 8 synthetic studies of
``tests/annotation/conftest.py``; the review workflow's own transition service moves cases to "agreed"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User

from annotation.labels import encode_mask, validate_values
from annotation.models import AnnotationRevision, Case, CaseStatus, Project
from annotation.selectors import study_geometry
from annotation.services import annotation_save_derived, current_schema
from imaging.synthetic import SyntheticStudy
from inference import services
from inference.models import InferenceSettings, ModelVersion
from jobs.models import Job
from jobs.services import run_job
from review.workflow import case_transition
from tests.annotation import conftest as annotation_fixtures
from tests.annotation.conftest import case_series, case_sops

admin = annotation_fixtures.admin
bare_project = annotation_fixtures.bare_project
client_for = annotation_fixtures.client_for
ingested_studies = annotation_fixtures.ingested_studies
reading_cases = annotation_fixtures.reading_cases
reading_project = annotation_fixtures.reading_project
users = annotation_fixtures.users

TINY_UNET = {"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0, "dropout": 0.1}
TINY_PREPROCESSING = {"roi_size": [8, 32, 32]}
TINY_TRAINING = {
    "epochs": 6,
    "learning_rate": 0.01,
    "batch_size": 4,
    "patch_size": [8, 32, 32],
    "samples_per_case": 4,
    "validation_fraction": 0.34,
}


@pytest.fixture
def tiny_project(reading_project: Project) -> Project:
    InferenceSettings.objects.create(
        project=reading_project,
        architecture_params=TINY_UNET,
        preprocessing=TINY_PREPROCESSING,
        training_params=TINY_TRAINING,
        seed=7,
    )
    return reading_project


def truth_values(case: Case, study: SyntheticStudy) -> dict[str, Any]:
    """The synthetic study's ground truth as label values: presence, the mask, one box on its largest slice."""
    mask = (study.mask > 0).astype(np.uint8)
    items: list[dict[str, Any]] = [
        {"label": "nodule_present", "value": "yes" if mask.any() else "no"},
        {
            "label": "nodule_mask",
            "series_instance_uid": case_series(case).series_instance_uid,
            "mask": encode_mask(mask),
        },
    ]
    if mask.any():
        z = int(np.argmax(mask.reshape(mask.shape[0], -1).sum(axis=1)))
        ys, xs = np.nonzero(mask[z])
        box = {"x": int(xs.min()), "y": int(ys.min()), "width": int(np.ptp(xs)) + 1, "height": int(np.ptp(ys)) + 1}
        items += [
            {"label": "nodule_box", "id": "n1", "sop_instance_uid": case_sops(case)[z], "geometry": box},
            {"label": "nodule_type", "region": "n1", "value": "solid"},
            {"label": "diameter", "region": "n1", "value": 6.0},
        ]
    return {"items": items}


def agree(case: Case, study: SyntheticStudy, *, role: str = "consensus") -> AnnotationRevision:
    """Store the truth as the case's consensus (or adjudicated) label and move the case to agreed."""
    schema = current_schema(case.project)
    validated = validate_values(schema.definition, truth_values(case, study), study_geometry(case), complete=True)
    revision = annotation_save_derived(
        case=case, role=role, items=validated.items, masks=validated.masks, schema=schema
    )
    case_transition(case=case, to=CaseStatus.AWAITING_CROSS_VERIFICATION, actor=None, reason="test: read")
    if role == "adjudicated":
        case_transition(case=case, to=CaseStatus.DISPUTED, actor=None, reason="test")
        case_transition(case=case, to=CaseStatus.IN_PANEL, actor=None, reason="test")
        case_transition(case=case, to=CaseStatus.ADJUDICATED, actor=None, reason="test: panel")
    else:
        case_transition(case=case, to=CaseStatus.AGREED, actor=None, reason="test: agreed")
    return revision


@pytest.fixture
def agreed_cases(
    tiny_project: Project, reading_cases: list[Case], ingested_studies: list[SyntheticStudy]
) -> list[Case]:
    for case, study in zip(reading_cases, ingested_studies, strict=True):
        agree(case, study)
    return reading_cases


def train(project: Project, actor: User | None = None, **overrides: Any) -> tuple[Job, ModelVersion]:
    """Start training and run its job here, synchronously, through the real job lifecycle."""
    job = services.training_start(project=project, actor=actor, **overrides)
    run_job(job.pk, services.train_handler)
    job.refresh_from_db()
    version = ModelVersion.objects.get(training_job=job)
    return job, version


@pytest.fixture
def trained(agreed_cases: list[Case], users: dict[str, User]) -> Callable[..., tuple[Job, ModelVersion]]:
    def make(**overrides: Any) -> tuple[Job, ModelVersion]:
        return train(agreed_cases[0].project, users["manager"], **overrides)

    return make


def register_untrained(project: Project) -> ModelVersion:
    """An active version with freshly initialised weights, stored and hashed like a trained one: for tests
    about files, geometry and plumbing, where what the model has learnt does not matter."""
    from inference import engine, registry

    config = services.settings_for(project)
    version = registry.model_version_create(
        project=project,
        task_type="segmentation",
        architecture="unet",
        architecture_params={**engine.DEFAULT_ARCHITECTURE_PARAMS["unet"], **config.architecture_params},
        preprocessing=engine.preprocessing_spec(config.preprocessing),
        label_map=services.default_label_map(current_schema(project).definition),
        training_params={},
        parent=None,
        created_by=None,
    )
    model = engine.build_network("unet", version.architecture_params)
    data = engine.weights_to_bytes(model)
    name, digest = registry.store_weights(version, data)
    version = registry.model_version_finish_training(
        version=version, weights_file=name, weights_sha256=digest, weights_bytes=len(data),
        snapshot={}, metrics={}, history=[], device="cpu",
    )  # fmt: skip
    return registry.model_version_promote(version=version, actor=None, reason="test set-up")


@pytest.fixture
def untrained(tiny_project: Project) -> ModelVersion:
    return register_untrained(tiny_project)
