"""Names of learned interactive engines, without importing torch (the web process names engines; only the
serving worker loads them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.models import ModelVersion

ENGINE_PREFIX = "learned:"


def engine_name(version: ModelVersion) -> str:
    return f"{ENGINE_PREFIX}{version.project.slug}/v{version.number}"


def project_engine_names(project_id: int) -> list[str]:
    """The learned engines a project's prompts may use: its own trained interactive versions."""
    from inference.models import ModelStatus, ModelVersion, TaskType

    versions = ModelVersion.objects.filter(
        project_id=project_id,
        task_type=TaskType.INTERACTIVE,
        status__in=[ModelStatus.CANDIDATE, ModelStatus.ACTIVE, ModelStatus.RETIRED],
    ).select_related("project")
    return [engine_name(v) for v in versions]
