"""Thin API views: check permission, validate input, call one service, serialize the result."""

from __future__ import annotations

from typing import Any, cast

import django_filters
from django.db.models import Exists, OuterRef, Prefetch
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import generics, status
from rest_framework.fields import DateTimeField
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import services
from annotation.api import serializers as s
from annotation.api.permissions import IsProjectManagerForWrites, project_for, project_for_reading, require_manager
from annotation.labels import load_example_schema
from annotation.models import Annotation, Assignment, Case, LabelSchema, Membership, Project
from annotation.selectors import (
    READER_STATUSES,
    annotation_list,
    annotations_visible_to,
    case_list,
    cases_visible_to,
    hide_case_status,
    hide_case_statuses,
    is_manager,
    member_workloads,
    projects_for_user,
    revisions_of,
    with_manager_columns,
    worklist,
    worklist_counts,
)
from config.errors import NotFoundError, PermissionDeniedError
from config.types import User, user_pk


def _user(request: Request) -> User:
    """The signed-in user (every view here requires authentication)."""
    return cast(User, request.user)


def _case_for(request: Request, case_id: int) -> Case:
    """A case the user may see, or 404 with the same answer whether it does not exist or is not theirs."""
    case = Case.objects.select_related("project", "study", "series").filter(pk=case_id).first()
    if case is None or not cases_visible_to(request.user, case.project).filter(pk=case.pk).exists():
        raise NotFoundError(f"No case {case_id} that you can see")
    return case


def _annotation_for(request: Request, annotation_id: int) -> Annotation:
    """An annotation the user may see, or the same 404 whether it does not exist or is hidden."""
    annotation = Annotation.objects.select_related("case__project").filter(pk=annotation_id).first()
    if (
        annotation is None
        or not annotations_visible_to(request.user, annotation.case).filter(pk=annotation.pk).exists()
    ):
        raise NotFoundError(f"No annotation {annotation_id} that you can see")
    return annotation


def _with_my_roles(request: Request, project: Project) -> Project:
    project.my_memberships = list(Membership.objects.filter(project=project, user__pk=user_pk(request.user)))  # type: ignore[attr-defined]
    return project


