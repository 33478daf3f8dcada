"""Training the learned interactive engine (issue 17): the ordinary training job with task ``interactive``.

The numeric side (guidance channels, simulated clicks, the crop the network runs on) is in
``inference.interactive.learned``; the job's lifecycle, the adjudicated-only data, the patient split and the
promotion gate are those of every model, in ``inference.services.training``."""

from __future__ import annotations

from typing import Any

from annotation.models import Project
from config.types import User
from inference.models import TaskType
from inference.services.training import training_start
from jobs.models import Job


def interactive_training_start(*, project: Project, actor: User | None, **options: Any) -> Job:
    """A new interactive version (a UNet with image + positive + negative click channels) and its training job,
    on the project's adjudicated masks; ``options`` as for ``training_start``."""
    return training_start(project=project, actor=actor, task_type=TaskType.INTERACTIVE, **options)
