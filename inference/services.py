"""Inference work: settings, training on adjudicated labels, pre-labeling, evaluation, active-learning scores.

Each ``*_start`` service creates a job (queue ``gpu``); each ``*_handler`` is what the thin Celery task in
``inference.tasks`` runs through ``jobs.services.run_job``. Handlers write their results in one transaction
at the end (training, scoring) or per case with an upsert on (case, model version) (pre-labeling), so a
worker killed midway leaves nothing half-written and a second run produces only what is missing."""

from __future__ import annotations

import gzip
import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q

from annotation.labels import encode_mask
from annotation.models import Annotation, AnnotationRevision, Case, CaseStatus, Project
from annotation.services import annotation_save_machine, case_set_priority, current_schema, load_mask
from config.errors import ApplicationError, ConflictError, NotFoundError
from config.types import User
from inference import registry
from inference.models import (
    Architecture,
    CaseScore,
    InferenceSettings,
    ModelStatus,
    ModelVersion,
    Prediction,
    Strategy,
    TaskType,
)
from inference.volumes import GeometryError, Volume, load_volume
from jobs.messages import READING_CASES, job_text
from jobs.models import Job, JobKind, JobStatus
from jobs.services import JobFailed, Progress, job_create

if TYPE_CHECKING:
    import torch

    from inference import engine

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.

logger = logging.getLogger(__name__)

ADJUDICATED_ROLES = ("adjudicated", "consensus")  # panel decisions, then agreed cases' consensus
LABELLED_STATUSES = (CaseStatus.AGREED, CaseStatus.ADJUDICATED)


# --- Settings -------------------------------------------------------------------------------------------


def settings_for(project: Project) -> InferenceSettings:
    found, _ = InferenceSettings.objects.get_or_create(project=project)
    return found


SETTINGS_FIELDS = (
    "auto_train_every",
    "strategy",
    "prelabel_on_ingest",
    "task_type",
    "architecture",
    "architecture_params",
    "preprocessing",
    "training_params",
    "seed",
)


@transaction.atomic
def inference_settings_update(*, project: Project, **changes: Any) -> InferenceSettings:
    current = InferenceSettings.objects.select_for_update().filter(project=project).first() or settings_for(project)
    unknown = sorted(set(changes) - set(SETTINGS_FIELDS))
    if unknown:
        raise ApplicationError(f"Unknown inference setting(s): {', '.join(unknown)}")
    for name, value in changes.items():
        setattr(current, name, value)
    _check_architecture(current.task_type, current.architecture)
    current.save(update_fields=[*changes, "updated_at"])
    return current


def _check_architecture(task_type: str, architecture: str) -> None:
    if task_type == TaskType.CLASSIFICATION and architecture != Architecture.DENSENET121:
        raise ApplicationError(f"A classification model needs densenet121, not {architecture}", code="bad_architecture")
    if task_type != TaskType.CLASSIFICATION and architecture == Architecture.DENSENET121:
        raise ApplicationError(f"densenet121 classifies; a {task_type} model needs unet or segresnet")


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
    revision: AnnotationRevision


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
    if version.task_type == TaskType.CLASSIFICATION:
        value = _presence(lc.revision, version.label_map)
        choices = version.label_map.get("presence_choices", ["no", "yes"])
        if value not in choices:
            return None
        return engine.Example(lc.case.pk, engine.classify_input(image, spec), np.asarray(choices.index(value)))
    mask = _target_mask(lc.revision, version.label_map, volume.array.shape)
    if mask is None:
        return None
    target = engine.restore_shape(torch.as_tensor(mask[None], dtype=torch.float32), image.shape[1:])[0]
    return engine.Example(lc.case.pk, image, (target.numpy() >= 0.5).astype(np.uint8))


# --- Training --------------------------------------------------------------------------------------------


def model_versions_reconcile(project: Project) -> int:
    """Mark failed the versions whose training job ended without them (a worker lost too many times,
    a cancelled job): they are never promoted. Returns how many."""
    stuck = ModelVersion.objects.filter(
        project=project,
        status=ModelStatus.TRAINING,
        training_job__status__in=[JobStatus.FAILED, JobStatus.CANCELLED],
    ).select_related("training_job")
    count = 0
    for version in stuck:
        assert version.training_job is not None
        reason = version.training_job.error or f"training job {version.training_job.status}"
        if registry.model_version_fail(version=version, reason=reason) is not None:
            count += 1
    return count


