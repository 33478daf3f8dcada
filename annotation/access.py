"""Project scoping of DICOMweb and uploads: a project's studies are the studies of its own image store; a
member sees the studies of their projects, and only managers store into a project."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from annotation.models import Project, Role
from annotation.selectors import check_import_source, projects_for_user, user_roles
from config.errors import NotFoundError, PermissionDeniedError
from config.types import AnyUser, user_pk
from imaging.models import DicomSource, ImageStore, Study
from imaging.services.ingest import platform_store


@dataclass
class ProjectStoreTarget:
    project: Project | None
    store: ImageStore
    source: DicomSource | None
    user: AnyUser

    def check_pull_source(self, source: DicomSource) -> None:
        if self.project is not None:
            check_import_source(self.user, self.project, source)


def first_of_each_uid(stores: list[int] | QuerySet[Any] | None) -> QuerySet[Study]:
    """One row per Study Instance UID among the studies of ``stores`` (all stores when None): where the same
    study is in several, the oldest row answers on the unscoped endpoints (/dicomweb/projects/<slug>/ names
    the store). An anti-join on the UID index rather than a GROUP BY over every visible study: a search with
    a LIMIT then reads only the rows it returns."""
    studies = Study.objects.all() if stores is None else Study.objects.filter(store_id__in=stores)
    older = Study.objects.filter(study_instance_uid=OuterRef("study_instance_uid"), pk__lt=OuterRef("pk"))
    if stores is not None:
        older = older.filter(store_id__in=stores)
    return studies.exclude(Exists(older))


class ProjectStudyAccessPolicy:
    def _project(self, user: AnyUser, scope: str) -> Project:
        # The same 404 for a project that does not exist and one the user is not in: no existence leak.
        project = projects_for_user(user).filter(slug=scope).select_related("dicom_source", "image_store").first()
        if project is None:
            raise NotFoundError(f"No project {scope!r} that you are a member of")
        return project

    @staticmethod
    def _member_stores(user: AnyUser) -> QuerySet[Any]:
        """The image stores of the user's projects: a query not yet run (a list, or a subquery of another)."""
        return (
            Project.objects.filter(memberships__user__pk=user_pk(user))
            .values_list("image_store_id", flat=True)
            .distinct()
        )

    def visible_studies(self, user: AnyUser, scope: str | None) -> QuerySet[Study]:
        if not user.is_authenticated:
            return Study.objects.none()
        if scope is not None:
            return Study.objects.filter(store_id=self._project(user, scope).image_store_id)
        if getattr(user, "is_superuser", False):
            return first_of_each_uid(None)
        stores = list(self._member_stores(user))
        if len(stores) == 1:
            return Study.objects.filter(store_id=stores[0])
        return first_of_each_uid(stores)

    def visible_studies_in_sql(self, user: AnyUser, scope: str | None) -> QuerySet[Study]:
        """The studies of ``visible_studies`` by the same rule, with the user's projects and their stores as
        subqueries: building it runs no query, so a lookup filtered by it checks access in its own SQL (one round
        trip for a frame, issue 19). Evaluated afresh each time: a revoked membership counts at once. An unknown
        or foreign scope gives no study rather than NotFoundError (the caller says what was not found)."""
        if not user.is_authenticated:
            return Study.objects.none()
        if scope is not None:
            project_stores = projects_for_user(user).filter(slug=scope).values("image_store_id")
            return Study.objects.filter(store_id__in=project_stores)
        if getattr(user, "is_superuser", False):
            return first_of_each_uid(None)
        # One store or several: the oldest row of each Study Instance UID among them (within one store a UID has
        # one row, so the anti-join changes nothing there, as visible_studies' shortcut assumes).
        return first_of_each_uid(self._member_stores(user))

    def store_target(self, user: AnyUser, scope: str | None) -> ProjectStoreTarget:
        if scope is None:
            # Outside a project only administrators store, into the platform store that only they see.
            if getattr(user, "is_superuser", False):
                return ProjectStoreTarget(project=None, store=platform_store(), source=None, user=user)
            raise PermissionDeniedError(
                "Store into a project: POST to /dicomweb/projects/<project>/studies (only managers may add studies)"
            )
        project = self._project(user, scope)
        if not getattr(user, "is_superuser", False) and Role.MANAGER not in user_roles(user, project):
            raise PermissionDeniedError(f"Only a manager of project {project.slug!r} may add studies to it")
        return ProjectStoreTarget(
            project=project,
            store=project.image_store,
            source=project.dicom_source,
            user=user,
        )
