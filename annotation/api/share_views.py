"""Sharing studies between projects: an explicit act of someone who manages both, never a side effect of
ingest; and the project's share log."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for, require_manager
from annotation.services import project_share_studies
from config.types import User
from imaging.models import StudyShare


class ShareInput(serializers.Serializer[dict[str, Any]]):
    from_project = serializers.SlugField(
        required=False,
        allow_null=True,
        help_text="Slug of the project that holds the studies; null: the platform store",
    )
    study_uids = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, max_length=1000)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class ShareOutput(serializers.ModelSerializer[StudyShare]):
    from_project = serializers.SerializerMethodField()
    to_project = serializers.SerializerMethodField()
    shared_by = serializers.SerializerMethodField()

    class Meta:
        model = StudyShare
        fields = [
            "id",
            "study_instance_uid",
            "from_project",
            "to_project",
            "instances",
            "shared_by",
            "reason",
            "created_at",
        ]

    def _project(self, store: Any) -> str | None:
        project = getattr(store, "project", None)
        return project.slug if project is not None else None

    def get_from_project(self, share: StudyShare) -> str | None:
        return self._project(share.from_store)

    def get_to_project(self, share: StudyShare) -> str | None:
        return self._project(share.to_store)

    def get_shared_by(self, share: StudyShare) -> str | None:
        return share.shared_by.username if share.shared_by is not None else None


class ProjectShareView(APIView):
    """GET: the studies shared into or out of this project (managers). POST: share studies of another project
    you also manage (administrators: also of the platform store) into this one; 201 with the share records."""

    @extend_schema(responses={200: ShareOutput(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        require_manager(request, project)
        shares = (
            StudyShare.objects.filter(Q(from_store=project.image_store_id) | Q(to_store=project.image_store_id))
            .select_related("from_store__project", "to_store__project", "shared_by")
            .order_by("-created_at", "-pk")[:1000]
        )
        return Response(ShareOutput(shares, many=True).data)

    @extend_schema(request=ShareInput, responses={201: ShareOutput(many=True)})
    def post(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug)
        data = ShareInput(data=request.data)
        data.is_valid(raise_exception=True)
        source_slug = data.validated_data.get("from_project")
        source = project_for(request, source_slug) if source_slug else None
        shares = project_share_studies(
            from_project=source,
            to_project=project,
            study_uids=data.validated_data["study_uids"],
            actor=cast(User, request.user),
            reason=data.validated_data["reason"],
        )
        ids = [share.pk for share in shares]
        rows = StudyShare.objects.filter(pk__in=ids).select_related(
            "from_store__project", "to_store__project", "shared_by"
        )
        return Response(ShareOutput(rows, many=True).data, status=status.HTTP_201_CREATED)