@transaction.atomic
def training_start(
    *,
    project: Project,
    actor: User | None,
    task_type: str | None = None,
    architecture: str | None = None,
    architecture_params: dict[str, Any] | None = None,
    preprocessing: dict[str, Any] | None = None,
    training_params: dict[str, Any] | None = None,
    seed: int | None = None,
    transfer: bool = True,
) -> Job:
    """A new version in status "training" and its job on the GPU queue. The parent (transfer learning)
    is the active version of the same task and architecture, when there is one."""
    from inference import engine

    model_versions_reconcile(project)
    config = settings_for(project)
    task = task_type or config.task_type
    arch = architecture or config.architecture
    if task not in TaskType.values:
        raise ApplicationError(f"Unknown task type {task!r}; expected one of {', '.join(TaskType.values)}")
    if arch not in Architecture.values:
        raise ApplicationError(f"Unknown architecture {arch!r}; expected one of {', '.join(Architecture.values)}")
    _check_architecture(task, arch)
    arch_params = {
        **engine.DEFAULT_ARCHITECTURE_PARAMS[arch],
        **(config.architecture_params if arch == config.architecture else {}),
        **(architecture_params or {}),
    }
    spec = engine.preprocessing_spec({**config.preprocessing, **(preprocessing or {})})
    params = {**engine.DEFAULT_TRAINING, **config.training_params, **(training_params or {})}
    params["seed"] = int(seed if seed is not None else config.seed)
    label_map = default_label_map(current_schema(project).definition)
    if task != TaskType.CLASSIFICATION and "mask_label" not in label_map:
        raise ApplicationError(f"The schema of {project.slug!r} has no series mask label to train a {task} model on")
    if task == TaskType.CLASSIFICATION and "presence_label" not in label_map:
        raise ApplicationError(f"The schema of {project.slug!r} has no study-level yes/no label to classify")
    try:
        engine.build_network(arch, arch_params)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ApplicationError(
            f"Architecture parameters do not build a {arch}: {exc}", code="bad_architecture"
        ) from exc
    if arch == Architecture.DENSENET121 and min(spec["input_size"]) < 32:
        raise ApplicationError(
            f"densenet121 halves its input five times: input_size {spec['input_size']} needs at least 32 per axis"
        )
    parent = registry.active_version(project, task) if transfer else None
    if parent is not None and (parent.architecture != arch or parent.architecture_params != arch_params):
        parent = None  # transfer needs the same network
    version = registry.model_version_create(
        project=project,
        task_type=task,
        architecture=arch,
        architecture_params=arch_params,
        preprocessing=spec,
        label_map=label_map,
        training_params=params,
        parent=parent,
        created_by=actor,
    )
    job = job_create(
        kind=JobKind.TRAIN,
        task_name="inference.tasks.train",
        project=project,
        created_by=actor,
        params={"model_version": version.pk},
        queue="gpu",
    )
    version.training_job = job
    version.save(update_fields=["training_job"])
    return job


def _version_for_job(job: Job) -> ModelVersion:
    version = (
        ModelVersion.objects.select_related("project", "parent").filter(pk=job.params.get("model_version")).first()
    )
    if version is None:
        raise JobFailed(f"Model version {job.params.get('model_version')} does not exist")
    return version


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


def _metric_name(version: ModelVersion) -> str:
    return "accuracy" if version.task_type == TaskType.CLASSIFICATION else "dice"


def _evaluate(
    version: ModelVersion, model: torch.nn.Module, examples: list[engine.Example], device: torch.device
) -> dict[str, Any]:
    from inference import engine

    if version.task_type == TaskType.CLASSIFICATION:
        return engine.evaluate_classification(model, examples, device=device)
    spec = engine.preprocessing_spec(version.preprocessing)
    return engine.evaluate_segmentation(model, examples, roi_size=spec["roi_size"], device=device)


def train_handler(job: Job, progress: Progress) -> dict[str, Any]:
    version = _version_for_job(job)
    try:
        return _train(job, version, progress)
    except (JobFailed, ApplicationError, GeometryError) as exc:
        registry.model_version_fail(version=version, reason=exc.message)
        raise
    except Exception as exc:
        from django.db import OperationalError

        from jobs.services import JobCancelled, TransientJobError

        # Retried (transient, database away) or cancelled jobs keep the version as it is; the reconcile
        # step fails it once its job has ended without it.
        if not isinstance(exc, TransientJobError | OperationalError | JobCancelled):
            registry.model_version_fail(version=version, reason=f"{type(exc).__name__}: {exc}")
        raise


