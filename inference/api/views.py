"""Model registry, training, pre-labeling and scoring API. Members read; managers start work and promote.

Work runs in jobs: those endpoints answer 202 with the job, whose progress is at /api/v1/jobs/<id>/."""

from __future__ import annotations

from typing import Any, cast

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for, require_manager
from annotation.models import Case, Project
from annotation.selectors import annotations_visible_to, is_manager, projects_for_user
from config.errors import ApplicationError, NotFoundError, PermissionDeniedError
from config.types import User
from inference import registry, services
from inference.api import serializers as s
from inference.export import EXPORT_FORMATS, export_version
from inference.models import CaseScore, ModelVersion, Prediction
from inference.services.bundles import bundle_import
from jobs.api.serializers import JobDetailOutput
from jobs.models import Job


def _user(request: Request) -> User:
    return cast(User, request.user)


def _version_for(request: Request, version_id: int) -> ModelVersion:
    """A version of a project the user is a member of; the same 404 otherwise."""
    version = (
        ModelVersion.objects.select_related("project", "parent")
        .filter(pk=version_id, project__in=projects_for_user(request.user))
        .first()
    )
    if version is None:
        raise NotFoundError(f"No model version {version_id} that you can see")
    return version


def _version_named(project: Project, version_id: int | None) -> ModelVersion | None:
    """The project's model version a request names, None when it names none, 404 when it is not there."""
    if version_id is None:
        return None
    version = ModelVersion.objects.filter(project=project, pk=version_id).first()
    if version is None:
        raise NotFoundError(f"No model version {version_id} in {project.slug!r}")
    return version


def _job_response(job: Job) -> Response:
    return Response(JobDetailOutput(Job.objects.get(pk=job.pk)).data, status=status.HTTP_202_ACCEPTED)


