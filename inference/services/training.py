"""Training jobs on adjudicated labels; a new version is promoted only if it beats the active one on the
same held-out cases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from annotation.models import Project
from annotation.services import current_schema
from config.errors import ApplicationError
from config.types import User
from inference import registry
from inference.models import Architecture, ModelStatus, ModelVersion, TaskType
from inference.services.data import _examples, adjudicated_cases, default_label_map, patient_split
from inference.services.evaluation import _evaluate, _metric_name, _version_for_job
from inference.services.settings import _check_architecture, settings_for
from inference.volumes import GeometryError
from jobs.messages import READING_CASES, job_text
from jobs.models import Job, JobKind, JobStatus
from jobs.services import JobFailed, Progress, job_create

if TYPE_CHECKING:
    import torch

    from inference import engine

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


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
    demo_truth: list[dict[str, Any]] | None = None,
) -> Job:
    """A new version in status "training" and its job on the GPU queue. The parent (transfer learning)
    is the active version of the same task and architecture, when there is one.

    ``demo_truth`` (the demo project only: synthetic studies' generator arguments) makes a demo version,
    trained on the studies' known truth instead of adjudicated labels; see ``inference.services.demo``."""
    from inference import engine
    from inference.interactive import learned

    model_versions_reconcile(project)
    config = settings_for(project)
    task = task_type or config.task_type
    arch = architecture or config.architecture
    if task not in TaskType.values:
        raise ApplicationError(f"Unknown task type {task!r}; expected one of {', '.join(TaskType.values)}")
    if arch not in Architecture.values:
        raise ApplicationError(f"Unknown architecture {arch!r}; expected one of {', '.join(Architecture.values)}")
    _check_architecture(task, arch)
    interactive = task == TaskType.INTERACTIVE
    arch_params = {
        **engine.DEFAULT_ARCHITECTURE_PARAMS[arch],
        **(learned.DEFAULT_ARCHITECTURE_PARAMS if interactive else {}),
        # The project's settings describe its default task's network: they apply to that task only.
        **(config.architecture_params if arch == config.architecture and task == config.task_type else {}),
        **(architecture_params or {}),
    }
    spec = engine.preprocessing_spec({**config.preprocessing, **(preprocessing or {})})
    params = {
        **engine.DEFAULT_TRAINING,
        **(learned.DEFAULT_TRAINING if interactive else {}),
        **config.training_params,
        **(training_params or {}),
    }
    params["seed"] = int(seed if seed is not None else config.seed)
    if interactive:
        # Clicks are voxel indices of the series: the network sees the series' own grid, plus two guidance channels
        # and the proposal being refined (DeepEdit's previous-mask channel). A three-channel active version is no
        # parent for transfer (its architecture parameters differ) but is still served and compared by the gate.
        spec["spacing"] = None
        arch_params["in_channels"] = learned.IN_CHANNELS
        if arch != Architecture.UNET:
            raise ApplicationError(f"An interactive model is a unet, not {arch}", code="bad_architecture")
    if demo_truth is not None:
        params["demo_truth"] = demo_truth
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
    if parent is not None and (parent.demo or demo_truth is not None):
        parent = None  # a demo model's weights never flow into a model of adjudicated labels, nor back
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
        demo=demo_truth is not None,
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
    import torch

    from inference import engine

    if version.status != ModelStatus.TRAINING:
        raise JobFailed(f"Model version {version.number} is {version.status}; only a version in training is trained")
    device, device_note = engine.pick_device()
    params = version.training_params
    seed = int(params.get("seed", 0))
    labelled: list[Any] = adjudicated_cases(version.project)
    if version.demo:
        from inference.services.demo import demo_cases

        labelled = demo_cases(version)  # the synthetic studies' known truth, never a reader's label
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
    # The version's seed decides the network's first weights too, not only the training's draws: the same job
    # on the same labels gives the same model (the weights were drawn from whatever the process had used before).
    torch.manual_seed(seed)
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

    if version.task_type == TaskType.INTERACTIVE:
        from inference.interactive import learned

        history, _ = learned.train_interactive(
            model,
            train_examples,
            val_examples,
            params={**params, "intensity": spec["intensity"]},  # the region-growing prior works in HU
            device=device,
            seed=seed,
            on_epoch=on_epoch,
        )
    elif version.task_type == TaskType.CLASSIFICATION:
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
        "revisions": sorted(
            revision.pk for e in [*train_examples, *val_examples] if (revision := by_id[e.case_id].revision) is not None
        ),
        **({"source": "synthetic known truth (demo)"} if version.demo else {}),
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
    if version.task_type == TaskType.INTERACTIVE:
        from inference.interactive import learned

        learned.register_version(version)  # this process; serving workers call learned.register_versions()
    if version.demo and promoted:
        from inference.services.demo import demo_after_training

        demo_after_training(version)
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
    active = registry.active_version(version.project, version.task_type)
    if value is None and version.demo and active is None:
        # A demo of a handful of studies may have no patient to hold out; it shows what a model does, no more.
        return {"promote": True, "reason": "demo model (no held-out cases)", "candidate": None, "active": None}
    if value is None:
        return {"promote": False, "reason": "no held-out cases: a manager may promote by hand"}
    if active is None:
        return {
            "promote": True,
            "reason": f"first {version.task_type} model: {metric_name} {value:.4f} "
            f"on {final['cases']} held-out case(s)",
            "candidate": value,
            "active": None,
        }
    if version.demo and not active.demo:
        return {
            "promote": False,
            "reason": f"a demo model is never promoted over v{active.number}, trained on adjudicated labels",
            "candidate": value,
            "active": None,
            "active_version": active.number,
        }
    if active.demo and not version.demo:
        return {
            "promote": True,
            "reason": f"first {version.task_type} model of adjudicated labels replaces demo model v{active.number}: "
            f"{metric_name} {value:.4f} on {final['cases']} held-out case(s)",
            "candidate": value,
            "active": None,
            "active_version": active.number,
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