def _train(job: Job, version: ModelVersion, progress: Progress) -> dict[str, Any]:
    from inference import engine

    if version.status != ModelStatus.TRAINING:
        raise JobFailed(f"Model version {version.number} is {version.status}; only a version in training is trained")
    device, device_note = engine.pick_device()
    params = version.training_params
    seed = int(params.get("seed", 0))
    labelled = adjudicated_cases(version.project)
    if not labelled:
        raise JobFailed(
            f"Project {version.project.slug!r} has no adjudicated or agreed cases to train on "
            "(training uses adjudicated labels only)"
        )
    progress(message=job_text(READING_CASES, device=device_note, n=len(labelled)))
    train_ids, val_ids = patient_split(labelled, seed=seed, fraction=float(params["validation_fraction"]))
    by_id = {lc.case.pk: lc for lc in labelled}
    train_examples, skipped_train = _examples(version, [by_id[i] for i in train_ids])
    val_examples, skipped_val = _examples(version, [by_id[i] for i in val_ids])
    if not train_examples:
        raise JobFailed(
            f"None of the {len(labelled)} adjudicated case(s) has a {version.label_map.get('mask_label') or 'label'} "
            "the model can learn from"
        )
    model = engine.build_network(
        version.architecture, version.architecture_params, out_channels=registry.out_channels(version)
    )
    if version.parent is not None:
        model = registry.load_network(version.parent)  # transfer: start from the active version's weights
    spec = engine.preprocessing_spec(version.preprocessing)
    epochs = int(params["epochs"])

    def on_epoch(row: dict[str, Any]) -> None:
        progress(
            done=row["epoch"],
            total=epochs,
            epoch=row["epoch"],
            loss=row["loss"],
            metric=row.get("val_dice", row.get("val_accuracy")),
            message=device_note,
            history=row,
        )

    if version.task_type == TaskType.CLASSIFICATION:
        history, _ = engine.train_classification(
            model, train_examples, val_examples, params=params, device=device, seed=seed, on_epoch=on_epoch
        )
    else:
        history, _ = engine.train_segmentation(
            model,
            train_examples,
            val_examples,
            params=params,
            roi_size=spec["roi_size"],
            device=device,
            seed=seed,
            on_epoch=on_epoch,
        )
    metric_name = _metric_name(version)
    final = _evaluate(version, model, val_examples, device) if val_examples else {metric_name: None, "cases": 0}
    comparison = _compare_with_active(version, val_examples, final, device)
    data = engine.weights_to_bytes(model)
    name, digest = registry.store_weights(version, data)
    snapshot = {
        "train": [e.case_id for e in train_examples],
        "validation": [e.case_id for e in val_examples],
        "skipped_without_label": skipped_train + skipped_val,
        "revisions": sorted(by_id[e.case_id].revision.pk for e in [*train_examples, *val_examples]),
        "seed": seed,
        "split": "by patient",
    }
    metrics = {"metric": metric_name, "value": final.get(metric_name), **final, "comparison": comparison}
    with transaction.atomic():  # everything the run produced, at once
        version = registry.model_version_finish_training(
            version=version,
            weights_file=name,
            weights_sha256=digest,
            weights_bytes=len(data),
            snapshot=snapshot,
            metrics=metrics,
            history=history,
            device=str(device),
        )
        promoted = False
        if comparison["promote"]:
            registry.model_version_promote(version=version, actor=None, reason=comparison["reason"], metrics=comparison)
            promoted = True
    return {
        "model_version": version.pk,
        "number": version.number,
        "device": str(device),
        "device_note": device_note,
        "metric": metric_name,
        "value": final.get(metric_name),
        "promoted": promoted,
        "comparison": comparison,
        "train_cases": len(train_examples),
        "validation_cases": len(val_examples),
    }