class ModelVersionListView(APIView):
    @extend_schema(responses=s.ModelVersionOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        versions = ModelVersion.objects.filter(project=project).select_related("project", "parent").order_by("-number")
        return Response(s.ModelVersionOutput(versions, many=True).data)


class ModelVersionDetailView(APIView):
    @extend_schema(responses=s.ModelVersionDetailOutput)
    def get(self, request: Request, version_id: int) -> Response:
        version = _version_for(request, version_id)
        return Response(s.ModelVersionDetailOutput(version).data)


class TrainView(APIView):
    @extend_schema(request=s.TrainInput, responses={202: JobDetailOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.TrainInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _job_response(services.training_start(project=project, actor=_user(request), **data.validated_data))


class BundleImportView(APIView):
    """Administrators import a MONAI bundle as a candidate model version (checked, dry-run; nothing on refusal)."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": s.BundleImportInput}, responses={201: s.ModelVersionDetailOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        if not _user(request).is_superuser:  # before the upload is even read
            raise PermissionDeniedError("Only an administrator may import a MONAI bundle")
        data = s.BundleImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        version = bundle_import(
            project=project,
            actor=_user(request),
            data=upload.read(),
            sha256=data.validated_data["sha256"],
            task_type=data.validated_data["task_type"],
        )
        return Response(
            s.ModelVersionDetailOutput(_version_for(request, version.pk)).data, status=status.HTTP_201_CREATED
        )


class PromoteView(APIView):
    @extend_schema(request=s.ReasonInput, responses=s.ModelVersionDetailOutput)
    def post(self, request: Request, version_id: int) -> Response:
        version = _version_for(request, version_id)
        require_manager(request, version.project)
        data = s.ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"] or f"promoted by hand by {_user(request).get_username()}"
        promoted = registry.model_version_promote(version=version, actor=_user(request), reason=reason)
        return Response(s.ModelVersionDetailOutput(_version_for(request, promoted.pk)).data)


class RollbackView(APIView):
    @extend_schema(request=s.RollbackInput, responses=s.ModelVersionDetailOutput)
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.RollbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        restored = registry.model_version_rollback(
            project=project, task_type=data.validated_data["task_type"], actor=_user(request),
            reason=data.validated_data["reason"],
        )  # fmt: skip
        return Response(s.ModelVersionDetailOutput(_version_for(request, restored.pk)).data)


class EvaluateView(APIView):
    @extend_schema(request=s.EvaluateInput, responses={202: JobDetailOutput})
    def post(self, request: Request, version_id: int) -> Response:
        version = _version_for(request, version_id)
        require_manager(request, version.project)
        data = s.EvaluateInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.evaluate_start(version=version, actor=_user(request), case_ids=data.validated_data.get("cases"))
        return _job_response(job)


class ExportView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("artifact", str, enum=list(EXPORT_FORMATS), description="Default: bundle")],
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, version_id: int) -> HttpResponse:
        version = _version_for(request, version_id)
        require_manager(request, version.project)
        # Not "format": DRF reserves that query parameter for choosing a renderer.
        fmt = request.query_params.get("artifact", "bundle")
        if fmt not in EXPORT_FORMATS:
            raise ApplicationError(f"Unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
        if not version.weights_file:
            raise ApplicationError(f"Model version {version.number} is {version.status} and has no weights to export")
        content, filename, media_type = export_version(version, fmt)
        response = HttpResponse(content, content_type=media_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class PrelabelView(APIView):
    @extend_schema(request=s.PrelabelInput, responses={202: JobDetailOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.PrelabelInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = _version_named(project, data.validated_data.get("model_version"))
        job = services.prelabel_start(
            project=project, actor=_user(request), case_ids=data.validated_data.get("cases"), version=version
        )
        return _job_response(job)


class ScoreView(APIView):
    @extend_schema(request=s.ScoreInput, responses={202: JobDetailOutput})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.ScoreInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = _version_named(project, data.validated_data.get("model_version"))
        job = services.score_start(
            project=project, actor=_user(request), strategy=data.validated_data.get("strategy"), version=version
        )
        return _job_response(job)


class CaseScoreListView(APIView):
    @extend_schema(responses=s.CaseScoreOutput(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        scores = CaseScore.objects.filter(case__project=project).order_by("-created_at", "rank")[:1000]
        return Response(s.CaseScoreOutput(scores, many=True).data)


class InferenceSettingsView(APIView):
    @extend_schema(responses=s.InferenceSettingsSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        return Response(s.InferenceSettingsSerializer(services.settings_for(project)).data)

    @extend_schema(request=s.InferenceSettingsSerializer, responses=s.InferenceSettingsSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        data = s.InferenceSettingsSerializer(services.settings_for(project), data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        updated = services.inference_settings_update(project=project, **data.validated_data)
        return Response(s.InferenceSettingsSerializer(updated).data)


def _case_with_ai_visible(request: Request, case_id: int) -> Case:
    """A case whose AI proposal the user may see (managers; readers assigned to it); the same 404 otherwise."""
    case = Case.objects.select_related("project").filter(pk=case_id).first()
    if case is None or not annotations_visible_to(request.user, case).filter(role="ai").exists():
        if case is None or not is_manager(request.user, case.project):
            raise NotFoundError(f"No case {case_id} with predictions that you can see")
    return case


class CasePredictionListView(APIView):
    @extend_schema(responses=s.PredictionOutput(many=True))
    def get(self, request: Request, case_id: int) -> Response:
        case = _case_with_ai_visible(request, case_id)
        predictions = Prediction.objects.filter(case=case).select_related("model_version__project")
        return Response(s.PredictionOutput(predictions, many=True).data)


class PredictionSaliencyView(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request: Request, prediction_id: int) -> HttpResponse:
        prediction = Prediction.objects.select_related("case").filter(pk=prediction_id).first()
        if prediction is None:
            raise NotFoundError(f"No prediction {prediction_id} that you can see")
        _case_with_ai_visible(request, prediction.case_id)
        if not prediction.saliency_file:
            raise NotFoundError(f"Prediction {prediction_id} has no saliency map (segmentation models store none)")
        content: Any = services.saliency_bytes(prediction)
        response = HttpResponse(content, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="saliency-{prediction.pk}.npy"'
        return response
