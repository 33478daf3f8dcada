"""Training data: adjudicated and consensus labels only, the schema labels a model reads and writes,
the patient split and the examples a network learns from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus, Project
from annotation.services import load_mask
from inference.models import ModelVersion, TaskType
from inference.volumes import load_volume

if TYPE_CHECKING:
    from inference import engine

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


ADJUDICATED_ROLES = ("adjudicated", "consensus")  # panel decisions, then agreed cases' consensus
LABELLED_STATUSES = (CaseStatus.AGREED, CaseStatus.ADJUDICATED)


# --- Labels: which schema labels a model reads and writes -------------------------------------------------


def default_label_map(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema's first series mask (segment 1), first box, a number attribute of that box in mm (the
    diameter), and a study-level yes/no choice (presence)."""
    labels = schema["labels"]
    found: dict[str, Any] = {}
    for label in labels:
        if label["kind"] == "mask" and label["level"] == "series" and "mask_label" not in found:
            found.update(mask_label=label["key"], segment=label["segments"][0]["value"])
        if label["kind"] == "box" and "box_label" not in found:
            found.update(box_label=label["key"], box_dimensions=label.get("dimensions", 2))
        if label["kind"] == "single_choice" and label["level"] == "study" and "presence_label" not in found:
            keys = [c["key"] for c in label["choices"]]
            if {"yes", "no"} <= set(keys):
                found.update(presence_label=label["key"], presence_choices=["no", "yes"])
    if "box_label" in found:
        for label in labels:
            if (
                label["kind"] == "number"
                and found["box_label"] in label.get("applies_to", [])
                and (label.get("unit") or "") == "mm"
            ):
                found.update(diameter_label=label["key"], diameter_range=[label.get("min"), label.get("max")])
                break
    return found


# --- Training data: adjudicated and consensus labels only -----------------------------------------------


@dataclass
class LabelledCase:
    case: Case
    revision: AnnotationRevision | None
    truth: np.ndarray | None = None  # a demo model's known truth (synthetic studies) instead of a revision


def adjudicated_cases(project: Project) -> list[LabelledCase]:
    """Cases decided by the panel or agreed by the readers, each with its final label: the adjudicated
    revision where there is one, else the consensus. Never a single reader's reading."""
    annotations = (
        Annotation.objects.filter(
            case__project=project,
            case__status__in=LABELLED_STATUSES,
            role__in=ADJUDICATED_ROLES,
            reader__isnull=True,
            status=Annotation.Status.SUBMITTED,
            current_revision__isnull=False,
        )
        .select_related("case__study", "current_revision")
        .prefetch_related("current_revision__masks")
        .order_by("case_id", "role")  # "adjudicated" sorts before "consensus"
    )
    chosen: dict[int, LabelledCase] = {}
    for annotation in annotations:
        if annotation.case_id not in chosen:
            assert annotation.current_revision is not None
            chosen[annotation.case_id] = LabelledCase(annotation.case, annotation.current_revision)
    return list(chosen.values())


def _target_mask(revision: AnnotationRevision, label_map: dict[str, Any], shape: tuple[int, ...]) -> np.ndarray | None:
    masks = {m.sha256: m for m in revision.masks.all()}
    for item in revision.items:
        if item.get("label") == label_map.get("mask_label") and isinstance(item.get("mask"), dict):
            stored = masks.get(item["mask"].get("sha256"))
            if stored is not None:
                return (load_mask(stored) == int(label_map.get("segment", 1))).astype(np.uint8)
    for item in revision.items:
        if item.get("label") == label_map.get("presence_label") and item.get("value") == "no":
            return np.zeros(shape, dtype=np.uint8)  # a confirmed negative teaches the background
    return None


def _presence(revision: AnnotationRevision, label_map: dict[str, Any]) -> str | None:
    for item in revision.items:
        if item.get("label") == label_map.get("presence_label"):
            return str(item.get("value"))
    return None


def patient_split(cases: list[LabelledCase], *, seed: int, fraction: float) -> tuple[list[int], list[int]]:
    """Train and validation case ids, split by patient (every case of a patient on one side), from a seed."""
    patients = sorted({lc.case.study.patient_id or f"study:{lc.case.study_id}" for lc in cases})
    order = np.random.default_rng(seed).permutation(len(patients))
    n_val = 0 if len(patients) < 2 else max(1, round(len(patients) * fraction))
    held_out = {patients[i] for i in order[:n_val]}
    train: list[int] = []
    validation: list[int] = []
    for lc in cases:
        key = lc.case.study.patient_id or f"study:{lc.case.study_id}"
        (validation if key in held_out else train).append(lc.case.pk)
    return train, validation


def _example(version: ModelVersion, lc: LabelledCase, spec: dict[str, Any]) -> engine.Example | None:
    import torch

    from inference import engine

    volume = load_volume(lc.case)
    image = engine.preprocess(volume.array, volume.spacing, spec)
    if lc.truth is not None:
        mask: np.ndarray | None = (lc.truth > 0).astype(np.uint8)
        value: str | None = "yes" if lc.truth.any() else "no"
    else:
        assert lc.revision is not None
        mask = _target_mask(lc.revision, version.label_map, volume.array.shape)
        value = _presence(lc.revision, version.label_map)
    if version.task_type == TaskType.CLASSIFICATION:
        choices = version.label_map.get("presence_choices", ["no", "yes"])
        if value not in choices:
            return None
        return engine.Example(lc.case.pk, engine.classify_input(image, spec), np.asarray(choices.index(value)))
    if mask is None:
        return None
    target = engine.restore_shape(torch.as_tensor(mask[None], dtype=torch.float32), image.shape[1:])[0]
    grid = spec.get("spacing") or volume.spacing  # the image's own grid when not resampled
    spacing = (float(grid[0]), float(grid[1]), float(grid[2]))
    return engine.Example(lc.case.pk, image, (target.numpy() >= 0.5).astype(np.uint8), spacing)


def _examples(version: ModelVersion, cases: list[LabelledCase]) -> tuple[list[engine.Example], list[int]]:
    from inference import engine

    spec = engine.preprocessing_spec(version.preprocessing)
    examples, skipped = [], []
    for lc in cases:
        example = _example(version, lc, spec)
        if example is None:
            skipped.append(lc.case.pk)
        else:
            examples.append(example)
    return examples, skipped
