"""Thin views over the review services."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.fields import DateTimeField
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import services as annotation_services
from annotation.api import serializers as annotation_s
from annotation.api.permissions import project_for
from annotation.api.views import _case_for
from annotation.models import Annotation, AnnotationRevision, Case
from annotation.selectors import annotations_visible_to, is_manager, reading_assignment
from config.errors import NotFoundError
from review import selectors, services
from review.agreement_checks import DecidingResponse, checks_after_response
from review.api import serializers as s
from review.models import AgreementResult, CaseEvent


def _case_for_panel_or_manager(request: Request, case_id: int, what: str) -> Case:
    """The case, if the user manages its project or sits on its panel; 403 naming what is withheld."""
    case = _case_for(request, case_id)
    if not (is_manager(request.user, case.project) or request.user.pk in services.panel_members_of(case)):
        raise PermissionDenied(f"{what} shown to managers and the case's panel")
    return case


class CaseRevisionCreateView(APIView):
    """Save your reading of the case as a new revision (a draft, or ``submit`` to finalise it).

    ``base_revision`` must be the current revision number: if someone saved in between the answer is
    409 with ``current_revision``, and nothing is stored. A submission moves the case on in the same
    transaction (review.services.reading_submit); submitting a reading twice is a 409.

    Served by review rather than annotation: a submission is the review workflow's hand-over, and review
    depends on annotation, not the reverse. A draft is annotation's save alone."""

    @extend_schema(request=annotation_s.RevisionInput, responses={201: annotation_s.RevisionOutput})
    def post(self, request: Request, case_id: int) -> Response:
        # The reader's assignment in the role asked for shows the case is theirs to see, in one query with the case;
        # without one, the case is looked up as everywhere else (404 when it is not visible; annotation_save then
        # answers 403 for a case visible but not assigned in that role).
        asked_role = request.data.get("role") if hasattr(request.data, "get") else None
        assignment = reading_assignment(request.user, case_id, asked_role)
        case = assignment.case if assignment is not None else _case_for(request, case_id)
        data = annotation_s.RevisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        reader, given = cast(User, request.user), data.validated_data
        role, base, values = given["role"], given["base_revision"], given["values"]
        if given["submit"]:
            # A last reading leaves its case's agreement check to the response, which runs it once the reader has
            # their answer (review.agreement_checks; issue 19).
            with checks_after_response() as pending:
                revision = services.reading_submit(
                    case=case, reader=reader, role=role, base_revision=base, values=values, assignment=assignment
                )
            body = saved_revision_body(revision, reader)
            return DecidingResponse(body, status=status.HTTP_201_CREATED, pending=pending)
        revision = annotation_services.annotation_save(
            case=case, reader=reader, role=role, base_revision=base, values=values, assignment=assignment
        )
        return Response(saved_revision_body(revision, reader), status=status.HTTP_201_CREATED)


_CREATED_AT = DateTimeField()


def saved_revision_body(revision: AnnotationRevision, reader: User) -> dict[str, Any]:
    """What RevisionOutput (without masks) says of a revision just saved, and its annotation, without reading the
    parent revision back for its number (a revision's parent is the one before it: number - 1) and without building
    a ModelSerializer: a query and about a tenth of the CPU of every save (issue 19). The API's tests hold the two
    to the same answer."""
    return {
        "number": revision.number,
        "parent": revision.number - 1 if revision.parent_id is not None else None,
        "author": reader.username,
        "origin": revision.origin,
        "model_version": revision.model_version,
        "schema_version": revision.schema.version,
        "is_submission": revision.is_submission,
        "items": annotation_services.revision_items_for_output(revision, include_masks=False),
        "problems": revision.problems,
        "created_at": _CREATED_AT.to_representation(revision.created_at),
        "annotation": revision.annotation_id,
    }


class ReviewPolicyView(APIView):
    """The project's review policy: members read it, managers change it."""

    @extend_schema(responses=s.ReviewPolicySerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(s.ReviewPolicySerializer(services.policy_for(project_for(request, slug))).data)

    @extend_schema(request=s.ReviewPolicySerializer, responses=s.ReviewPolicySerializer)
    def patch(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        if not is_manager(request.user, project):
            raise PermissionDenied(f"Only a manager of project {project.slug!r} may change its review policy")
        policy = services.policy_for(project)
        serializer = s.ReviewPolicySerializer(policy, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        chair = serializer.validated_data.pop("chair_username", ...)
        if chair is not ...:
            policy.chair = None if chair is None else get_object_or_404(User, username=chair)
        serializer.save()
        return Response(s.ReviewPolicySerializer(policy).data)


class CaseEventsView(APIView):
    """The case's full history (append-only): managers and the case's panel."""

    @extend_schema(responses=s.CaseEventOutput(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for_panel_or_manager(request, case_id, "The case history is")
        events = CaseEvent.objects.filter(case=case).select_related("actor").order_by("created_at", "pk")
        return Response(s.CaseEventOutput(events, many=True).data)


class CaseAgreementView(APIView):
    """The latest agreement computed for the case; never shown to its readers (it describes the others)."""

    @extend_schema(responses=s.AgreementOutput)
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for_panel_or_manager(request, case_id, "Agreement is")
        result = AgreementResult.objects.filter(case=case).order_by("-created_at", "-pk").first()
        if result is None:
            raise NotFoundError(f"No agreement has been computed for case {case_id} yet")
        return Response(s.AgreementOutput(result).data)


class VerificationView(APIView):
    """Verification mode, level 2: accept, correct (with the corrected reading) or reject (with a reason)."""

    @extend_schema(request=s.VerificationInput, responses={200: dict})
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        data = s.VerificationInput(data=request.data)
        data.is_valid(raise_exception=True)
        case = services.verification_decide(
            case=case,
            reviewer=cast(User, request.user),
            outcome=data.validated_data["outcome"],
            reason=data.validated_data["reason"],
            values=data.validated_data.get("values"),
            base_revision=data.validated_data["base_revision"],
        )
        return Response({"case": case.pk, "status": case.status})


class PanelVotesView(APIView):
    """Votes of the case's panel (the panel and managers see them); POST casts your vote."""

    @extend_schema(responses=s.VoteOutput(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_for_panel_or_manager(request, case_id, "Votes are")
        return Response(s.VoteOutput(selectors.panel_votes_of(case), many=True).data)

    @extend_schema(request=s.VoteInput, responses={201: s.VoteOutput})
    def post(self, request: Request, case_id: int) -> Response:
        case = _case_for(request, case_id)
        data = s.VoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        voted_for = None
        annotation_id = data.validated_data.get("voted_for_annotation")
        if annotation_id is not None:
            annotation = get_object_or_404(
                annotations_visible_to(request.user, case).select_related("current_revision"), pk=annotation_id
            )
            voted_for = cast(Annotation, annotation).current_revision
        seed = None
        seed_id = data.validated_data.get("seed_annotation")
        if seed_id is not None:
            annotation = get_object_or_404(
                annotations_visible_to(request.user, case).select_related("current_revision"), pk=seed_id
            )
            seed = cast(Annotation, annotation).current_revision
        vote = services.panel_vote(
            case=case,
            expert=cast(User, request.user),
            rationale=data.validated_data["rationale"],
            voted_for=voted_for,
            values=data.validated_data.get("values"),
            seed=seed,
        )
        [vote] = selectors.with_readings([vote])
        return Response(s.VoteOutput(vote).data, status=status.HTTP_201_CREATED)