def _compare_with_active(
    version: ModelVersion, val_examples: list[engine.Example], final: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    """Promote when the candidate beats the active version on the same held-out cases (the first version
    of a task is promoted when it has a validation result at all)."""

    metric_name = _metric_name(version)
    value = final.get(metric_name)
    if value is None:
        return {"promote": False, "reason": "no held-out cases: a manager may promote by hand"}
    active = registry.active_version(version.project, version.task_type)
    if active is None:
        return {
            "promote": True,
            "reason": f"first {version.task_type} model: {metric_name} {value:.4f} "
            f"on {final['cases']} held-out case(s)",
            "candidate": value,
            "active": None,
        }
    try:
        active_model = registry.load_network(active)
    except registry.WeightsError as exc:
        return {"promote": False, "reason": f"active version unusable for comparison: {exc.message}"}
    baseline = _evaluate(active, active_model, val_examples, device)[metric_name]
    better = value > baseline
    return {
        "promote": better,
        "reason": (
            f"{metric_name} {value:.4f} vs active v{active.number} {baseline:.4f} on the same "
            f"{final['cases']} held-out case(s)" + ("" if better else ": not better, stays a candidate")
        ),
        "candidate": value,
        "active": baseline,
        "active_version": active.number,
        "cases": final.get("per_case", {}) and sorted(final["per_case"]),
    }


# --- Evaluation --------------------------------------------------------------------------------------------


def evaluate_start(*, version: ModelVersion, actor: User | None, case_ids: list[int] | None = None) -> Job:
    if version.status in (ModelStatus.TRAINING, ModelStatus.FAILED):
        raise ConflictError(f"Model version {version.number} is {version.status}; it has no weights to evaluate")
    return job_create(
        kind=JobKind.EVALUATE,
        task_name="inference.tasks.evaluate",
        project=version.project,
        created_by=actor,
        params={"model_version": version.pk, "cases": case_ids or []},
        queue="gpu",
    )


def evaluate_handler(job: Job, progress: Progress) -> dict[str, Any]:
    """The version's metric on held-out adjudicated cases: the given ones, else its own validation split."""
    from inference import engine

    version = _version_for_job(job)
    device, device_note = engine.pick_device()
    model = registry.load_network(version)
    wanted = set(job.params.get("cases") or version.training_snapshot.get("validation", []))
    labelled = [lc for lc in adjudicated_cases(version.project) if lc.case.pk in wanted]
    if not labelled:
        raise JobFailed("No adjudicated held-out cases to evaluate on")
    progress(message=device_note, total=len(labelled))
    examples, skipped = _examples(version, labelled)
    result = _evaluate(version, model, examples, device)
    return {
        "model_version": version.pk,
        "device": str(device),
        "device_note": device_note,
        "skipped": skipped,
        **result,
    }


# --- Pre-labeling --------------------------------------------------------------------------------------------


def prelabel_start(
    *, project: Project, actor: User | None, case_ids: list[int] | None = None, version: ModelVersion | None = None
) -> Job:
    version = version or registry.active_version(project)
    if version is None:
        raise NotFoundError(f"Project {project.slug!r} has no active model to pre-label with")
    if version.project_id != project.pk:
        raise NotFoundError(f"No model version {version.pk} in project {project.slug!r}")
    if version.status in (ModelStatus.TRAINING, ModelStatus.FAILED):
        raise ConflictError(f"Model version {version.number} is {version.status}; it cannot pre-label")
    cases = Case.objects.filter(project=project)
    if case_ids is not None:
        found = set(cases.filter(pk__in=case_ids).values_list("pk", flat=True))
        missing = sorted(set(case_ids) - found)
        if missing:
            raise NotFoundError(f"No case(s) {', '.join(map(str, missing[:10]))} in project {project.slug!r}")
        ids = sorted(found)
    else:
        ids = list(cases.exclude(predictions__model_version=version).order_by("pk").values_list("pk", flat=True))
    return job_create(
        kind=JobKind.PRELABEL,
        task_name="inference.tasks.prelabel",
        project=project,
        created_by=actor,
        params={"model_version": version.pk, "cases": ids},
        queue="gpu",
    )


@dataclass
class CasePrediction:
    values: dict[str, Any]
    probabilities: dict[str, dict[str, float]]
    components: list[dict[str, Any]]
    saliency: np.ndarray | None


def predict(version: ModelVersion, model: torch.nn.Module, volume: Volume, device: torch.device) -> CasePrediction:
    """Run the model on one volume and turn its output into label values of the project's schema."""
    import torch

    from inference import engine

    spec = engine.preprocessing_spec(version.preprocessing)
    label_map = version.label_map
    image = engine.preprocess(volume.array, volume.spacing, spec)
    items: list[dict[str, Any]] = []
    probabilities: dict[str, dict[str, float]] = {}
    if version.task_type == TaskType.CLASSIFICATION:
        model.eval()
        net_input = engine.classify_input(image, spec)
        with torch.no_grad():
            probs = torch.softmax(model(net_input[None].to(device)), dim=1)[0].cpu().numpy()
        choices = label_map.get("presence_choices", ["no", "yes"])
        best = int(np.argmax(probs))
        probabilities[label_map["presence_label"]] = {
            c: round(float(p), 5) for c, p in zip(choices, probs, strict=True)
        }
        items.append({"label": label_map["presence_label"], "value": choices[best]})
        heat = engine.saliency(model, net_input, class_index=best, device=device)
        return CasePrediction({"items": items}, probabilities, [], heat)

    prob = engine.segment(model, image, roi_size=spec["roi_size"], device=device)
    foreground = engine.restore_shape(prob, volume.array.shape)[1].numpy()
    seg = engine.postprocess(
        foreground,
        spacing=volume.spacing,
        segment_value=int(label_map.get("segment", 1)),
        options=version.training_params.get("postprocessing"),
    )
    present = bool(seg.components)
    p_yes = max((c.score for c in seg.components), default=min(seg.max_probability, 0.5))
    if "presence_label" in label_map:
        probabilities[label_map["presence_label"]] = {"yes": round(p_yes, 5), "no": round(1 - p_yes, 5)}
        items.append({"label": label_map["presence_label"], "value": "yes" if present else "no"})
    if "mask_label" in label_map:
        items.append(
            {
                "label": label_map["mask_label"],
                "series_instance_uid": volume.series_instance_uid,
                "mask": encode_mask(seg.mask),
            }
        )
    components = []
    for k, comp in enumerate(seg.components, start=1):
        components.append(
            {
                "id": f"ai{k}",
                "voxels": comp.voxels,
                "volume_mm3": round(comp.volume_mm3, 2),
                "bbox": list(comp.bbox),
                "diameter_mm": comp.diameter_mm,
                "score": round(comp.score, 5),
            }  # fmt: skip
        )
        if "box_label" not in label_map:
            continue
        if label_map.get("box_dimensions", 2) == 3:
            z0, y0, x0, z1, y1, x1 = comp.bbox
            geometry = {"x": x0, "y": y0, "z": z0, "width": x1 - x0, "height": y1 - y0, "depth": z1 - z0}
            items.append(
                {
                    "label": label_map["box_label"],
                    "id": f"ai{k}",
                    "series_instance_uid": volume.series_instance_uid,
                    "geometry": geometry,
                }
            )
        else:
            sop = volume.sop_instance_uids[comp.largest_slice]
            items.append(
                {"label": label_map["box_label"], "id": f"ai{k}", "sop_instance_uid": sop, "geometry": comp.box2d}
            )
        if "diameter_label" in label_map:
            low, high = label_map.get("diameter_range") or [None, None]
            value = comp.diameter_mm
            if (low is None or value >= low) and (high is None or value <= high):
                items.append({"label": label_map["diameter_label"], "region": f"ai{k}", "value": value})
    return CasePrediction({"items": items}, probabilities, components, None)


def _store_saliency(case: Case, version: ModelVersion, heat: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, heat.astype(np.float16))
    name = f"saliency/{version.project.slug}/v{version.number}/case-{case.pk}.npy.gz"
    if default_storage.exists(name):
        default_storage.delete(name)  # a retried case: the earlier run died before its row was written
    return default_storage.save(name, ContentFile(gzip.compress(buffer.getvalue(), mtime=0)))


def prelabel_case(*, case: Case, version: ModelVersion, model: torch.nn.Module, device: torch.device) -> Prediction:
    """Pre-label one case; returns the existing prediction when this version has already labelled it."""
    existing = Prediction.objects.filter(case=case, model_version=version).first()
    if existing is not None:
        return existing
    started = time.perf_counter()
    min_slices = 1
    volume = load_volume(case, min_slices=min_slices)
    result = predict(version, model, volume, device)
    saliency_file = _store_saliency(case, version, result.saliency) if result.saliency is not None else ""
    with transaction.atomic():
        revision = annotation_save_machine(case=case, model_version=version.label, values=result.values)
        return Prediction.objects.create(
            case=case,
            model_version=version,
            revision=revision,
            probabilities=result.probabilities,
            components=result.components,
            saliency_file=saliency_file,
            device=str(device),
            seconds=round(time.perf_counter() - started, 3),
        )


def prelabel_handler(job: Job, progress: Progress) -> dict[str, Any]:
    from inference import engine

    version = _version_for_job(job)
    if version.status in (ModelStatus.TRAINING, ModelStatus.FAILED):
        raise JobFailed(f"Model version {version.number} is {version.status}; it cannot pre-label")
    device, device_note = engine.pick_device()
    model = registry.load_network(version).to(device)
    cases = list(
        Case.objects.filter(pk__in=job.params.get("cases", []), project=version.project).select_related(
            "project", "study", "series"
        )
    )
    total = len(cases)
    progress(done=0, total=total, message=device_note)
    done, failed = [], {}
    for index, case in enumerate(cases, start=1):
        try:
            prediction = prelabel_case(case=case, version=version, model=model, device=device)
            done.append({"case": case.pk, "revision": prediction.revision_id})
        except GeometryError as exc:
            failed[case.pk] = exc.message
        progress(done=index, total=total, message=device_note)
    if failed:
        reasons = "; ".join(f"case {pk}: {reason}" for pk, reason in failed.items())
        raise JobFailed(f"{len(failed)} of {total} case(s) could not be pre-labeled ({len(done)} done): {reasons}")
    return {
        "model_version": version.pk,
        "label": version.label,
        "device": str(device),
        "device_note": device_note,
        "cases": done,
    }


# --- Active learning --------------------------------------------------------------------------------------


def unread_cases(project: Project) -> list[Case]:
    return list(
        Case.objects.filter(project=project, status=CaseStatus.AWAITING_FIRST_READ)
        .exclude(annotations__status=Annotation.Status.SUBMITTED, annotations__reader__isnull=False)
        .select_related("project", "study", "series")
        .order_by("pk")
    )


def score_start(
    *, project: Project, actor: User | None, strategy: str | None = None, version: ModelVersion | None = None
) -> Job:
    strategy = strategy or settings_for(project).strategy
    if strategy not in Strategy.values:
        raise ApplicationError(f"Unknown strategy {strategy!r}; expected one of {', '.join(Strategy.values)}")
    version = version or registry.active_version(project)
    if strategy != Strategy.RANDOM and version is None:
        raise NotFoundError(f"Project {project.slug!r} has no active model to score with; use the random strategy")
    return job_create(
        kind=JobKind.SCORE,
        task_name="inference.tasks.score",
        project=project,
        created_by=actor,
        params={"model_version": version.pk if version else None, "strategy": strategy},
        queue="gpu",
    )


def _disagreement_model(project: Project) -> tuple[np.ndarray, np.ndarray]:
    """Past cases' uncertainty (when they were scored) and whether their readers then disagreed."""
    from review.models import CaseEvent

    disputed = set(
        CaseEvent.objects.filter(case__project=project, to_status=CaseStatus.DISPUTED).values_list("case_id", flat=True)
    )
    finished = Case.objects.filter(project=project).exclude(
        status__in=[CaseStatus.AWAITING_FIRST_READ, CaseStatus.AWAITING_CROSS_VERIFICATION]
    )
    latest: dict[int, float] = {}
    for case_id, value in (
        CaseScore.objects.filter(case__in=finished, uncertainty__isnull=False)
        .order_by("case_id", "-created_at")
        .values_list("case_id", "uncertainty")
    ):
        latest.setdefault(case_id, float(value or 0.0))
    xs = np.asarray(list(latest.values()), dtype=float)
    ys = np.asarray([1.0 if c in disputed else 0.0 for c in latest], dtype=float)
    return xs, ys


def predicted_disagreement(uncertainties: np.ndarray, history: tuple[np.ndarray, np.ndarray], k: int = 5) -> np.ndarray:
    """Share of disputed cases among the k past cases of nearest uncertainty (0 without history)."""
    xs, ys = history
    if xs.size == 0:
        return np.zeros_like(uncertainties)
    k = min(k, xs.size)
    distances = np.abs(uncertainties[:, None] - xs[None, :])
    nearest = np.argsort(distances, axis=1)[:, :k]
    return ys[nearest].mean(axis=1)


def score_handler(job: Job, progress: Progress) -> dict[str, Any]:
    from inference import engine

    project = Project.objects.get(pk=job.project_id or 0)
    strategy = job.params["strategy"]
    version = ModelVersion.objects.filter(pk=job.params.get("model_version")).first()
    cases = unread_cases(project)
    device, device_note = engine.pick_device()
    progress(done=0, total=len(cases), message=device_note)
    uncertainties: list[float | None] = []
    if strategy == Strategy.RANDOM:
        seed = settings_for(project).seed
        scores = list(np.random.default_rng([seed, job.pk]).random(len(cases)))
        uncertainties = [None] * len(cases)
    else:
        if version is None:
            raise JobFailed("No model version to score with")
        model = registry.load_network(version).to(device)
        spec = engine.preprocessing_spec(version.preprocessing)
        has_dropout = float(version.architecture_params.get("dropout", 0)) > 0
        values = []
        for index, case in enumerate(cases, start=1):
            try:
                volume = load_volume(case)
            except GeometryError as exc:
                raise JobFailed(f"case {case.pk}: {exc.message}") from exc
            image = engine.preprocess(volume.array, volume.spacing, spec)
            u = engine.uncertainty(
                model, image, roi_size=spec["roi_size"], device=device, method="mc_dropout" if has_dropout else "tta"
            )
            values.append(u.score)
            progress(done=index, total=len(cases), message=device_note)
        uncertainties = list(values)
        u_arr = np.asarray(values, dtype=float)
        if strategy == Strategy.UNCERTAINTY_DISAGREEMENT:
            disagreement = predicted_disagreement(u_arr, _disagreement_model(project))
            span = float(u_arr.max() - u_arr.min()) if u_arr.size else 0.0
            normalised = (u_arr - u_arr.min()) / span if span > 0 else np.zeros_like(u_arr)
            scores = list(0.5 * normalised + 0.5 * disagreement)
        else:
            disagreement = None
            scores = list(u_arr)
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    rows = []
    with transaction.atomic():  # every score and priority of this run, or none
        for rank, index in enumerate(order, start=1):
            case = cases[int(index)]
            rows.append(
                CaseScore(
                    case=case,
                    model_version=version,
                    job_id=job.pk,
                    strategy=strategy,
                    score=float(scores[int(index)]),
                    uncertainty=uncertainties[int(index)],
                    disagreement=None
                    if strategy != Strategy.UNCERTAINTY_DISAGREEMENT or disagreement is None
                    else float(disagreement[int(index)]),
                    rank=rank,
                )
            )
            case_set_priority(case=case, priority=float(scores[int(index)]), source=f"active_learning:{strategy}"[:32])
        CaseScore.objects.bulk_create(rows)
    return {
        "strategy": strategy,
        "model_version": version.pk if version else None,
        "device": str(device),
        "device_note": device_note,
        "scored": len(rows),
        "top": [r.case_id for r in rows[:10]],
    }


# --- Hooks ------------------------------------------------------------------------------------------------


def autotrain_check(*, project: Project) -> Job | None:
    """Start training when ``auto_train_every`` adjudicated cases are new since the latest version's
    snapshot and no training is under way. Also run by ``manage.py inference_autotrain``."""
    config = InferenceSettings.objects.filter(project=project).first()
    if config is None or config.auto_train_every == 0:
        return None
    model_versions_reconcile(project)
    if ModelVersion.objects.filter(project=project, status=ModelStatus.TRAINING).exists():
        return None
    latest = (
        ModelVersion.objects.filter(project=project)
        .exclude(status=ModelStatus.FAILED)
        .exclude(Q(training_snapshot={}))
        .order_by("-number")
        .first()
    )
    seen = set()
    if latest is not None:
        seen = set(latest.training_snapshot.get("train", [])) | set(latest.training_snapshot.get("validation", []))
        seen |= set(latest.training_snapshot.get("skipped_without_label", []))
    new = [lc for lc in adjudicated_cases(project) if lc.case.pk not in seen]
    if len(new) < config.auto_train_every:
        return None
    return training_start(project=project, actor=None)


def saliency_bytes(prediction: Prediction) -> bytes:
    """The stored saliency map as a .npy file (float16, the model's input grid)."""
    with default_storage.open(prediction.saliency_file, "rb") as handle:
        return gzip.decompress(handle.read())
