from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.models import Job, JobEvent


class JobEventOutput(serializers.ModelSerializer[JobEvent]):
    class Meta:
        model = JobEvent
        fields = ["from_status", "to_status", "message", "worker", "created_at"]


class JobOutput(serializers.ModelSerializer[Job]):
    # Null for jobs started without a project or by the system (allow_null puts that in the schema).
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id", "kind", "kind_display", "status", "project", "created_by", "params", "progress", "result",
            "error", "queue", "attempts", "max_attempts", "worker", "heartbeat_at", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip


class JobDetailOutput(JobOutput):
    events = JobEventOutput(many=True, read_only=True)

    class Meta(JobOutput.Meta):
        fields = [*JobOutput.Meta.fields, "history", "events"]
