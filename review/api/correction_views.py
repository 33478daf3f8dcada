"""Thin views over review.corrections: an expert's corrected label, made in the reader editor."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.views import _case_for
from annotation.models import Case
from annotation.selectors import is_manager
from config.errors import NotFoundError
from review import corrections, selectors
from review.api import correction_serializers as s
from review.api.serializers import VoteOutput
from review.api.views import _case_for_panel_or_manager
from review.models import Correction


def _output(request: Request, case: Case, correction_id: int, status_code: int = 200) -> Response:
    shown = corrections.corrections_visible_to(
        cast(User, request.user), case, manager=is_manager(request.user, case.project)
    )
    [found] = [c for c in shown if c.pk == correction_id]
    return Response(s.CorrectionOutput(found).data, status=status_code)


class CorrectionListView(APIView):
    """The case's corrected labels (your own, and the others' once submitted); POST starts yours from a reading."""

    @extend_schema(responses=s.CorrectionOutput(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for_panel_or_manager(request, case_id, "Corrected labels are")
        shown = corrections.corrections_visible_to(
            cast(User, request.user), case, manager=is_manager(request.user, case.project)
        )
        return Response(s.CorrectionOutput(shown, many=True).data)

    @extend_schema(request=s.CorrectionStartInput, responses={201: s.CorrectionOutput})
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        data = s.CorrectionStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        correction = corrections.correction_start(
            case=case, expert=cast(User, request.user), seed=data.validated_data["seed_annotation"]
        )
        return _output(request, case, correction.pk, status.HTTP_201_CREATED)


class CorrectionCopyView(APIView):
    """Copy one lesion of another reading of the case into your corrected label (a new revision)."""

    @extend_schema(request=s.CorrectionCopyInput, responses={201: s.CorrectionOutput})
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        data = s.CorrectionCopyInput(data=request.data)
        data.is_valid(raise_exception=True)
        correction, _ = corrections.correction_copy_lesion(
            case=case,
            expert=cast(User, request.user),
            source=data.validated_data["from_annotation"],
            lesion=data.validated_data["lesion"],
            base_revision=data.validated_data["base_revision"],
        )
        return _output(request, case, correction.pk, status.HTTP_201_CREATED)


class CorrectionRevisionView(APIView):
    """Save your corrected label (a draft); with ``submit`` and a rationale it becomes your vote.

    ``base_revision`` must be the current revision number: otherwise 409 and nothing is stored."""

    @extend_schema(request=s.CorrectionSaveInput, responses={201: s.CorrectionOutput})
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        data = s.CorrectionSaveInput(data=request.data)
        data.is_valid(raise_exception=True)
        correction, _ = corrections.correction_save(
            case=case,
            expert=cast(User, request.user),
            base_revision=data.validated_data["base_revision"],
            values=data.validated_data["values"],
            submit=data.validated_data["submit"],
            rationale=data.validated_data["rationale"],
        )
        return _output(request, case, correction.pk, status.HTTP_201_CREATED)


class CorrectionEndorseView(APIView):
    """Endorse another expert's submitted corrected label: your vote is then for it."""

    @extend_schema(request=s.EndorseInput, responses={201: VoteOutput})
    def post(self, request: Request, case_id: int, correction_id: int) -> Response:
        case = _case_for(request, case_id)
        data = s.EndorseInput(data=request.data)
        data.is_valid(raise_exception=True)
        correction = Correction.objects.filter(pk=correction_id, case=case).first()
        if correction is None or (correction.submitted_revision_id is None and correction.expert_id != request.user.pk):
            raise NotFoundError(f"Case {case.pk} has no submitted corrected label {correction_id}")
        vote = corrections.correction_endorse(
            case=case,
            expert=cast(User, request.user),
            correction=correction,
            rationale=data.validated_data["rationale"],
        )
        [vote] = selectors.with_readings([vote])
        return Response(VoteOutput(vote).data, status=status.HTTP_201_CREATED)
