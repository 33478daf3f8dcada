"""Project scoping of DICOMweb and uploads: a member sees the studies of their projects, and only
managers add studies to a project."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from annotation.models import Project, ProjectStudy, Role
from annotation.selectors import projects_for_user, user_roles
from annotation.services import project_link_studies
from config.errors import NotFoundError, PermissionDeniedError
from config.types import AnyUser
from imaging.models import DicomSource, Study


@dataclass
class ProjectStoreTarget:
    project: Project | None
    source: DicomSource | None

    def link_studies(self, study_uids: list[str]) -> None:
        if self.project is not None and study_uids:
            project_link_studies(project=self.project, study_uids=study_uids)


class ProjectStudyAccessPolicy:
    def _project(self, user: AnyUser, scope: str) -> Project:
        # The same 404 for a project that does not exist and one the user is not in: no existence leak.
        project = projects_for_user(user).filter(slug=scope).select_related("dicom_source").first()
        if project is None:
            raise NotFoundError(f"No project {scope!r} that you are a member of")
        return project

    def visible_studies(self, user: AnyUser, scope: str | None) -> QuerySet[Study]:
        if not user.is_authenticated:
            return Study.objects.none()
        if scope is not None:
            project = self._project(user, scope)
            return Study.objects.filter(project_links__project=project)
        if getattr(user, "is_superuser", False):
            return Study.objects.all()
        # A subquery rather than a join with DISTINCT keeps study search fast on large indexes.
        linked = ProjectStudy.objects.filter(project__memberships__user=user).values("study_id")
        return Study.objects.filter(pk__in=linked)

    def store_target(self, user: AnyUser, scope: str | None) -> ProjectStoreTarget:
        if scope is None:
            # Outside a project only administrators store: the studies would otherwise be invisible.
            if getattr(user, "is_superuser", False):
                return ProjectStoreTarget(project=None, source=None)
            raise PermissionDeniedError(
                "Store into a project: POST to /dicomweb/projects/<project>/studies (only managers may add studies)"
            )
        project = self._project(user, scope)
        if not getattr(user, "is_superuser", False) and Role.MANAGER not in user_roles(user, project):
            raise PermissionDeniedError(f"Only a manager of project {project.slug!r} may add studies to it")
        return ProjectStoreTarget(project=project, source=project.dicom_source)
