"""Pre-labeling jobs: AI revisions readers start from, one per (case, model version)."""

from __future__ import annotations

import gzip
import io
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from annotation.labels import encode_mask
from annotation.models import Case, Project
from annotation.services import annotation_save_machine
from config.errors import ConflictError, NotFoundError
from config.types import User
from inference import registry
from inference.models import ModelStatus, ModelVersion, Prediction, TaskType
from inference.services.evaluation import _version_for_job
from inference.volumes import GeometryError, Volume, load_volume
from jobs.models import Job, JobKind
from jobs.services import JobFailed, Progress, job_create

if TYPE_CHECKING:
    import torch


# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


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


def saliency_bytes(prediction: Prediction) -> bytes:
    """The stored saliency map as a .npy file (float16, the model's input grid)."""
    with default_storage.open(prediction.saliency_file, "rb") as handle:
        return gzip.decompress(handle.read())
