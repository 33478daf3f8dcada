"""Active-learning scoring jobs: uncertainty (and predicted disagreement) of unread cases sets their priority."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction

from annotation.models import Annotation, Case, CaseStatus, Project
from annotation.services import case_set_priority
from config.errors import ApplicationError, NotFoundError
from config.types import User
from inference import registry
from inference.models import CaseScore, ModelVersion, Strategy
from inference.services.settings import settings_for
from inference.volumes import GeometryError, load_volume
from jobs.models import Job, JobKind
from jobs.services import JobFailed, Progress, job_create

# torch and MONAI (about 4 s of CPU to import) load inside the functions that run models, never when this
# module is imported: the web process imports it through the API views and the ingest hook, and serves
# requests that never touch a model.


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
