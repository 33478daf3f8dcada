"""Gold-standard cases: marking (managers), the readers' running scores (managers), a reader's own feedback."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.views import _case_for
from annotation.models import Annotation, AnnotationRevision, Case
from annotation.selectors import is_manager
from config.errors import ApplicationError, NotFoundError
from review import adaptive, gold
from review.api.dashboard_views import _managed_project
from review.models import GoldCase


class GoldMarkInput(serializers.Serializer[Any]):
    reference_revision = serializers.IntegerField(
        required=False,
        help_text="Id of the case's adjudicated or agreed (consensus) revision, or of a label imported for it",
    )
    reference_annotation = serializers.IntegerField(
        required=False,
        help_text="Id of the case's adjudicated, agreed (consensus) or imported annotation: its current revision is "
        "the reference (what the case browser sends: it lists annotations, not revisions)",
    )
    values = serializers.JSONField(
        required=False, help_text='A reference reading: {"items": [...]}, as a reader submits'
    )


def _gold_body(found: GoldCase) -> dict[str, Any]:
    # An imported reference keeps its provenance (datasets.LabelImport: who, when, which DICOM object).
    imported = getattr(found.reference, "label_import", None)
    return {
        "case": found.case_id,
        "source": found.source,
        "reference_revision": found.reference_id,
        "label_import": imported.pk if imported is not None else None,
        "marked_by": found.marked_by.username if found.marked_by else None,
        "created_at": found.created_at.isoformat(),
        "readings_scored": found.scores.count(),
    }


def _managed_case(request: Request, case_id: int) -> Case:
    case = _case_for(request, case_id)
    if not is_manager(request.user, case.project):
        raise PermissionDenied(_("Only a manager of the project may see or mark gold cases"))
    return case


class GoldCaseView(APIView):
    """Mark the case as a gold-standard case with its reference label (managers), see whether it is one, or
    unmark it before any reader got it."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, case_id: int) -> Response:
        case = _managed_case(request, case_id)
        found = GoldCase.objects.filter(case=case).select_related("marked_by").first()
        if found is None:
            raise NotFoundError(_("Case %(case)s is not a gold case") % {"case": case.pk})
        return Response(_gold_body(found))

    @extend_schema(request=GoldMarkInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, case_id: int) -> Response:
        case = _managed_case(request, case_id)
        data = GoldMarkInput(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data
        reference = None
        if "reference_annotation" in given:
            if "reference_revision" in given:
                raise ApplicationError(
                    _("Give the reference either as a revision or as an annotation, not both"), code="bad_reference"
                )
            annotation = Annotation.objects.filter(pk=given["reference_annotation"], case=case).first()
            if annotation is None or annotation.current_revision_id is None:
                raise NotFoundError(
                    _("No annotation %(annotation)s of case %(case)s")
                    % {"annotation": given["reference_annotation"], "case": case.pk}
                )
            given["reference_revision"] = annotation.current_revision_id
        if "reference_revision" in given:
            reference = (
                AnnotationRevision.objects.select_related("annotation")
                .filter(pk=given["reference_revision"], annotation__case=case)
                .first()
            )
            if reference is None:
                raise NotFoundError(
                    _("No revision %(revision)s of case %(case)s")
                    % {"revision": given["reference_revision"], "case": case.pk}
                )
        found = gold.gold_case_mark(
            case=case, marked_by=cast(User, request.user), reference_revision=reference, values=given.get("values")
        )
        return Response(_gold_body(found), status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, case_id: int) -> Response:
        """Make the case an ordinary case again; 409 once a reader has been served it (see gold_case_unmark)."""
        case = _managed_case(request, case_id)
        gold.gold_case_unmark(case=case, unmarked_by=cast(User, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GoldScoresView(APIView):
    """Per reader: the running score on gold cases with its confidence intervals and trend (managers)."""

    # A list, one object per reader (review.gold.gold_scores_of).
    @extend_schema(responses={200: {"type": "array", "items": {"type": "object", "additionalProperties": {}}}})
    def get(self, request: Request, slug: str) -> Response:
        project = _managed_project(request, slug)
        return Response(gold.gold_scores_of(project))


class ReadingFeedbackView(APIView):
    """Your result on this case once you submitted, where the project's policy shows readers their result.

    The same empty answer (204) for every case without feedback (not submitted, not measured, or feedback off), so
    asking tells a reader nothing about a case. Not a 404: the reader asks after every submission, and a browser
    logs each 404 as a failed load."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 204: None})
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        feedback = gold.gold_feedback_for(case=case, reader=cast(User, request.user))
        if feedback is None:
            return Response(status=204)
        return Response(feedback)


class ReadingRoutesView(APIView):
    """Per project: the share of cases read once, twice and by the panel, readings per case, and the adaptive
    routing decisions with their reasons (managers)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, slug: str) -> Response:
        return Response(adaptive.reading_routes(_managed_project(request, slug)))
