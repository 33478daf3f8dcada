"""The model registry's writes: status transitions with their event log, promotion, rollback, weights files.

Nothing is overwritten in place: weights are stored once under a content-addressed name and checked by
SHA-256 whenever they are loaded; a version's status moves only along ``TRANSITIONS``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from annotation.models import Project
from config.errors import ApplicationError, ConflictError, NotFoundError
from config.types import User
from inference.models import ModelStatus, ModelVersion, ModelVersionEvent, TaskType

if TYPE_CHECKING:
    import torch

S = ModelStatus
TRANSITIONS: dict[str, set[str]] = {
    S.TRAINING: {S.CANDIDATE, S.FAILED},
    S.CANDIDATE: {S.ACTIVE, S.RETIRED},
    S.ACTIVE: {S.RETIRED},
    S.RETIRED: {S.ACTIVE},  # rollback, or a manager's re-promotion
    S.FAILED: set(),  # a failed run is never promoted
}


class InvalidModelTransitionError(ConflictError):
    code = "invalid_transition"


class WeightsError(ApplicationError):
    code = "bad_weights"


def _transition(
    version: ModelVersion,
    to: str,
    *,
    actor: User | None,
    reason: str,
    event_metrics: dict[str, Any] | None = None,
    **fields: Any,
) -> ModelVersion:
    """Lock the row, check the table, write the status (and ``fields``), append the event."""
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if to not in TRANSITIONS[locked.status]:
        raise InvalidModelTransitionError(f"Model version {locked.number} is {locked.status}; it cannot become {to}")
    ModelVersionEvent.objects.create(
        model_version=locked,
        actor=actor,
        from_status=locked.status,
        to_status=to,
        reason=reason,
        metrics=event_metrics or {},
    )
    locked.status = to
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=["status", *fields])
    return locked


@transaction.atomic
def model_version_create(
    *,
    project: Project,
    task_type: str,
    architecture: str,
    architecture_params: dict[str, Any],
    preprocessing: dict[str, Any],
    label_map: dict[str, Any],
    training_params: dict[str, Any],
    parent: ModelVersion | None,
    created_by: User | None,
    demo: bool = False,
) -> ModelVersion:
    Project.objects.select_for_update().get(pk=project.pk)  # consecutive numbers under concurrent requests
    number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
    version = ModelVersion.objects.create(
        project=project,
        number=number,
        task_type=task_type,
        architecture=architecture,
        architecture_params=architecture_params,
        preprocessing=preprocessing,
        label_map=label_map,
        training_params=training_params,
        parent=parent,
        created_by=created_by,
        demo=demo,
    )
    ModelVersionEvent.objects.create(model_version=version, actor=created_by, from_status="", to_status=S.TRAINING)
    return version


def active_version(project: Project, task_type: str | None = None) -> ModelVersion | None:
    """The active version of ``task_type``; without one, the latest active whole-study model (pre-labeling,
    scoring): an interactive model needs prompts and never labels a study on its own."""
    versions = ModelVersion.objects.filter(project=project, status=S.ACTIVE)
    if task_type is not None:
        versions = versions.filter(task_type=task_type)
    else:
        versions = versions.exclude(task_type=TaskType.INTERACTIVE)
    return versions.order_by("-number").first()


def store_weights(version: ModelVersion, data: bytes) -> tuple[str, str]:
    """Write the weights file under a content-addressed name (a retried run writes the same name)."""
    digest = hashlib.sha256(data).hexdigest()
    suffix = "zip" if version.architecture == "monai_bundle" else "pt"  # an imported bundle is kept whole
    name = f"models/{version.project.slug}/v{version.number}-{digest[:16]}.{suffix}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(data))
    return name, digest


def load_network(version: ModelVersion) -> torch.nn.Module:
    """The version's network with its weights, after checking the file's SHA-256; WeightsError otherwise."""
    if not version.weights_file:
        raise WeightsError(f"Model version {version.number} has no weights file (status {version.status})")
    try:
        with default_storage.open(version.weights_file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise WeightsError(f"Weights file of model version {version.number} cannot be read: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != version.weights_sha256:
        raise WeightsError(
            f"Weights file of model version {version.number} does not match its SHA-256 "
            f"(expected {version.weights_sha256[:16]}..., found {digest[:16]}...); refusing to use it"
        )
    if version.architecture == "monai_bundle":
        from inference.services.bundles import network_from_bundle_bytes

        return network_from_bundle_bytes(data)  # its config is checked again before anything is built
    from inference import engine  # torch and MONAI: only where a network is built (see inference.services)

    model = engine.build_network(version.architecture, version.architecture_params, out_channels=out_channels(version))
    try:
        return engine.weights_from_bytes(model, data)
    except Exception as exc:  # torch raises several types for a corrupt or mismatched file
        raise WeightsError(
            f"Weights file of model version {version.number} does not load into {version.architecture}: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from exc


def out_channels(version: ModelVersion) -> int:
    if version.task_type == "classification":
        return len(version.label_map.get("presence_choices", ["yes", "no"]))
    return 2


@transaction.atomic
def model_version_finish_training(
    *,
    version: ModelVersion,
    weights_file: str,
    weights_sha256: str,
    weights_bytes: int,
    snapshot: dict[str, Any],
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    device: str,
    reason: str = "training finished",
    actor: User | None = None,
) -> ModelVersion:
    from django.utils import timezone

    return _transition(
        version,
        S.CANDIDATE,
        actor=actor,
        reason=reason,
        event_metrics={k: v for k, v in metrics.items() if k != "per_case"},
        weights_file=weights_file,
        weights_sha256=weights_sha256,
        weights_bytes=weights_bytes,
        training_snapshot=snapshot,
        metrics=metrics,
        history=history,
        device=device,
        trained_at=timezone.now(),
    )


@transaction.atomic
def model_version_fail(*, version: ModelVersion, reason: str) -> ModelVersion | None:
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if locked.status != S.TRAINING:
        return None
    return _transition(locked, S.FAILED, actor=None, reason=reason)


@transaction.atomic
def model_version_promote(
    *, version: ModelVersion, actor: User | None, reason: str, metrics: dict[str, Any] | None = None
) -> ModelVersion:
    """Make ``version`` the active one of its task; the previous active version is retired."""
    # Lock the project's versions so that two promotions at once cannot leave two active.
    list(ModelVersion.objects.select_for_update().filter(project_id=version.project_id).values_list("pk", flat=True))
    locked = ModelVersion.objects.get(pk=version.pk)
    if locked.status not in (S.CANDIDATE, S.RETIRED):
        raise InvalidModelTransitionError(
            f"Model version {locked.number} is {locked.status}; only a candidate or retired version can be promoted"
        )
    for current in ModelVersion.objects.filter(
        project_id=locked.project_id, task_type=locked.task_type, status=S.ACTIVE
    ):
        _transition(current, S.RETIRED, actor=actor, reason=f"replaced by v{locked.number}: {reason}")
    return _transition(locked, S.ACTIVE, actor=actor, reason=reason, event_metrics=metrics)


@transaction.atomic
def model_version_rollback(*, project: Project, task_type: str, actor: User | None, reason: str = "") -> ModelVersion:
    """One call: retire the active version and re-activate the one it replaced."""
    current = active_version(project, task_type)
    if current is None:
        raise NotFoundError(f"Project {project.slug!r} has no active {task_type} model to roll back")
    # The version that was active before: the latest one retired from active (not a never-promoted candidate).
    previous_event = (
        ModelVersionEvent.objects.filter(
            model_version__project=project,
            model_version__task_type=task_type,
            from_status=S.ACTIVE,
            to_status=S.RETIRED,
        )
        .exclude(model_version=current)
        .select_related("model_version")
        .order_by("-created_at", "-pk")
        .first()
    )
    if previous_event is None or previous_event.model_version.status != S.RETIRED:
        raise ConflictError(f"Model version {current.number} has no earlier active version to roll back to")
    previous = previous_event.model_version
    text = reason or f"rollback from v{current.number}"
    _transition(current, S.RETIRED, actor=actor, reason=text)
    return _transition(previous, S.ACTIVE, actor=actor, reason=text)
