from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.messages import render_job_text, render_progress
from jobs.models import Job, JobEvent


class JobEventOutput(serializers.ModelSerializer[JobEvent]):
    message = serializers.SerializerMethodField(help_text="What happened, in the request's language")

    class Meta:
        model = JobEvent
        fields = ["from_status", "to_status", "message", "worker", "created_at"]

    def get_message(self, event: JobEvent) -> str:
        return render_job_text(event.message)


class JobOutput(serializers.ModelSerializer[Job]):
    # Null for jobs started without a project or by the system (allow_null puts that in the schema).
    project: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    progress = serializers.SerializerMethodField(help_text="Latest progress; its message in the request's language")
    error = serializers.SerializerMethodField(help_text="Why the job failed, in the request's language")

    class Meta:
        model = Job
        fields = [
            "id", "kind", "kind_display", "status", "project", "created_by", "params", "progress", "result",
            "error", "queue", "attempts", "max_attempts", "worker", "heartbeat_at", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip

    @extend_schema_field(serializers.DictField())
    def get_progress(self, job: Job) -> Any:
        return render_progress(job.progress)

    def get_error(self, job: Job) -> str:
        return render_job_text(job.error)


class JobDetailOutput(JobOutput):
    events = JobEventOutput(many=True, read_only=True)

    class Meta(JobOutput.Meta):
        fields = [*JobOutput.Meta.fields, "history", "events"]
