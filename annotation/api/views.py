from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from rest_framework import generics, serializers

from annotation.models import Membership, Project
from annotation.selectors import projects_for_user


class ProjectOutput(serializers.ModelSerializer[Project]):
    my_roles = serializers.SerializerMethodField()
    dicom_source: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "dicom_source", "my_roles", "created_at"]

    def get_my_roles(self, project: Project) -> list[str]:
        return sorted({m.role for m in getattr(project, "my_memberships", [])})


class ProjectListView(generics.ListAPIView[Project]):
    """Projects you are a member of, with your roles in each."""

    serializer_class = ProjectOutput
    ordering_fields = ["name", "created_at"]

    def get_queryset(self) -> Any:
        mine = Membership.objects.filter(user__pk=self.request.user.pk or 0)
        return (
            projects_for_user(self.request.user)
            .select_related("dicom_source")
            .prefetch_related(Prefetch("memberships", queryset=mine, to_attr="my_memberships"))
            .order_by("name")
        )