class ProjectListView(generics.ListCreateAPIView[Project]):
    """Projects you are a member of, with your roles; archived ones only with ``?archived=true`` (then only
    those). Administrators (staff) create projects and become their first manager."""

    ordering_fields = ["name", "created_at"]

    def get_serializer_class(self) -> Any:
        return s.ProjectInput if self.request.method == "POST" else s.ProjectOutput

    def get_queryset(self) -> Any:
        mine = Membership.objects.filter(user__pk=user_pk(self.request.user))
        archived = self.request.query_params.get("archived", "").lower() in ("1", "true", "yes")
        return (
            projects_for_user(self.request.user)
            .filter(archived_at__isnull=not archived)
            .select_related("dicom_source")
            .prefetch_related(Prefetch("memberships", queryset=mine, to_attr="my_memberships"))
            .order_by("name")
        )

    @extend_schema(
        parameters=[OpenApiParameter("archived", bool, required=False)], responses=s.ProjectOutput(many=True)
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.ProjectInput, responses={201: s.ProjectOutput})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = _user(request)
        if not (user.is_staff or user.is_superuser):
            raise PermissionDeniedError(_("Only an administrator may create a project."), code="not_admin")
        data = s.ProjectInput(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(creator=user, **data.validated_data)
        return Response(s.ProjectOutput(_with_my_roles(request, project)).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    permission_classes = [IsProjectManagerForWrites]

    @extend_schema(responses=s.ProjectOutput)
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        return Response(s.ProjectOutput(_with_my_roles(request, project)).data)

    @extend_schema(request=s.ProjectUpdateInput, responses=s.ProjectOutput)
    def patch(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        serializer = s.ProjectUpdateInput(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(s.ProjectOutput(_with_my_roles(request, project)).data)


class ProjectArchiveView(APIView):
    """Archive a project (it leaves the project list; nothing is deleted) or bring it back. Managers."""

    permission_classes = [IsProjectManagerForWrites]

    @extend_schema(request=s.ArchiveInput, responses=s.ProjectOutput)
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        data = s.ArchiveInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.project_set_archived(project=project, archived=data.validated_data["archived"])
        return Response(s.ProjectOutput(_with_my_roles(request, project)).data)


class MemberListView(APIView):
    """The project's members, one row per role, with each reader's workload in that role."""

    permission_classes = [IsProjectManagerForWrites]

    @extend_schema(responses=s.MembershipOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        members = Membership.objects.filter(project=project).select_related("user").order_by("user__username", "role")
        context = {"workloads": member_workloads(project)}
        return Response(s.MembershipOutput(members, many=True, context=context).data)

    @extend_schema(request=s.MembershipInput, responses={201: s.MembershipOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        data = s.MembershipInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.filter(username=data.validated_data["username"], is_active=True).first()
        if user is None:
            raise NotFoundError(_("No user “%(username)s”.") % {"username": data.validated_data["username"]})
        membership = services.membership_grant(project=project, user=user, role=data.validated_data["role"])
        context = {"workloads": member_workloads(project)}
        return Response(s.MembershipOutput(membership, context=context).data, status=status.HTTP_201_CREATED)


class MemberDetailView(APIView):
    permission_classes = [IsProjectManagerForWrites]

    @extend_schema(request=s.MembershipUpdateInput, responses=s.MembershipOutput)
    def patch(self, request: Request, slug: str, membership_id: int) -> Response:
        project = project_for(request, slug)
        membership = get_object_or_404(Membership, project=project, pk=membership_id)
        data = s.MembershipUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(membership=membership, role=data.validated_data["role"])
        context = {"workloads": member_workloads(project)}
        return Response(s.MembershipOutput(membership, context=context).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, membership_id: int) -> Response:
        project = project_for(request, slug)
        membership = get_object_or_404(Membership, project=project, pk=membership_id)
        services.membership_revoke(project=project, user=membership.user, role=membership.role)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SchemaListView(APIView):
    """Versions of the project's label schema, newest first. POST makes a new version."""

    permission_classes = [IsProjectManagerForWrites]

    @extend_schema(responses=s.SchemaOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        schemas = LabelSchema.objects.filter(project=project).select_related("created_by").order_by("-version")
        return Response(s.SchemaOutput(schemas, many=True).data)

    @extend_schema(request=s.SchemaInput, responses={201: s.SchemaOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        data = s.SchemaInput(data=request.data)
        data.is_valid(raise_exception=True)
        definition = data.validated_data.get("definition")
        if definition is None:
            definition = load_example_schema(data.validated_data["example"])
        schema = services.schema_create_version(project=project, definition=definition, created_by=_user(request))
        return Response(s.SchemaOutput(schema).data, status=status.HTTP_201_CREATED)


class SchemaDetailView(APIView):
    """One schema version; its definition is the JSON to import elsewhere."""

    @extend_schema(responses=s.SchemaOutput)
    def get(self, request: Request, slug: str, version: int) -> Response:
        project = project_for(request, slug)
        schema = get_object_or_404(LabelSchema.objects.select_related("created_by"), project=project, version=version)
        return Response(s.SchemaOutput(schema).data)


class CaseFilter(django_filters.FilterSet):
    """The case list's filters. ``reader`` and ``gold`` are for managers only: a reader filtering by gold would
    find the gold cases, and by another reader the cases they share during blind reading (403 for others)."""

    status = django_filters.CharFilter(
        method="filter_status",
        help_text="A workflow status; for a reader during blind reading, the status they are shown "
        "(in_progress, submitted, closed): filtering must not reveal the hidden one",
    )
    reader = django_filters.CharFilter(method="filter_reader", help_text="Managers: cases this user name reads")
    gold = django_filters.BooleanFilter(method="filter_gold", help_text="Managers: only gold cases, or none")
    priority_min = django_filters.NumberFilter(field_name="priority", lookup_expr="gte")
    priority_max = django_filters.NumberFilter(field_name="priority", lookup_expr="lte")
    ai_score_min = django_filters.NumberFilter(method="filter_ai_min", help_text="Managers: latest AI score at least")
    ai_score_max = django_filters.NumberFilter(method="filter_ai_max", help_text="Managers: latest AI score at most")
    created_from = django_filters.DateFilter(field_name="created_at", lookup_expr="date__gte")
    created_to = django_filters.DateFilter(field_name="created_at", lookup_expr="date__lte")

    class Meta:
        model = Case
        fields = ["status", "priority_source"]

    def _managers_only(self, what: str) -> None:
        # The list's queryset carries the managers' columns only for managers (CaseListView.get_queryset).
        if "is_gold" not in self.queryset.query.annotations:
            raise PermissionDeniedError(f"Only the project's managers filter cases by {what}")

    def filter_status(self, queryset: Any, name: str, value: str) -> Any:
        if "shown_status" in queryset.query.annotations:
            return queryset.filter(shown_status=value)
        return queryset.filter(status=value)

    def filter_reader(self, queryset: Any, name: str, value: str) -> Any:
        self._managers_only("reader")
        return queryset.filter(Exists(Assignment.objects.filter(case=OuterRef("pk"), user__username=value)))

    def filter_gold(self, queryset: Any, name: str, value: bool | None) -> Any:
        if value is None:
            return queryset
        self._managers_only("gold")
        return queryset.filter(gold__isnull=not value)

    def filter_ai_min(self, queryset: Any, name: str, value: float) -> Any:
        self._managers_only("AI score")
        return queryset.filter(ai_score__gte=value)

    def filter_ai_max(self, queryset: Any, name: str, value: float) -> Any:
        self._managers_only("AI score")
        return queryset.filter(ai_score__lte=value)


class CaseListView(generics.ListAPIView[Case]):
    """Cases of the project you may see: all for managers, your assigned ones for readers."""

    serializer_class = s.CaseOutput
    permission_classes = [IsProjectManagerForWrites]
    ordering_fields = ["priority", "created_at", "status", "id"]

    filterset_class = CaseFilter

    def _project_and_role(self) -> tuple[Project, bool]:
        """The project and whether the user manages it, read once per request (the list is query-counted)."""
        if not hasattr(self, "_found"):
            project = project_for(self.request, self.kwargs["slug"])
            self._found = (project, is_manager(self.request.user, project))
        return self._found

    def get_serializer_class(self) -> Any:
        if getattr(self, "swagger_fake_view", False) or not self._project_and_role()[1]:
            return s.CaseOutput
        return s.ManagedCaseOutput

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no project
            return Case.objects.none()
        project, manages = self._project_and_role()
        cases = case_list(self.request.user, project, manager=manages)
        return with_manager_columns(cases) if manages else cases

    @extend_schema(
        responses=PolymorphicProxySerializer(
            component_name="CaseListItem",
            serializers=[s.CaseOutput, s.ManagedCaseOutput],
            resource_type_field_name=None,
            many=True,
        )
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Managers get the case browser's columns (gold, readers, AI score) too; readers their own cases."""
        return super().get(request, *args, **kwargs)

    def filter_queryset(self, queryset: Any) -> Any:
        queryset = super().filter_queryset(queryset)
        if "shown_status" in queryset.query.annotations:
            # A reader on a blind project orders by the status they are shown, not by the hidden one.
            ordering = [
                term.replace("status", "shown_status") if term.lstrip("-") == "status" else term
                for term in queryset.query.order_by
            ]
            queryset = queryset.order_by(*ordering)
        return queryset

    @extend_schema(request=s.CasesInput, responses={201: s.CaseOutput(many=True)})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        data = s.CasesInput(data=request.data)
        data.is_valid(raise_exception=True)
        cases = services.cases_create(
            project=project,
            study_uids=data.validated_data["study_instance_uids"],
            series_uids=data.validated_data.get("series_instance_uids"),
            priority=data.validated_data["priority"],
        )
        created = case_list(request.user, project).filter(pk__in=[c.pk for c in cases])
        return Response(s.CaseOutput(created, many=True).data, status=status.HTTP_201_CREATED)


class CaseDetailView(APIView):
    @extend_schema(responses=s.CaseOutput)
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        return Response(s.CaseOutput(hide_case_status(request.user, case)).data)

    @extend_schema(request=s.CaseUpdateInput, responses=s.CaseOutput)
    def patch(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        require_manager(request, case.project)
        data = s.CaseUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.case_set_priority(case=case, priority=data.validated_data["priority"], source="manager")
        return Response(s.CaseOutput(case).data)


class CaseAssignmentsView(APIView):
    @extend_schema(responses=s.AssignmentOutput(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        assignments = case.assignments.select_related("user", "case__study", "case__series")
        if not is_manager(request.user, case.project):
            assignments = assignments.filter(user__pk=user_pk(request.user))
        shown = hide_case_statuses(request.user, case.project, list(assignments))
        return Response(s.AssignmentOutput(shown, many=True).data)

    @extend_schema(request=s.AssignmentInput, responses={201: s.AssignmentOutput})
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        require_manager(request, case.project)
        data = s.AssignmentInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = User.objects.filter(username=data.validated_data["username"]).first()
        if user is None:
            raise NotFoundError(f"No user {data.validated_data['username']!r}")
        assignment = services.assignment_create(
            case=case,
            user=user,
            role=data.validated_data["role"],
            assigned_by=request.user,  # type: ignore[arg-type]
        )
        return Response(s.AssignmentOutput(assignment).data, status=status.HTTP_201_CREATED)


class DistributeView(APIView):
    """Fill every open slot of a reading role, balanced across the project's readers."""

    @extend_schema(request=s.RoleInput, responses={201: s.AssignmentOutput(many=True)})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.DistributeInput(data=request.data)
        data.is_valid(raise_exception=True)
        chosen = data.validated_data.get("cases")
        cases = None
        if chosen is not None:
            cases = list(Case.objects.filter(project=project, pk__in=chosen))
            unknown = sorted(set(chosen) - {c.pk for c in cases})
            if unknown:
                raise NotFoundError(f"No case {', '.join(map(str, unknown))} in project {project.slug!r}")
        created = services.assignments_distribute(
            project=project,
            role=data.validated_data["role"],
            assigned_by=request.user,  # type: ignore[arg-type]
            cases=cases,
        )
        return Response(s.AssignmentOutput(created, many=True).data, status=status.HTTP_201_CREATED)


class ReassignView(APIView):
    """Hand one reader's unfinished readings of the chosen cases to another reader (managers), all or nothing."""

    @extend_schema(request=s.ReassignInput, responses={200: s.AssignmentOutput(many=True)})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.ReassignInput(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        users = {
            u.username: u for u in User.objects.filter(username__in=[given["from_username"], given["to_username"]])
        }
        for name in (given["from_username"], given["to_username"]):
            if name not in users:
                raise NotFoundError(f"No user {name!r}")
        moved = services.assignments_reassign(
            project=project,
            case_ids=given["cases"],
            from_user=users[given["from_username"]],
            to_user=users[given["to_username"]],
            reassigned_by=_user(request),
        )
        return Response(s.AssignmentOutput(moved, many=True).data)


class WorklistView(APIView):
    """Your cases in one reading role, unfinished first by priority then age, with counts by status."""

    @extend_schema(
        parameters=[
            OpenApiParameter("role", str, required=True, enum=["first_reader", "second_reader", "panel_member"])
        ],
        responses=s.WorklistOutput,
    )
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        data = s.RoleInput(data={"role": request.query_params.get("role", "")})
        data.is_valid(raise_exception=True)
        role = data.validated_data["role"]
        services.check_reader_role(project, _user(request), role)
        assignments = hide_case_statuses(request.user, project, list(worklist(request.user, project, role)[:200]))
        body = {"role": role, "counts": worklist_counts(request.user, project, role), "assignments": assignments}
        return Response(s.WorklistOutput(body).data)


class WorklistNextView(APIView):
    """Claim the next case to read (atomic: two readers never get the same slot). 204 when none is left."""

    @extend_schema(request=s.RoleInput, responses={200: s.AssignmentOutput, 204: None})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for_reading(request, slug)
        data = s.RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.assignment_claim_next(
            project=project,
            user=_user(request),
            role=data.validated_data["role"],
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        hide_case_statuses(request.user, project, [assignment])
        return Response(claimed_assignment_body(assignment, _user(request)))


_DATETIME = DateTimeField()


def _datetime(value: Any) -> Any:
    return None if value is None else _DATETIME.to_representation(value)


def claimed_assignment_body(assignment: Assignment, reader: User) -> dict[str, Any]:
    """What AssignmentOutput says of the reader's claimed assignment, written out: building the ModelSerializer
    and its nested CaseOutput was a sixth of the CPU of worklist next, and its username read the user row again
    for an assignment found unfinished (issue 19). The claim's own: its user is the reader. The API's tests hold
    the two to the same answer."""
    case = assignment.case
    study, series = case.study, case.series
    shown = getattr(case, "shown_status", None)
    return {
        "id": assignment.pk,
        "username": reader.username,
        "role": str(assignment.role),
        "slot": assignment.slot,
        "status": str(assignment.status),
        "how": str(assignment.how),
        "case": {
            "id": case.pk,
            "status": str(shown or case.status),
            "priority": float(case.priority),
            "priority_source": case.priority_source,
            "study_instance_uid": study.study_instance_uid,
            "series_instance_uid": series.series_instance_uid if series is not None else None,
            "patient_id": study.patient_id,
            "study_date": study.study_date,
            "study_description": study.study_description,
            "readers_assigned": getattr(case, "readers_assigned", None),
            "readings_submitted": getattr(case, "readings_submitted", None),
            "created_at": _datetime(case.created_at),
            "updated_at": None if shown in READER_STATUSES else _datetime(case.updated_at),
        },
        "created_at": _datetime(assignment.created_at),
        "submitted_at": _datetime(assignment.submitted_at),
    }


class CaseAnnotationsView(APIView):
    """Readings of a case you may see (your own; all of them for managers)."""

    @extend_schema(responses=s.AnnotationOutput(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        return Response(s.AnnotationOutput(annotation_list(request.user, case), many=True).data)


class AnnotationDetailView(APIView):
    @extend_schema(responses=s.AnnotationOutput)
    def get(self, request: Request, annotation_id: int) -> Response:
        return Response(s.AnnotationOutput(_annotation_for(request, annotation_id)).data)


class RevisionListView(APIView):
    @extend_schema(responses=s.RevisionSummaryOutput(many=True))
    def get(self, request: Request, annotation_id: int) -> Response:
        annotation = _annotation_for(request, annotation_id)
        return Response(s.RevisionSummaryOutput(revisions_of(annotation), many=True).data)


class RevisionDetailView(APIView):
    """One revision with every item; masks come encoded (gzip-base64) unless ``?masks=0``."""

    @extend_schema(parameters=[OpenApiParameter("masks", bool, required=False)], responses=s.RevisionOutput)
    def get(self, request: Request, annotation_id: int, number: int) -> Response:
        annotation = _annotation_for(request, annotation_id)
        revision = get_object_or_404(revisions_of(annotation), number=number)
        include = request.query_params.get("masks", "1") not in ("0", "false")
        return Response(s.RevisionOutput(revision, context={"include_masks": include}).data)


class RevisionDiffView(APIView):
    """What changed between two revisions: items added, removed, or changed (before and after)."""

    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
        responses={200: dict},
    )
    def get(self, request: Request, annotation_id: int) -> Response:
        annotation = _annotation_for(request, annotation_id)
        try:
            first, second = int(request.query_params["from"]), int(request.query_params["to"])
        except (KeyError, ValueError):
            return Response({"detail": "Give ?from=N&to=M revision numbers"}, status=status.HTTP_400_BAD_REQUEST)
        return Response(services.revisions_diff(annotation=annotation, from_number=first, to_number=second))
